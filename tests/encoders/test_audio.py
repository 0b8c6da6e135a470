"""aisfx audio encoder and the audio decoding helpers, on media written here (no downloads)."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from crossrec.encoders import EncoderConfig, EncoderConfigError, build_encoder
from crossrec.encoders.audio import AisfxEncoder, AudioDecodeError, aisfx_log_mel, load_audio, to_mono

SR = 44100


def tone(seconds: float, sr: int = SR, freq: float = 440.0, amp: float = 0.3) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(int(seconds * sr)) / sr)).astype(np.float32)


def write_av_audio(path: Path, x: np.ndarray, sr: int, codec: str) -> Path:
    """Mono float32 ``x`` -> an audio file through PyAV (e.g. libmp3lame -> .mp3, aac -> .m4a)."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=sr)
        stream.layout = "mono"
        step = stream.codec_context.frame_size or 1024
        for start in range(0, len(x), step):
            frame = av.AudioFrame.from_ndarray(x[start:start + step].reshape(1, -1), format="fltp",
                                               layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = sr, start, Fraction(1, sr)
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path


def dominant_hz(x: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * sr / len(x))


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    import soundfile as sf

    d = tmp_path_factory.mktemp("audio")
    rng = np.random.default_rng(0)
    files = {"tone": d / "tone.wav", "short": d / "short.wav", "stereo48k": d / "stereo48k.wav",
             "noise": d / "noise.wav", "empty": d / "empty.wav", "text": d / "notes.wav",
             "truncated": d / "truncated.flac", "middle": d / "middle.wav"}
    sf.write(files["tone"], tone(3), SR)
    sf.write(files["short"], tone(0.5), SR)
    stereo = np.stack([tone(3, 48000), tone(3, 48000)], axis=1)             # (n, 2) at 48 kHz
    sf.write(files["stereo48k"], stereo, 48000)
    sf.write(files["noise"], (0.3 * rng.standard_normal(3 * SR)).astype(np.float32), SR)
    files["empty"].write_bytes(b"")
    files["text"].write_text("this is a text file with a .wav name\n" * 20)
    sf.write(d / "full.flac", tone(3), SR)
    data = (d / "full.flac").read_bytes()
    files["truncated"].write_bytes(data[: len(data) // 2])
    # 1 s silence | 1 s tone | 1 s silence: the middle second is the loud one
    silence = np.zeros(SR, np.float32)
    sf.write(files["middle"], np.concatenate([silence, tone(1), silence]), SR)
    sf.write(d / "mixed.wav", np.concatenate([tone(2.5), 0.3 * rng.standard_normal(int(2.5 * SR))]
                                             ).astype(np.float32), SR)      # 3 windows
    files["mixed"] = d / "mixed.wav"
    files["mp3"] = write_av_audio(d / "tone.mp3", tone(3), SR, "libmp3lame")
    files["m4a"] = write_av_audio(d / "tone.m4a", tone(3), SR, "aac")
    files["m4a_middle"] = write_av_audio(d / "middle.m4a", np.concatenate(
        [np.zeros(SR, np.float32), tone(1), np.zeros(SR, np.float32)]), SR, "aac")
    return files


@pytest.fixture(scope="module")
def aisfx() -> AisfxEncoder:
    return build_encoder(EncoderConfig(modality="audio", kind="aisfx"))


def cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# --- decoding ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["tone", "stereo48k", "mp3", "m4a"])
def test_load_audio_decodes_downmixes_and_resamples(media, name):
    x = load_audio(media[name], SR)
    assert x.dtype == np.float32 and x.ndim == 1
    # AAC/MP3 add priming and padding: compare lengths with a tolerance
    assert abs(len(x) - 3 * SR) < 0.05 * SR
    assert abs(dominant_hz(x, SR) - 440) < 2
    assert 0.25 < np.abs(x).max() < 0.35


@pytest.mark.parametrize("name", ["middle", "m4a_middle"])
def test_load_audio_max_seconds_keeps_the_middle(media, name):
    x = load_audio(media[name], SR, max_seconds=1.0)
    assert abs(len(x) - SR) <= 1
    assert np.sqrt(np.mean(x[SR // 10: -SR // 10] ** 2)) > 0.15    # the tone, not the silence


def test_load_audio_reasons(media):
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_audio(media["tone"].with_name("missing.wav"), SR)
    with pytest.raises(AudioDecodeError, match="empty file"):
        load_audio(media["empty"], SR)
    with pytest.raises(AudioDecodeError, match="cannot decode audio.*Format not recognised"):
        load_audio(media["text"], SR)
    with pytest.raises(AudioDecodeError, match="cannot decode audio"):
        load_audio(media["truncated"], SR)


def test_load_audio_file_url(media):
    x = load_audio(media["tone"].as_uri(), SR)
    np.testing.assert_array_equal(x, load_audio(media["tone"], SR))


def test_to_mono_accepts_both_layouts():
    x = np.stack([np.ones(10), np.zeros(10)])
    np.testing.assert_allclose(to_mono(x), 0.5)
    np.testing.assert_allclose(to_mono(x.T), 0.5)


# --- aisfx ------------------------------------------------------------------------------------

def golden_signal() -> np.ndarray:
    """3 s: a 440 Hz tone, plus a rising chirp after the first second."""
    t = np.arange(3 * SR) / SR
    return (0.3 * np.sin(2 * np.pi * 440 * t)
            + 0.2 * np.sin(2 * np.pi * (3000 * t + 800 * t ** 2)) * (t > 1)).astype(np.float32)


# aisfx.spectrogram.spectrogram_librosa.compute_spectrogram(filename=<golden_signal() written as a
# float WAV>, sr=44100.0, block_size=2048, hop_size=1024, n_mels=96, f_min=0.0, f_max=22050.0)
# with aisfx 0.1.2 + librosa 0.11.0: shape (96, 130); row sums [::8], column sums [::13], max.
GOLDEN_ROW_SUMS = [81.2239, 345.6586, 408.4136, 25.6271, 11.1001, 7.6722, 9.8007, 86.6840, 137.3672,
                   7.8398, 5.7004, 4.5533]
GOLDEN_COL_SUMS = [286.3544, 64.9650, 64.5152, 63.1821, 85.7090, 82.9238, 81.2687, 82.6759, 80.4621,
                   84.2114]
GOLDEN_MAX = 8.627142


def test_log_mel_matches_recorded_aisfx_spectrogram():
    spec = aisfx_log_mel(golden_signal())
    assert spec.shape == (96, 130) and spec.dtype == np.float32        # (mels, frames)
    np.testing.assert_allclose(spec.sum(axis=1)[::8], GOLDEN_ROW_SUMS, atol=2e-3)
    np.testing.assert_allclose(spec.sum(axis=0)[::13], GOLDEN_COL_SUMS, atol=2e-3)
    assert abs(spec.max() - GOLDEN_MAX) < 1e-4


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("CROSSREC_SLOW_TESTS"),
                    reason="librosa compiles numba kernels (16-45 s on a fresh venv); "
                           "set CROSSREC_SLOW_TESTS=1")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")     # audioread, imported by librosa.load
def test_log_mel_matches_aisfx_librosa_spectrogram(tmp_path):
    """Our numpy log-mel == aisfx's own compute_spectrogram, computed live."""
    import soundfile as sf
    from aisfx.spectrogram.spectrogram_librosa import compute_spectrogram

    sf.write(tmp_path / "golden.wav", golden_signal(), SR, subtype="FLOAT")
    ref = compute_spectrogram(filename=str(tmp_path / "golden.wav"), sr=float(SR), block_size=2048,
                              hop_size=1024, n_mels=96, f_min=0.0, f_max=22050.0)
    np.testing.assert_allclose(aisfx_log_mel(golden_signal()), ref, atol=1e-4)


def test_aisfx_matches_the_packages_own_embedding(media, aisfx):
    """Same weights, spectrogram (transposed to (frames, mels)) and windows as aisfx's recipe."""
    from aisfx import inference as inf
    from aisfx.preprocessing import spectrogram_normalize

    from crossrec.encoders.audio import _load_aisfx

    model = _load_aisfx(aisfx.checkpoint, "cpu")     # torch.load(weights_only=False) + inf.load_bestModel
    spec = spectrogram_normalize(aisfx_log_mel(load_audio(media["noise"], SR)).T, spec_norm="original")
    ref = inf.model_get_embedding(spec, 0.5, True, model, "cpu").numpy().mean(axis=0)
    got = aisfx.encode([str(media["noise"])]).vectors[0]
    assert cos(got, ref) > 0.9999


def test_aisfx_encodes_masks_and_explains(media, aisfx):
    paths = [media["tone"], media["short"], "", media["empty"], media["text"], media["truncated"],
             media["tone"].with_name("missing.wav"), media["mp3"]]
    out = aisfx.encode([str(p) for p in paths])
    assert out.vectors.shape == (8, 512) and out.vectors.dtype == np.float32
    assert out.mask.tolist() == [True, True, False, False, False, False, False, True]
    np.testing.assert_allclose(np.linalg.norm(out.vectors[out.mask], axis=1), 1, atol=1e-5)
    assert not out.vectors[~out.mask].any()
    assert set(out.errors) == {3, 4, 5, 6}                      # "" is absent, not an error
    assert "empty file" in out.errors[3]
    assert "Format not recognised" in out.errors[4] and "Invalid data" in out.errors[4]
    assert "cannot decode audio" in out.errors[5]
    assert "no such file" in out.errors[6]


def test_aisfx_same_sound_close_different_sound_far(media, aisfx):
    out = aisfx.encode([str(media[k]) for k in ("tone", "stereo48k", "m4a", "noise", "short")])
    tone44, tone48, tone_m4a, noise, short = out.vectors
    assert cos(tone44, tone48) > 0.95          # 48 kHz stereo -> 44.1 kHz mono
    assert cos(tone44, tone_m4a) > 0.95        # AAC round trip
    assert cos(tone44, noise) < cos(tone44, tone48) - 0.1
    assert cos(tone44, short) > cos(tone44, noise)              # a padded 0.5 s tone


def test_aisfx_encode_waveforms_is_the_file_path(media, aisfx):
    import soundfile as sf

    stereo, sr = sf.read(media["stereo48k"], dtype="float32")   # (n, 2) at 48 kHz
    from_array = aisfx.encode_waveforms([stereo.T, None, np.zeros(0, np.float32)], sr)
    from_file = aisfx.encode([str(media["stereo48k"])])
    np.testing.assert_allclose(from_array.vectors[0], from_file.vectors[0], atol=1e-5)
    assert from_array.mask.tolist() == [True, False, False]
    assert list(from_array.errors) == [2] and "empty" in from_array.errors[2]


def test_aisfx_options_fingerprint_and_errors(media, aisfx):
    fp = aisfx.fingerprint
    assert "sha256:" in fp and "pool=mean" in fp and "sr=44100" in fp and "hop=0.5" in fp
    assert fp == build_encoder(EncoderConfig(modality="audio")).fingerprint
    raw_max = build_encoder(EncoderConfig(modality="audio", options={"pooling": "max", "normalize": False}))
    assert raw_max.fingerprint != fp
    v = raw_max.encode([str(media["mixed"])]).vectors[0]
    assert abs(np.linalg.norm(v) - 1) > 1e-3                   # not normalised
    assert cos(v, aisfx.encode([str(media["mixed"])]).vectors[0]) < 0.999
    one_hop = build_encoder(EncoderConfig(modality="audio", options={"hop": 1.0}))
    assert one_hop.encode([str(media["short"])]).mask.all()     # one window, hop = window
    assert AisfxEncoder.labels is None                          # aisfx ships no class names
    with pytest.raises(EncoderConfigError, match="unknown option"):
        build_encoder(EncoderConfig(modality="audio", options={"pooling_mode": "max"}))
    with pytest.raises(EncoderConfigError, match="pooling"):
        build_encoder(EncoderConfig(modality="audio", options={"pooling": "median"}))
    with pytest.raises(EncoderConfigError, match="not found"):
        build_encoder(EncoderConfig(modality="audio", model="/nonexistent/checkpoint.pth"))
