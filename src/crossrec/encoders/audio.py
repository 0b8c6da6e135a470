"""Audio encoders: aisfx sound-event embeddings (offline) and CLAP (audio and text towers).

    >>> enc = build_encoder(EncoderConfig(modality="audio"))             # aisfx, weights in the wheel
    >>> out = enc.encode(["rain.wav", "theme.mp3", "", "missing.ogg"])
    >>> out.vectors.shape, out.mask.tolist()
    ((4, 512), [True, True, False, False])
    >>> out.errors
    {3: 'FileNotFoundError: no such file: missing.ogg'}

Any audio file is read by :func:`load_audio` (soundfile for wav/flac/ogg/..., PyAV for
mp3/m4a/aac/mp4/webm/... and whatever soundfile refuses), averaged to mono and resampled.

``AisfxEncoder`` (kind "aisfx", 512-d) cuts the clip into ~2.3 s windows (100 spectrogram
frames, hop 0.5 window), embeds each with aisfx's network and pools them (mean or max). The
log-mel spectrogram is aisfx's librosa recipe
(``aisfx.spectrogram.spectrogram_librosa.compute_spectrogram``) re-implemented on arrays in
numpy, so that no numba kernel has to be compiled (the test suite checks it against aisfx's own
function). ``CLAPAudioEncoder`` / ``CLAPTextEncoder`` (kinds "clap" / "clap-text") wrap a
transformers ``ClapModel`` given by hub name or local folder; their vectors share one space.

Credits: the aisfx model ("X-Sequential-CE") and its weights are the work of Alison Bernice Ma
and Alexander Lerch, "Representation Learning for the Automatic Indexing of Sound Effects
Libraries", ISMIR 2022 (https://github.com/alisonbma/aisfx), released under the Creative
Commons Attribution 4.0 International License (CC BY 4.0,
https://creativecommons.org/licenses/by/4.0/). crossrec uses the weights unchanged.

aisfx has classifier heads for its nine training libraries (378 classes in all) but ships no
class names, so it offers no tag probabilities for the label bridge: ``AisfxEncoder.labels``
is None.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import math
import os
import re
import tempfile
import urllib.parse
import urllib.request
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar

import numpy as np

from crossrec.encoders.base import (
    Encoder,
    EncoderConfig,
    EncoderConfigError,
    EncodeResult,
    map_safely,
    register_encoder,
)

__all__ = ["AudioDecodeError", "NoAudioStreamError", "load_audio", "to_mono", "resample",
           "local_media", "aisfx_log_mel", "AisfxEncoder", "CLAPAudioEncoder", "CLAPTextEncoder"]

# ----------------------------------------------------------------------------------------------
# Decoding


class AudioDecodeError(ValueError):
    """A file that exists but holds no decodable audio (empty, truncated, corrupt, unsupported)."""


class NoAudioStreamError(AudioDecodeError):
    """A media file (e.g. a silent video) without an audio stream."""


_URL = re.compile(r"^(?:https?|file)://", re.IGNORECASE)
MAX_DOWNLOAD_BYTES = 1 << 30
"""URLs larger than this (1 GiB) are refused."""


@contextlib.contextmanager
def local_media(path: str | os.PathLike, *, timeout: float = 30.0) -> Iterator[str]:
    """A local path for ``path``: the file itself, or a temporary download of a URL.

    Raises FileNotFoundError for a missing file and AudioDecodeError for an empty one.
    """
    path = os.fspath(path)
    if not _URL.match(path):
        _check_file(path)
        yield path
        return
    suffix = os.path.splitext(urllib.parse.urlparse(path).path)[1][:16]
    with tempfile.TemporaryDirectory(prefix="crossrec-media-") as tmp:
        local = os.path.join(tmp, "media" + suffix)
        with urllib.request.urlopen(path, timeout=timeout) as response, open(local, "wb") as f:
            copied = 0
            while chunk := response.read(1 << 20):
                copied += len(chunk)
                if copied > MAX_DOWNLOAD_BYTES:
                    raise AudioDecodeError(f"download larger than {MAX_DOWNLOAD_BYTES} bytes: {path}")
                f.write(chunk)
        _check_file(local, shown=path)
        yield local


def _check_file(path: str, shown: str | None = None) -> None:
    shown = shown or path
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {shown}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"a folder, not a file: {shown}")
    if os.path.getsize(path) == 0:
        raise AudioDecodeError(f"empty file (0 bytes): {shown}")


def to_mono(x: np.ndarray) -> np.ndarray:
    """(n,) or (channels, n) -> float32 (n,), channels averaged."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 2:
        x = x.mean(axis=0) if x.shape[0] <= x.shape[1] else x.mean(axis=1)
    if x.ndim != 1:
        raise AudioDecodeError(f"expected a 1-d or (channels, samples) waveform, got shape {x.shape}")
    return np.ascontiguousarray(x)


def resample(x: np.ndarray, orig_sr: float, target_sr: float) -> np.ndarray:
    """Band-limited resampling of a mono float32 array (soxr 'HQ', as librosa.resample)."""
    if orig_sr == target_sr:
        return x
    n_out = int(math.ceil(len(x) * float(target_sr) / orig_sr))
    try:
        import soxr

        y = soxr.resample(x, orig_sr, target_sr, quality="soxr_hq")
    except ImportError:                                      # librosa brings soxr; just in case
        import librosa

        y = librosa.resample(x, orig_sr=orig_sr, target_sr=target_sr)
    y = np.asarray(y, dtype=np.float32)
    return y[:n_out] if len(y) >= n_out else np.pad(y, (0, n_out - len(y)))


def _middle(n: int, sr: float, max_seconds: float | None) -> tuple[int, int]:
    """(start, count) of the middle ``max_seconds`` of ``n`` samples."""
    if not max_seconds or n <= max_seconds * sr:
        return 0, n
    count = int(round(max_seconds * sr))
    return (n - count) // 2, count


def _read_soundfile(path: str, max_seconds: float | None) -> tuple[np.ndarray, int]:
    import soundfile as sf

    with sf.SoundFile(path) as f:
        sr, n = f.samplerate, f.frames
        start, count = _middle(n, sr, max_seconds)
        if start:
            f.seek(start)
        x = f.read(count, dtype="float32", always_2d=True)        # (count, channels)
    if len(x) < count:
        raise AudioDecodeError(f"truncated: read {len(x)} of {count} samples")
    return x.mean(axis=1), sr


def _read_av(path: str, max_seconds: float | None) -> tuple[np.ndarray, int]:
    """Decode the first audio stream of any container PyAV opens (middle ``max_seconds``)."""
    import av

    with av.open(path) as container:
        if not container.streams.audio:
            raise NoAudioStreamError("no audio stream")
        stream = container.streams.audio[0]
        sr = stream.codec_context.sample_rate or stream.rate
        if not sr:
            raise AudioDecodeError("audio stream without a sample rate")
        duration = None
        if stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / av.time_base
        start_t, wanted = None, None
        if max_seconds and duration and duration > max_seconds:
            origin = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
            start_t = origin + (duration - max_seconds) / 2
            wanted = int(round(max_seconds * sr))
            container.seek(int(start_t / stream.time_base), stream=stream, backward=True)
        resampler = av.AudioResampler(format="fltp", rate=sr)    # any sample format -> float planar
        chunks: list[np.ndarray] = []
        skip, got, first = 0, 0, True
        for frame in container.decode(stream):
            if first and start_t is not None and frame.time is not None:
                skip = max(0, int(round((start_t - frame.time) * sr)))
            first = False
            for out in resampler.resample(frame):
                a = out.to_ndarray().astype(np.float32).mean(axis=0)   # (channels, n) -> (n,)
                chunks.append(a)
                got += len(a)
            if wanted is not None and got >= skip + wanted:
                break
        else:
            for out in resampler.resample(None):                        # flush
                chunks.append(out.to_ndarray().astype(np.float32).mean(axis=0))
    x = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    if wanted is not None:
        x = x[skip:skip + wanted]
    return x, int(sr)


def load_audio(path: str | os.PathLike, sr: int, *, max_seconds: float | None = None,
               backend: str = "auto") -> np.ndarray:
    """Decode an audio (or video) file to a float32 mono array at ``sr`` Hz.

    Args:
        path: a local file or an http(s)/file URL.
        sr: the sample rate wanted.
        max_seconds: keep only the middle ``max_seconds`` (only that part is decoded).
        backend: "auto" (soundfile, then PyAV), "soundfile" or "av".

    Raises FileNotFoundError (missing file), NoAudioStreamError (e.g. a silent video) or
    AudioDecodeError (empty, truncated, corrupt or unsupported file) with the reason.

        >>> x = load_audio("song.m4a", 44100, max_seconds=30)       # (<= 1_323_000,) float32
    """
    if backend not in ("auto", "soundfile", "av"):
        raise ValueError(f"backend must be 'auto', 'soundfile' or 'av', not {backend!r}")
    with local_media(path) as local:
        reasons = []
        x = None
        if backend in ("auto", "soundfile"):
            try:
                x, native_sr = _read_soundfile(local, max_seconds)
            except Exception as e:  # noqa: BLE001 - any soundfile failure -> try PyAV
                reasons.append(f"soundfile: {_one_line(e)}")
        if x is None and backend in ("auto", "av"):
            try:
                x, native_sr = _read_av(local, max_seconds)
            except NoAudioStreamError:
                raise
            except Exception as e:  # noqa: BLE001
                reasons.append(f"PyAV: {_one_line(e)}")
        if x is None:
            raise AudioDecodeError(f"cannot decode audio ({'; '.join(reasons)})")
    if len(x) == 0:
        raise AudioDecodeError("no audio samples decoded")
    if not np.isfinite(x).all():
        raise AudioDecodeError("audio contains NaN or infinite samples")
    return resample(x, native_sr, sr)


def _one_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__


# ----------------------------------------------------------------------------------------------
# Options


def _options(config: EncoderConfig, defaults: dict[str, Any]) -> dict[str, Any]:
    """``defaults`` updated with ``config.options``; unknown keys raise EncoderConfigError."""
    unknown = sorted(set(config.options) - set(defaults))
    if unknown:
        raise EncoderConfigError(f"unknown option(s) {unknown} for encoder {config.kind!r}; "
                                 f"known: {sorted(defaults)}")
    return {**defaults, **config.options}


def _check_max_seconds(value: Any, name: str = "max_seconds") -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise EncoderConfigError(f"option {name!r} must be a positive number or None, not {value!r}")
    return float(value)


def _check_bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise EncoderConfigError(f"option {name!r} must be true or false, not {value!r}")
    return value


def _device(config: EncoderConfig) -> str:
    if config.device:
        return config.device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _l2(v: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    v = np.asarray(v, dtype=np.float32)
    norms = np.linalg.norm(v, axis=-1, keepdims=True)
    return np.where(norms > 0, v / np.maximum(norms, 1e-12), 0.0).astype(np.float32)


def _embed_each(items: Sequence[Any], dim: int, embed: Callable[[Any], np.ndarray]) -> EncodeResult:
    """``embed`` each item (None = absent: masked without a reason); failures masked with one."""
    present = [i for i, x in enumerate(items) if x is not None]
    vectors = np.zeros((len(items), dim), dtype=np.float32)
    mask = np.zeros(len(items), dtype=bool)
    done, errs = map_safely(embed, [items[i] for i in present])
    for j, i in enumerate(present):
        if j not in errs:
            vectors[i], mask[i] = done[j], True
    return EncodeResult(vectors, mask, {present[j]: why for j, why in errs.items()})


def _in_chunks(n: int, size: int, dim: int, run: Callable[[int, int], EncodeResult]) -> EncodeResult:
    """One EncodeResult from ``run(start, stop)`` over consecutive chunks of ``size`` rows."""
    vectors = np.zeros((n, dim), dtype=np.float32)
    mask = np.zeros(n, dtype=bool)
    errors: dict[int, str] = {}
    for start in range(0, n, size):
        stop = min(n, start + size)
        res = run(start, stop)
        vectors[start:stop], mask[start:stop] = res.vectors, res.mask
        errors.update({start + j: why for j, why in res.errors.items()})
    return EncodeResult(vectors, mask, errors)


def _prepare_waveform(w: np.ndarray, sr: int, target_sr: int, max_seconds: float | None) -> np.ndarray:
    """A caller's waveform -> mono float32 at ``target_sr``, middle ``max_seconds``."""
    x = to_mono(w)
    if len(x) == 0:
        raise AudioDecodeError("empty waveform")
    if not np.isfinite(x).all():
        raise AudioDecodeError("audio contains NaN or infinite samples")
    start, count = _middle(len(x), sr, max_seconds)
    return resample(x[start:start + count], sr, target_sr)


@functools.lru_cache(maxsize=16)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def file_sha256(path: str) -> str:
    """sha256 of a file (memoised on path, size and mtime)."""
    st = os.stat(path)
    return _sha256(os.path.abspath(path), st.st_size, st.st_mtime_ns)


# ----------------------------------------------------------------------------------------------
# aisfx

# aisfx.inference constants (checked against the package when the model loads).
AISFX_SAMPLE_RATE = 44100
_SPEC_BLOCK, _SPEC_HOP, _MEL_BINS, _F_MIN, _F_MAX = 2048, 1024, 96, 0.0, 22050.0
_EMB_BLOCK = 100                                          # spectrogram frames per window (~2.3 s)
_MIN_SAMPLES = (_EMB_BLOCK - 1) * _SPEC_HOP               # -> exactly one window of frames
_SPEC_NORM_MAX = 9.457798957824707                        # aisfx spectrogram_normalize("original")


@functools.lru_cache(maxsize=2)
def _aisfx_mel_basis(sr: int) -> np.ndarray:
    """librosa.filters.mel(sr, 2048, n_mels=96, fmin=0, fmax=22050, htk=True, norm=1) in numpy."""
    n_freq = 1 + _SPEC_BLOCK // 2
    fftfreqs = np.linspace(0, sr / 2, n_freq)
    to_mel = lambda f: 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)  # noqa: E731
    mels = np.linspace(to_mel(_F_MIN), to_mel(_F_MAX), _MEL_BINS + 2)
    mel_f = 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    weights = np.zeros((_MEL_BINS, n_freq), dtype=np.float32)
    for i in range(_MEL_BINS):
        weights[i] = np.maximum(0, np.minimum(-ramps[i] / fdiff[i], ramps[i + 2] / fdiff[i + 1]))
    length = np.abs(weights).sum(axis=1, keepdims=True)
    length[length < np.finfo(np.float32).tiny] = 1.0
    return weights / length


def aisfx_log_mel(y: np.ndarray, sr: int = AISFX_SAMPLE_RATE) -> np.ndarray:
    """aisfx's librosa spectrogram of a mono array: (96 mels, frames) float32.

    Same steps as ``aisfx.spectrogram.spectrogram_librosa.compute_spectrogram``: peak
    normalisation, power mel spectrogram (n_fft = win 2048, hop 1024, Hann, centred with zero
    padding, HTK mel scale, filters of unit L1 norm), then ``log10(10000 * S + 1)``.
    """
    y = np.asarray(y, dtype=np.float32)
    peak = float(np.max(np.abs(y))) if len(y) else 0.0
    y = y / (peak if peak > 0 else 1.0)
    n_fft, hop = _SPEC_BLOCK, _SPEC_HOP
    padded = np.pad(y, n_fft // 2, mode="constant")
    n_frames = 1 + (len(padded) - n_fft) // hop
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop][:n_frames]  # (T, n_fft)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)                   # periodic Hann
    spectrum = np.fft.rfft(frames * window, axis=-1).astype(np.complex64)                # (T, 1025)
    power = spectrum.real ** 2 + spectrum.imag ** 2
    mel = _aisfx_mel_basis(sr) @ power.T                                                 # (96, T)
    return np.log10(mel * 10000.0 + 1).astype(np.float32)


@functools.lru_cache(maxsize=4)
def _load_aisfx(checkpoint: str, device: str):
    """aisfx's CrossNet with the given checkpoint, in eval mode (memoised; prints silenced)."""
    import torch

    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from aisfx import inference as inf

        got = (int(inf.SAMPLE_RATE), inf.SPEC_BLOCK_LENGTH, inf.SPEC_HOP_LENGTH, inf.MEL_BINS,
               inf.EMB_BLOCK_LENGTH)
        want = (AISFX_SAMPLE_RATE, _SPEC_BLOCK, _SPEC_HOP, _MEL_BINS, _EMB_BLOCK)
        if got != want:
            raise EncoderConfigError(f"this aisfx version uses settings {got}, crossrec expects {want}")
        # The checkpoint pickles numpy scalars: it cannot load with weights_only=True.
        weights, ds_dict = torch.load(checkpoint, map_location="cpu", weights_only=False)
        model = inf.load_bestModel(weights, ds_dict, device)
    return model


@register_encoder
class AisfxEncoder(Encoder):
    """aisfx sound-event embeddings (512-d) of audio files, pooled over ~2.3 s windows.

    Config:
        model: path of an aisfx-format checkpoint; None = the one inside the aisfx wheel.
        batch_size: windows per forward pass.
        options:
            pooling: "mean" (default) or "max" over the windows of a clip.
            normalize: L2-normalise the clip vector (default True).
            max_seconds: embed only the middle of longer clips (default 30; None = all).
            hop: window hop as a fraction of the window (default 0.5, aisfx's own setting).

    Clips shorter than one window (2.3 s) are padded with silence.
    """

    kind: ClassVar[str] = "aisfx"
    modality: ClassVar[str] = "audio"
    labels: ClassVar[tuple[str, ...] | None] = None   # aisfx ships no class names (module doc)
    sample_rate: ClassVar[int] = AISFX_SAMPLE_RATE
    DEFAULTS: ClassVar[dict[str, Any]] = {"pooling": "mean", "normalize": True, "max_seconds": 30.0,
                                          "hop": 0.5}

    def __init__(self, config: EncoderConfig):
        super().__init__(config)
        opts = _options(config, self.DEFAULTS)
        if opts["pooling"] not in ("mean", "max"):
            raise EncoderConfigError(f"option 'pooling' must be 'mean' or 'max', not {opts['pooling']!r}")
        hop = opts["hop"]
        if isinstance(hop, bool) or not isinstance(hop, int | float) or not 0.01 <= hop <= 1:
            raise EncoderConfigError(f"option 'hop' must be a number in [0.01, 1], not {hop!r}")
        self.pooling: str = opts["pooling"]
        self.normalize = _check_bool(opts["normalize"], "normalize")
        self.max_seconds = _check_max_seconds(opts["max_seconds"])
        self.hop = float(hop)
        if config.model is not None:
            if not os.path.isfile(config.model):
                raise EncoderConfigError(f"aisfx checkpoint not found: {config.model}")
            self.checkpoint = os.path.abspath(config.model)
        else:
            self.checkpoint = _default_aisfx_checkpoint()

    @property
    def dim(self) -> int:
        return 512

    @property
    def fingerprint(self) -> str:
        return (f"aisfx:X-Sequential-CE@sha256:{file_sha256(self.checkpoint)[:16]}"
                f"|sr={self.sample_rate}|logmel=librosa-htk96,n_fft={_SPEC_BLOCK},hop={_SPEC_HOP}"
                f"|window={_EMB_BLOCK},hop={self.hop:g}|pool={self.pooling}"
                f"|l2={int(self.normalize)}|max_s={self.max_seconds}")

    def _encode(self, inputs: Sequence[str]) -> EncodeResult:
        # one clip at a time: memory stays at one decoded clip whatever the number of inputs
        return _embed_each(inputs, self.dim, lambda p: self._embed_one(
            load_audio(p, self.sample_rate, max_seconds=self.max_seconds)))

    def encode_waveforms(self, waveforms: Sequence[np.ndarray | None], sr: int) -> EncodeResult:
        """Embed decoded audio: (n,) or (channels, n) arrays at ``sr`` Hz (None = no audio).

        The same path as files: downmix, middle ``max_seconds``, resample, embed.
        """
        return _embed_each(waveforms, self.dim, lambda w: self._embed_one(
            _prepare_waveform(w, sr, self.sample_rate, self.max_seconds)))

    def _embed_one(self, y: np.ndarray) -> np.ndarray:
        """One clip at 44.1 kHz -> (512,)."""
        import torch
        from aisfx.preprocessing import blocking

        model = _load_aisfx(self.checkpoint, _device(self.config))
        if len(y) < _MIN_SAMPLES:                                   # aisfx needs >= one window
            y = np.pad(y, (0, _MIN_SAMPLES - len(y)))
        spec = aisfx_log_mel(y).T / _SPEC_NORM_MAX                  # (frames, 96) -- the transpose
        # aisfx's compute_hopSize would assert hop < frames, which fails for hop=1 on one window
        hop_frames = max(1, int(round(_EMB_BLOCK * self.hop)))
        blocks = blocking(spec, block_size=_EMB_BLOCK, hop_size=hop_frames,  # (n_windows, 100, 96)
                          drop_partial_block=True)
        device = next(model.parameters()).device
        outs = []
        with torch.inference_mode():
            for start in range(0, len(blocks), self.config.batch_size):
                batch = torch.as_tensor(blocks[start:start + self.config.batch_size],
                                        dtype=torch.float32, device=device)
                outs.append(model.get_embedding(batch).float().cpu().numpy())   # (b, 512)
        emb = np.concatenate(outs)
        v = emb.mean(axis=0) if self.pooling == "mean" else emb.max(axis=0)
        return _l2(v) if self.normalize else v.astype(np.float32)


def _default_aisfx_checkpoint() -> str:
    import importlib.util

    spec = importlib.util.find_spec("aisfx")
    if spec is None or not spec.submodule_search_locations:
        raise EncoderConfigError("the aisfx package is not installed (pip install --no-deps aisfx)")
    # = aisfx.inference.get_path_modelWeights(), without importing torch here
    return os.path.join(list(spec.submodule_search_locations)[0], "models", "checkpoint.pth")


# ----------------------------------------------------------------------------------------------
# CLAP

DEFAULT_CLAP_MODEL = "laion/clap-htsat-unfused"
_WEIGHT_FILES = re.compile(r".*\.(safetensors|bin|pt|pth)$")


def _looks_local(name: str) -> bool:
    """A filesystem path rather than a hub id ("name" or "org/name")."""
    return (os.path.isabs(name) or name.startswith((".", "~")) or os.path.exists(name)
            or name.count("/") > 1 or "\\" in name)


@functools.lru_cache(maxsize=2)
def _load_clap(model: str, device: str):
    """ClapModel in eval mode (memoised: the audio and text encoders share one model)."""
    from transformers import ClapModel

    try:
        return ClapModel.from_pretrained(model).to(device).eval()
    except OSError as e:
        raise EncoderConfigError(f"cannot load CLAP model {model!r}: {_one_line(e)}") from e


class _ClapBase(Encoder):
    DEFAULTS: ClassVar[dict[str, Any]] = {"normalize": True}

    def __init__(self, config: EncoderConfig):
        super().__init__(config)
        model = config.model or DEFAULT_CLAP_MODEL
        if _looks_local(model):
            model = os.path.abspath(os.path.expanduser(model))
            if not os.path.isdir(model):
                raise EncoderConfigError(f"CLAP model folder not found: {config.model}")
        self.model_name = model
        opts = _options(config, self.DEFAULTS)
        self.normalize = _check_bool(opts["normalize"], "normalize")
        self._opts = opts

    def _model(self):
        return _load_clap(self.model_name, _device(self.config))

    @functools.cached_property
    def _clap_config(self):
        from transformers import ClapConfig

        try:
            return ClapConfig.from_pretrained(self.model_name)
        except OSError as e:
            raise EncoderConfigError(f"cannot load CLAP config {self.model_name!r}: {_one_line(e)}") from e

    @property
    def dim(self) -> int:
        return int(self._clap_config.projection_dim)

    @functools.cached_property
    def _revision(self) -> str:
        if os.path.isdir(self.model_name):
            h = hashlib.sha256()
            for name in sorted(os.listdir(self.model_name)):
                if _WEIGHT_FILES.match(name):
                    h.update(name.encode() + file_sha256(os.path.join(self.model_name, name)).encode())
            return "sha256:" + h.hexdigest()[:16]
        return getattr(self._clap_config, "_commit_hash", None) or "unknown"

    def _finish(self, v: np.ndarray) -> np.ndarray:
        return _l2(v) if self.normalize else v.astype(np.float32)


@register_encoder
class CLAPAudioEncoder(_ClapBase):
    """The audio tower of a CLAP model (transformers ``ClapModel``), projection_dim-d.

    Config:
        model: hub name or local folder holding the model and its feature extractor
            (default "laion/clap-htsat-unfused", which needs the hub or its cache).
        options:
            normalize: L2-normalise (default True); the text tower's vectors share the space.
            max_seconds: embed the middle this many seconds (default None = the feature
                extractor's window, 10 s for LAION's models; longer goes through its
                truncation mode, made deterministic with a fixed seed).
    """

    kind: ClassVar[str] = "clap"
    modality: ClassVar[str] = "audio"
    DEFAULTS: ClassVar[dict[str, Any]] = {"normalize": True, "max_seconds": None}

    def __init__(self, config: EncoderConfig):
        super().__init__(config)
        self._max_seconds = _check_max_seconds(self._opts["max_seconds"])

    @functools.cached_property
    def feature_extractor(self):
        from transformers import ClapFeatureExtractor

        try:
            return ClapFeatureExtractor.from_pretrained(self.model_name)
        except OSError as e:
            raise EncoderConfigError(f"cannot load the CLAP feature extractor of "
                                     f"{self.model_name!r}: {_one_line(e)}") from e

    @property
    def sample_rate(self) -> int:
        return int(self.feature_extractor.sampling_rate)

    @property
    def max_seconds(self) -> float:
        return self._max_seconds or float(self.feature_extractor.max_length_s)

    @property
    def fingerprint(self) -> str:
        fe = self.feature_extractor
        return (f"clap-audio:{self.model_name}@{self._revision}|sr={fe.sampling_rate}"
                f"|mel={fe.feature_size},hop={fe.hop_length},fft={fe.fft_window_size}"
                f"|trunc={fe.truncation},pad={fe.padding}|max_s={self.max_seconds:g}"
                f"|l2={int(self.normalize)}")

    def _encode(self, inputs: Sequence[str]) -> EncodeResult:
        def run(start: int, stop: int) -> EncodeResult:          # one batch decoded at a time
            waves, errors = map_safely(
                lambda p: load_audio(p, self.sample_rate, max_seconds=self.max_seconds),
                inputs[start:stop])
            return self._embed(waves, errors)

        return _in_chunks(len(inputs), self.config.batch_size, self.dim, run)

    def encode_waveforms(self, waveforms: Sequence[np.ndarray | None], sr: int) -> EncodeResult:
        """Embed decoded audio: (n,) or (channels, n) arrays at ``sr`` Hz (None = no audio)."""
        def run(start: int, stop: int) -> EncodeResult:
            chunk = waveforms[start:stop]
            present = [i for i, w in enumerate(chunk) if w is not None]
            prepared, errs = map_safely(
                lambda w: _prepare_waveform(w, sr, self.sample_rate, self.max_seconds),
                [chunk[i] for i in present])
            waves: list[np.ndarray | None] = [None] * len(chunk)
            for j, i in enumerate(present):
                waves[i] = prepared[j]
            return self._embed(waves, {present[j]: why for j, why in errs.items()})

        return _in_chunks(len(waveforms), self.config.batch_size, self.dim, run)

    def _features(self, y: np.ndarray) -> tuple[np.ndarray, bool]:
        """Model input of one clip, independent of the batch: (channels, frames, mels), longer."""
        fe = self.feature_extractor
        state = np.random.get_state()
        try:
            np.random.seed(0)               # fusion / rand_trunc draw random crops of long clips
            feats = fe(y, sampling_rate=fe.sampling_rate, return_tensors="np")
        finally:
            np.random.set_state(state)
        return feats["input_features"][0], len(y) > fe.nb_max_samples

    def _embed(self, waves: list[np.ndarray | None], errors: dict[int, str]) -> EncodeResult:
        import torch

        vectors = np.zeros((len(waves), self.dim), dtype=np.float32)
        mask = np.zeros(len(waves), dtype=bool)
        rows = [i for i, w in enumerate(waves) if w is not None]
        feats, errs = map_safely(self._features, [waves[i] for i in rows])
        for j, why in errs.items():
            errors[rows[j]] = why
        ok = [(i, feats[j]) for j, i in enumerate(rows) if j not in errs]
        model = self._model()
        device = next(model.parameters()).device
        for start in range(0, len(ok), self.config.batch_size):
            chunk = ok[start:start + self.config.batch_size]
            x = torch.as_tensor(np.stack([f for _, (f, _) in chunk]), dtype=torch.float32, device=device)
            longer = torch.tensor([[lg] for _, (_, lg) in chunk], device=device)
            with torch.inference_mode():
                out = model.audio_model(input_features=x, is_longer=longer)
                emb = model.audio_projection(out.pooler_output)           # (b, projection_dim)
            idx = [i for i, _ in chunk]
            vectors[idx] = self._finish(emb.float().cpu().numpy())
            mask[idx] = True
        return EncodeResult(vectors, mask, errors)


@register_encoder
class CLAPTextEncoder(_ClapBase):
    """The text tower of a CLAP model: texts in the same space as ``CLAPAudioEncoder``'s audio.

    Config:
        model: hub name or local folder holding the model and its tokenizer.
        options: normalize (default True).
    """

    kind: ClassVar[str] = "clap-text"
    modality: ClassVar[str] = "text"

    @functools.cached_property
    def tokenizer(self):
        from transformers import AutoTokenizer

        try:
            return AutoTokenizer.from_pretrained(self.model_name)
        except (OSError, ValueError) as e:
            raise EncoderConfigError(f"cannot load the CLAP tokenizer of {self.model_name!r}: "
                                     f"{_one_line(e)}") from e

    @property
    def fingerprint(self) -> str:
        return (f"clap-text:{self.model_name}@{self._revision}|max_len={self._max_length}"
                f"|l2={int(self.normalize)}")

    @property
    def _max_length(self) -> int:
        # RoBERTa-style positions start after the padding index: 2 fewer usable positions.
        limit = self._clap_config.text_config.max_position_embeddings - 2
        return int(min(self.tokenizer.model_max_length, limit))

    def _encode(self, inputs: Sequence[str]) -> EncodeResult:
        import torch

        model = self._model()
        device = next(model.parameters()).device
        vectors = np.zeros((len(inputs), self.dim), dtype=np.float32)
        for start in range(0, len(inputs), self.config.batch_size):
            batch = list(inputs[start:start + self.config.batch_size])
            tok = self.tokenizer(batch, padding=True, truncation=True, max_length=self._max_length,
                                 return_tensors="pt")
            with torch.inference_mode():
                out = model.text_model(input_ids=tok["input_ids"].to(device),
                                       attention_mask=tok["attention_mask"].to(device))
                emb = model.text_projection(out.pooler_output)          # (b, projection_dim)
            vectors[start:start + len(batch)] = self._finish(emb.float().cpu().numpy())
        return EncodeResult(vectors, np.ones(len(inputs), dtype=bool))

