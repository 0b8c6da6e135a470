"""CLIP image and text encoders on a tiny randomly initialised CLIP saved to a temporary
folder (built offline from a config, with a word-level tokenizer made here): both halves
load the local path, share one space, and agree with CLIPModel's own logits."""

import numpy as np
import pytest
import torch
from PIL import Image

from crossrec.encoders import EncoderConfig, EncoderConfigError, build_encoder
from crossrec.encoders.image import CLIPImageEncoder, CLIPTextEncoder

WORDS = ["a", "photo", "of", "cat", "dog", "red", "blue", "car", "movie", "poster"]
PAD, UNK, BOS, EOS = 0, 1, 3, 4     # eos != 2: CLIP pools the first eos token, not argmax(ids)


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import CLIPConfig, CLIPModel, PreTrainedTokenizerFast

    try:
        from transformers import CLIPImageProcessorPil as Processor
    except ImportError:
        from transformers import CLIPImageProcessor as Processor

    folder = tmp_path_factory.mktemp("tiny-clip")
    vocab = {"<pad>": PAD, "<unk>": UNK, "<|startoftext|>": BOS, "<|endoftext|>": EOS}
    vocab.update({w: i + 5 for i, w in enumerate(WORDS)})
    vocab["the"] = 2
    tok = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="<|startoftext|> $A <|endoftext|>",
        special_tokens=[("<|startoftext|>", BOS), ("<|endoftext|>", EOS)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|startoftext|>",
                                        eos_token="<|endoftext|>", pad_token="<pad>",
                                        unk_token="<unk>", model_max_length=16)
    tokenizer.save_pretrained(folder)
    Processor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    config = CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=16, intermediate_size=32,
                         num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=16,
                         pad_token_id=PAD, bos_token_id=BOS, eos_token_id=EOS),
        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                           num_attention_heads=2, image_size=32, patch_size=8),
        projection_dim=8)
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def image_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("clip-images")
    rng = np.random.default_rng(0)
    paths = []
    for i, (size, mode) in enumerate([((40, 60), "RGB"), ((64, 32), "L"), ((50, 50), "RGBA")]):
        channels = {"RGB": 3, "L": 1, "RGBA": 4}[mode]
        arr = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
        img = Image.fromarray(arr[..., 0] if mode == "L" else arr, mode)
        paths.append(str(d / f"img{i}.png"))
        img.save(paths[-1])
    (d / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return paths, str(d / "bad.jpg")


def _encoders(folder):
    img = build_encoder(EncoderConfig(modality="image", kind="clip", model=str(folder), batch_size=2))
    txt = build_encoder(EncoderConfig(modality="text", kind="clip-text", model=str(folder)))
    return img, txt


def test_both_halves_load_the_local_folder(tiny_clip):
    img, txt = _encoders(tiny_clip)
    assert isinstance(img, CLIPImageEncoder) and isinstance(txt, CLIPTextEncoder)
    assert img.dim == txt.dim == 8
    assert img.model is txt.model                                  # one model in memory
    assert img.fingerprint.startswith("clip:") and txt.fingerprint.startswith("clip-text:")
    assert img.fingerprint.split(":")[1] == txt.fingerprint.split(":")[1]   # same revision


def test_image_and_text_share_clips_space(tiny_clip, image_files):
    from transformers import AutoTokenizer, CLIPModel

    try:
        from transformers import CLIPImageProcessorPil as Processor
    except ImportError:
        from transformers import CLIPImageProcessor as Processor

    paths, bad = image_files
    texts = ["a photo of a cat", "red car", "a blue movie poster", "dog"]
    img, txt = _encoders(tiny_clip)
    iv = img.encode(paths + [bad, ""])
    tv = txt.encode(texts)
    assert iv.vectors.shape == (5, 8) and tv.vectors.shape == (4, 8)
    assert iv.mask.tolist() == [True, True, True, False, False] and list(iv.errors) == [3]
    assert "cannot identify image file" in iv.errors[3] or "Error" in iv.errors[3]
    np.testing.assert_allclose(np.linalg.norm(iv.vectors[:3], axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(tv.vectors, axis=1), 1.0, atol=1e-5)

    # CLIPModel's own forward on the same inputs: logits_per_image / exp(logit_scale) = cosine
    model = CLIPModel.from_pretrained(tiny_clip).eval()
    processor = Processor.from_pretrained(tiny_clip)
    tokenizer = AutoTokenizer.from_pretrained(tiny_clip)
    images = [Image.open(p).convert("RGB") for p in paths]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                    pixel_values=processor(images=images, return_tensors="pt")["pixel_values"])
        want = (out.logits_per_image / model.logit_scale.exp()).numpy()
    np.testing.assert_allclose(iv.vectors[:3] @ tv.vectors.T, want, atol=1e-5)


def test_missing_path_is_a_config_error(tmp_path):
    for modality, kind in [("image", "clip"), ("text", "clip-text")]:
        with pytest.raises(EncoderConfigError, match="not found"):
            build_encoder(EncoderConfig(modality=modality, kind=kind, model=str(tmp_path / "no-clip")))
    with pytest.raises(EncoderConfigError, match="unknown option"):
        build_encoder(EncoderConfig(modality="image", kind="clip", model=str(tmp_path), options={"x": 1}))
    with pytest.raises(EncoderConfigError, match="encodes image, not text"):
        build_encoder(EncoderConfig(modality="text", kind="clip", model=str(tmp_path)))
    # a hub name is accepted without touching the network until it is used
    enc = build_encoder(EncoderConfig(modality="image", kind="clip", model="openai/clip-vit-base-patch32"))
    assert enc.model_ref == "openai/clip-vit-base-patch32"
