"""CLAP audio and text encoders on a tiny randomly initialised CLAP saved to a temporary folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crossrec.encoders import EncoderConfig, EncoderConfigError, build_encoder

SR = 16000
WORDS = "a the sound of dog cat bark meow rain engine tone beep noise".split()
TEXTS = ["the sound of a dog", "rain", "a tone beep beep", "engine noise of a cat"]


@pytest.fixture(scope="module")
def tiny_clap(tmp_path_factory) -> Path:
    """ClapModel + ClapProcessor (ClapFeatureExtractor + a word-level tokenizer), all offline."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import (
        ClapConfig,
        ClapFeatureExtractor,
        ClapModel,
        ClapProcessor,
        PreTrainedTokenizerFast,
    )

    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, **{w: i + 4 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>",
                                                       special_tokens=[("<s>", 0), ("</s>", 2)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                        pad_token="<pad>", unk_token="<unk>", model_max_length=32)
    features = ClapFeatureExtractor(feature_size=64, sampling_rate=SR, hop_length=320, max_length_s=1,
                                    fft_window_size=1024, frequency_max=8000,
                                    truncation="rand_trunc", padding="repeatpad")
    config = ClapConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=37, max_position_embeddings=40),
        audio_config=dict(spec_size=64, num_mel_bins=64, window_size=4, depths=[1, 1],
                          num_attention_heads=[1, 2], patch_embeds_hidden_size=16, hidden_size=32,
                          patch_size=4, patch_stride=[4, 4]),
        projection_dim=16)
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-clap")
    ClapModel(config).eval().save_pretrained(folder)
    ClapProcessor(feature_extractor=features, tokenizer=tokenizer).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    import soundfile as sf

    d = tmp_path_factory.mktemp("clap-audio")
    t = np.arange(SR) / SR
    rng = np.random.default_rng(1)
    files = {"tone": d / "tone.wav", "noise": d / "noise.wav", "long": d / "long.wav",
             "text": d / "notes.wav"}
    sf.write(files["tone"], (0.3 * np.sin(2 * np.pi * 440 * t[: int(0.8 * SR)])).astype(np.float32), SR)
    sf.write(files["noise"], (0.3 * rng.standard_normal(SR)).astype(np.float32), 44100)   # resampled
    sf.write(files["long"], (0.3 * rng.standard_normal(int(2.5 * SR))).astype(np.float32), SR)
    files["text"].write_text("not audio\n" * 30)
    return files


@pytest.fixture(scope="module")
def encoders(tiny_clap):
    audio = build_encoder(EncoderConfig(modality="audio", kind="clap", model=str(tiny_clap)))
    text = build_encoder(EncoderConfig(modality="text", kind="clap-text", model=str(tiny_clap)))
    return audio, text


def test_clap_loads_from_a_local_folder(encoders):
    audio, text = encoders
    assert audio.dim == text.dim == 16                          # projection_dim
    assert audio.sample_rate == SR and audio.max_seconds == 1.0
    assert "sha256:" in audio.fingerprint and audio.fingerprint.startswith("clap-audio:")
    assert text.fingerprint.startswith("clap-text:")


def test_clap_cosine_equals_the_models_logits(encoders, clips):
    """cos(audio vector, text vector) == ClapModel's logits_per_audio / logit_scale_a."""
    import torch
    from transformers import ClapModel, ClapProcessor

    from crossrec.encoders.audio import load_audio

    audio_enc, text_enc = encoders
    paths = [str(clips["tone"]), str(clips["noise"])]
    a = audio_enc.encode(paths)
    t = text_enc.encode(TEXTS)
    assert a.mask.all() and t.mask.all()
    np.testing.assert_allclose(np.linalg.norm(a.vectors, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(t.vectors, axis=1), 1, atol=1e-5)

    model = ClapModel.from_pretrained(audio_enc.model_name).eval()
    processor = ClapProcessor.from_pretrained(audio_enc.model_name)
    inputs = processor(text=TEXTS, audio=[load_audio(p, SR) for p in paths], sampling_rate=SR,
                       return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model(**inputs)
    expected = (out.logits_per_audio / model.logit_scale_a.exp()).detach().numpy()   # (2, 4)
    np.testing.assert_allclose(a.vectors @ t.vectors.T, expected, atol=1e-5)


def test_clap_is_batch_independent_and_masks_bad_input(encoders, clips):
    audio, text = encoders
    out = audio.encode([str(clips["long"]), "", str(clips["text"]), str(clips["tone"])])
    assert out.mask.tolist() == [True, False, False, True]
    assert list(out.errors) == [2] and "cannot decode audio" in out.errors[2]
    alone = audio.encode([str(clips["long"])])                  # 2.5 s > 1 s window: middle crop
    np.testing.assert_allclose(out.vectors[0], alone.vectors[0], atol=1e-5)
    np.testing.assert_allclose(text.encode(["rain", TEXTS[0]]).vectors[0],
                               text.encode(["rain"]).vectors[0], atol=1e-5)
    assert text.encode(["", "beep"]).mask.tolist() == [False, True]


def test_clap_bad_configs(tiny_clap, tmp_path):
    with pytest.raises(EncoderConfigError, match="not found"):
        build_encoder(EncoderConfig(modality="audio", kind="clap", model=str(tmp_path / "no-such-model")))
    with pytest.raises(EncoderConfigError, match="not found"):
        build_encoder(EncoderConfig(modality="text", kind="clap-text", model="./no/such/clap"))
    with pytest.raises(EncoderConfigError, match="unknown option"):
        build_encoder(EncoderConfig(modality="audio", kind="clap", model=str(tiny_clap),
                                    options={"max_secs": 3}))
    with pytest.raises(EncoderConfigError, match="encodes text"):
        build_encoder(EncoderConfig(modality="audio", kind="clap-text", model=str(tiny_clap)))
