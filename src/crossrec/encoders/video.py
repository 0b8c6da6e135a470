"""Video encoder: sampled frames, the audio track and a transcript, each by its own encoder.

    >>> enc = build_encoder(EncoderConfig(modality="video", options={"n_frames": 8}))
    >>> out = enc.encode(["trailer.mp4", "silent.webm", "notes.mp4"])
    >>> out.vectors.shape                 # [frames 1280 | audio 512 | transcript 384]
    (3, 2176)
    >>> out.part_masks["audio"].tolist(), out.mask.tolist()
    ([True, False, False], [True, True, False])
    >>> out.errors                        # notes.mp4 is a text file with a wrong extension
    {2: "InvalidDataError: [Errno 1094995529] Invalid data found when processing input: ..."}

A video's vector is the concatenation ``[frames | audio | transcript]``:

- frames: ``n_frames`` frames at evenly spaced times (the middle of ``n_frames`` equal
  slices), decoded with PyAV, encoded by the image encoder and mean-pooled;
- audio: the first audio track, decoded with PyAV to mono and fed to the audio encoder's
  ``encode_waveforms`` (the same path as audio files);
- transcript: a subtitle or text file next to the video (same stem, ``.srt``, ``.vtt`` or
  ``.txt``; also ``<stem>.<lang>.srt|vtt``) or named in ``options["transcripts"]``, stripped of
  cue numbers, timings and markup, encoded by the text encoder.

Each part is L2-normalised and zero where the item lacks it, so the dimension is fixed (the sum
of the parts' dimensions; ``part_slices`` says where each part lies). ``encode`` returns a
:class:`VideoEncodeResult`, which adds ``part_masks`` (part -> (n,) bool); ``encode_parts``
gives every part's own ``EncodeResult`` with its reasons ("no audio stream", ...). An item is
masked only when no part could be encoded.

Note for caches: a transcript is found by the video's path, so changing a sidecar file does not
change the video file's content hash.
"""

from __future__ import annotations

import contextlib
import html
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from crossrec.encoders.audio import (
    AudioDecodeError,
    _in_chunks,
    _l2,
    _one_line,
    _options,
    load_audio,
    local_media,
)
from crossrec.encoders.base import (
    Encoder,
    EncoderConfig,
    EncoderConfigError,
    EncodeResult,
    build_encoder,
    register_encoder,
)

__all__ = ["VideoEncoder", "VideoEncodeResult", "ImageArrayEncoder", "sample_frames",
           "read_transcript", "strip_subtitles", "find_transcript", "NoVideoStreamError", "PARTS"]

PARTS: tuple[str, ...] = ("frames", "audio", "transcript")
TRANSCRIPT_EXTS: tuple[str, ...] = (".srt", ".vtt", ".txt")
SEEK_AFTER_SECONDS = 60.0
"""Videos longer than this are sampled by seeking to each time; shorter ones are decoded once."""


class NoVideoStreamError(AudioDecodeError):
    """A media file without a (non cover-art) video stream."""


@runtime_checkable
class ImageArrayEncoder(Protocol):
    """An image encoder that takes decoded images directly (no temporary files)."""

    def encode_images(self, images: Sequence[Any]) -> EncodeResult:
        """``images``: PIL images (RGB) -> (n, dim) vectors."""


@dataclass
class VideoEncodeResult(EncodeResult):
    """``EncodeResult`` plus which parts each item had: part -> (n,) bool."""

    part_masks: dict[str, np.ndarray] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------
# Frames


def sample_frames(path: str, n_frames: int = 8) -> list[Any]:
    """``n_frames`` RGB PIL images at the middles of ``n_frames`` equal slices of the video.

    Short videos are decoded once; longer ones (> SEEK_AFTER_SECONDS) seek to each time. A video
    shorter than ``n_frames`` frames repeats frames. Raises NoVideoStreamError for audio-only
    files (cover art does not count as video) and PyAV's errors for unreadable files.
    """
    import av

    with av.open(path) as container:
        streams = [s for s in container.streams.video
                   if not s.disposition & av.stream.Disposition.attached_pic]
        if not streams:
            raise NoVideoStreamError("no video stream")
        stream = streams[0]
        stream.thread_type = "AUTO"
        tb = stream.time_base
        origin = float(stream.start_time * tb) if stream.start_time is not None and tb else 0.0
        duration = None
        if stream.duration and tb:
            duration = float(stream.duration * tb)
        elif container.duration:
            duration = container.duration / av.time_base
        if not duration or duration <= 0:
            frames = _decimated(container.decode(stream), n_frames)
        else:
            targets = [origin + duration * (k + 0.5) / n_frames for k in range(n_frames)]
            if duration > SEEK_AFTER_SECONDS:
                frames = _by_seeking(container, stream, targets)
            else:
                frames = _in_one_pass(container.decode(stream), targets)
    if not frames:
        raise AudioDecodeError("no video frame decoded")
    return frames


def _in_one_pass(decoded, targets: list[float]) -> list[Any]:
    """For each target time the first frame at or after it (the last frame if none)."""
    out, last, k = [], None, 0
    for i, frame in enumerate(decoded):
        t = frame.time if frame.time is not None else float(i)
        last = frame
        while k < len(targets) and t >= targets[k] - 1e-6:
            out.append(frame.to_image())
            k += 1
        if k == len(targets):
            break
    if last is not None:
        out += [last.to_image()] * (len(targets) - k)
    return out


def _by_seeking(container, stream, targets: list[float]) -> list[Any]:
    out = []
    for t in targets:
        container.seek(int(t / stream.time_base), stream=stream, backward=True)
        picked = None
        for frame in container.decode(stream):
            picked = frame
            if frame.time is None or frame.time >= t - 1e-6:
                break
        if picked is not None:
            out.append(picked.to_image())
        elif out:
            out.append(out[-1])
    return out


def _decimated(decoded, n_frames: int) -> list[Any]:
    """Even sample of a stream of unknown length: keep every 2**k-th frame (at most 8 per pick)."""
    kept, stride, keep = [], 1, 8 * n_frames
    for i, frame in enumerate(decoded):
        if i % stride == 0:
            kept.append(frame.to_image())
            if len(kept) > keep:
                kept, stride = kept[::2], stride * 2
    if not kept:
        return []
    idx = [min(len(kept) - 1, int((k + 0.5) * len(kept) / n_frames)) for k in range(n_frames)]
    return [kept[i] for i in idx]


# ----------------------------------------------------------------------------------------------
# Transcripts

_TIMING = re.compile(r"-->")
_TAG = re.compile(r"<[^>]*>|\{\\[^}]*\}")
_CUE_NUMBER = re.compile(r"^\d+$")


def strip_subtitles(text: str) -> str:
    """The spoken text of an SRT or WebVTT file: no header, cue numbers, timings, notes or tags.

        >>> strip_subtitles("1\\n00:00:01,000 --> 00:00:02,000\\n<i>Hello</i> there\\n")
        'Hello there'
    """
    lines: list[str] = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n").replace("\r", "\n")):
        rows = [r.strip() for r in block.strip("\n").split("\n")]
        if not rows or rows[0].startswith(("WEBVTT", "NOTE", "STYLE", "REGION")):
            continue
        timing = next((i for i, r in enumerate(rows) if _TIMING.search(r)), None)
        body = rows[timing + 1:] if timing is not None else [r for r in rows if not _CUE_NUMBER.match(r)]
        for row in body:
            row = " ".join(html.unescape(_TAG.sub("", row)).split())
            if row and (not lines or lines[-1] != row):        # captions often repeat a line
                lines.append(row)
    return " ".join(lines)


def read_transcript(path: str) -> str:
    """The text of a .srt / .vtt (stripped) or plain text transcript, whitespace collapsed."""
    with open(path, "rb") as f:
        text = f.read().decode("utf-8-sig", errors="replace")
    if path.lower().endswith((".srt", ".vtt")) or text.lstrip().startswith("WEBVTT"):
        return strip_subtitles(text)
    return " ".join(text.split())


def find_transcript(video_path: str) -> str | None:
    """A transcript next to the video: <stem>.srt|.vtt|.txt, then <stem>.<lang>.srt|.vtt."""
    if "://" in video_path:
        return None
    stem = os.path.splitext(video_path)[0]
    for ext in TRANSCRIPT_EXTS:
        for candidate in (stem + ext, stem + ext.upper()):
            if os.path.isfile(candidate):
                return candidate
    folder, base = os.path.split(stem)
    try:
        names = sorted(os.listdir(folder or "."))
    except OSError:
        return None
    for name in names:
        if (name.startswith(base + ".") and name.lower().endswith((".srt", ".vtt"))
                and name.count(".") == base.count(".") + 2):
            return os.path.join(folder, name)
    return None


# ----------------------------------------------------------------------------------------------
# The encoder


_SUB_DEFAULTS = {"frames": ("image", "mobilenet-v2"), "audio": ("audio", "aisfx"),
                 "transcript": ("text", "sentence-transformers")}
_OPTION_OF = {"frames": "image", "audio": "audio", "transcript": "text"}


@register_encoder
class VideoEncoder(Encoder):
    """Frames + audio track + transcript of video files, concatenated (see the module doc).

    Config options:
        n_frames: frames sampled per video (default 8).
        image: the frame encoder's config without ``modality`` (a dict, or a kind name),
            default {"kind": "mobilenet-v2"}; None = no frame part.
        audio: the audio encoder's config, default {"kind": "aisfx"}; None = no audio part.
        text: the transcript encoder's config, default {"kind": "sentence-transformers"};
            None = no transcript part.
        transcripts: {video path: transcript file} for transcripts not next to their video.

    Sub-encoders can also be passed in built (``image_encoder=``, ...; they then replace the
    option). An image encoder is anything with ``dim``, ``fingerprint`` and ``encode(paths)``;
    one that also has ``encode_images(pil_images)`` (:class:`ImageArrayEncoder`) gets the
    decoded frames directly, otherwise frames go through temporary PNG files. An audio encoder
    with ``encode_waveforms(arrays, sr)`` (and ``sample_rate``) gets the decoded track; otherwise
    it is given the video path.
    """

    kind: ClassVar[str] = "video"
    modality: ClassVar[str] = "video"
    DEFAULTS: ClassVar[dict[str, Any]] = {"n_frames": 8, "image": {"kind": "mobilenet-v2"},
                                          "audio": {"kind": "aisfx"},
                                          "text": {"kind": "sentence-transformers"},
                                          "transcripts": {}}

    def __init__(self, config: EncoderConfig, *, image_encoder: Any = None, audio_encoder: Any = None,
                 text_encoder: Any = None):
        super().__init__(config)
        opts = _options(config, self.DEFAULTS)
        n = opts["n_frames"]
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 256:
            raise EncoderConfigError(f"option 'n_frames' must be an integer in [1, 256], not {n!r}")
        self.n_frames = n
        transcripts = opts["transcripts"]
        if not isinstance(transcripts, dict):
            raise EncoderConfigError("option 'transcripts' must map video paths to transcript files")
        self.transcripts: dict[str, str] = {str(k): str(v) for k, v in transcripts.items()}
        given = {"frames": image_encoder, "audio": audio_encoder, "transcript": text_encoder}
        self.encoders: dict[str, Any] = {}
        for part in PARTS:
            enc = given[part] if given[part] is not None else self._build(part, opts[_OPTION_OF[part]])
            if enc is not None:
                self.encoders[part] = enc
        if not self.encoders:
            raise EncoderConfigError("the video encoder needs at least one of image, audio, text")

    def _build(self, part: str, spec: Any):
        if spec is None or spec is False:
            return None
        modality, default_kind = _SUB_DEFAULTS[part]
        if isinstance(spec, str):
            spec = {"kind": spec}
        if not isinstance(spec, dict):
            raise EncoderConfigError(f"option {_OPTION_OF[part]!r} must be an encoder config (dict), "
                                     f"a kind name or None, not {spec!r}")
        spec = {"kind": default_kind, "device": self.config.device, **spec}
        if spec.pop("modality", modality) != modality:
            raise EncoderConfigError(f"option {_OPTION_OF[part]!r} must configure a {modality} encoder")
        try:
            return build_encoder(EncoderConfig(modality=modality, **spec))
        except EncoderConfigError:
            raise
        except ValueError as e:          # pydantic ValidationError: a typo in the sub-config
            raise EncoderConfigError(f"option {_OPTION_OF[part]!r}: {e}") from e

    # -- shape ------------------------------------------------------------------------------

    @property
    def parts(self) -> tuple[str, ...]:
        """The parts this encoder produces, in vector order."""
        return tuple(self.encoders)

    @property
    def part_slices(self) -> dict[str, slice]:
        """part -> its columns in the concatenated vector."""
        out, start = {}, 0
        for part, enc in self.encoders.items():
            out[part] = slice(start, start + int(enc.dim))
            start += int(enc.dim)
        return out

    @property
    def dim(self) -> int:
        return sum(int(enc.dim) for enc in self.encoders.values())

    @property
    def fingerprint(self) -> str:
        parts = "|".join(f"{p}=[{enc.fingerprint}]" for p, enc in self.encoders.items())
        extra = f"n_frames={self.n_frames},centres" if "frames" in self.encoders else ""
        if "transcript" in self.encoders:
            extra += f"{',' if extra else ''}transcripts=sidecar{'+map' if self.transcripts else ''}"
        return f"video:{extra}|{parts}|l2-per-part"

    # -- encoding -----------------------------------------------------------------------------

    def encode(self, inputs: Sequence[str]) -> VideoEncodeResult:
        """(n, dim) vectors, ``part_masks``; "" rows masked, failures masked with a reason."""
        inputs = list(inputs)
        return self._combine(self.encode_parts(inputs), len(inputs), inputs)

    def _encode(self, inputs: Sequence[str]) -> EncodeResult:
        return self.encode(inputs)

    def encode_parts(self, inputs: Sequence[str]) -> dict[str, EncodeResult]:
        """Each part's own result: part -> EncodeResult with (n, part dim) L2-normalised rows,
        its mask and its reasons (e.g. "NoAudioStreamError: no audio stream").

        A missing or empty file (or a URL that cannot be fetched) fails every part with the
        same reason; an unreadable container fails frames and audio, and a transcript found
        for it is still encoded.
        """
        inputs = list(inputs)
        size = self.config.batch_size                 # videos decoded and held at a time
        chunks = {start: self._parts_of_chunk(inputs[start:start + size])
                  for start in range(0, len(inputs), size)}
        return {part: _in_chunks(len(inputs), size, int(enc.dim),
                                 lambda start, stop, part=part: chunks[start][part])
                for part, enc in self.encoders.items()}

    def _parts_of_chunk(self, inputs: list[str]) -> dict[str, EncodeResult]:
        n = len(inputs)
        results = {p: EncodeResult(np.zeros((n, int(e.dim)), np.float32), np.zeros(n, bool))
                   for p, e in self.encoders.items()}
        waves: dict[int, np.ndarray] = {}
        readable: list[int] = []
        for i, path in enumerate(inputs):
            if not path:
                continue
            with contextlib.ExitStack() as stack:
                try:
                    local = stack.enter_context(local_media(path))
                except Exception as e:  # noqa: BLE001 - missing, empty or not downloadable
                    for res in results.values():
                        res.errors[i] = _one_line(e)
                    continue
                readable.append(i)
                self._decode_one(i, local, results, waves)
        if waves:
            enc = self.encoders["audio"]
            rows = sorted(waves)
            sr = int(getattr(enc, "sample_rate", 44100))
            self._place(results["audio"], rows, enc.encode_waveforms([waves[i] for i in rows], sr))
        if "transcript" in self.encoders:
            self._transcript_part(inputs, readable, results["transcript"])
        return results

    def _decode_one(self, i: int, local: str, results: dict[str, EncodeResult],
                    waves: dict[int, np.ndarray]) -> None:
        """Frames (encoded at once) and the audio track (kept for one batch) of one video."""
        try:
            _probe(local)
        except Exception as e:  # noqa: BLE001 - not a media file PyAV can open
            for part in ("frames", "audio"):
                if part in results:
                    results[part].errors[i] = _one_line(e)
            return
        if "frames" in self.encoders:
            res = results["frames"]
            try:
                out = _encode_images(self.encoders["frames"], sample_frames(local, self.n_frames))
                if not out.mask.any():
                    why = next(iter(out.errors.values()), "the image encoder masked every frame")
                    raise AudioDecodeError(f"no frame could be encoded: {why}")
                res.vectors[i] = _l2(out.vectors[out.mask].mean(axis=0))
                res.mask[i] = True
            except Exception as e:  # noqa: BLE001 - one bad video never stops the batch
                res.errors[i] = _one_line(e)
        if "audio" in self.encoders:
            enc = self.encoders["audio"]
            if not hasattr(enc, "encode_waveforms"):          # an encoder of audio files
                self._place(results["audio"], [i], enc.encode([local]))
                return
            try:
                waves[i] = load_audio(local, int(getattr(enc, "sample_rate", 44100)),
                                      max_seconds=getattr(enc, "max_seconds", None), backend="av")
            except Exception as e:  # noqa: BLE001
                results["audio"].errors[i] = _one_line(e)

    def _transcript_part(self, inputs: list[str], rows: list[int], res: EncodeResult) -> None:
        enc = self.encoders["transcript"]
        texts, where = [], []
        for i in rows:
            path = self.transcripts.get(inputs[i]) or find_transcript(inputs[i])
            if path is None:
                continue                                  # no transcript: absent, not an error
            try:
                text = read_transcript(path)
                if not text:
                    raise ValueError(f"empty transcript: {path}")
            except Exception as e:  # noqa: BLE001
                res.errors[i] = _one_line(e)
                continue
            texts.append(text)
            where.append(i)
        if texts:
            self._place(res, where, enc.encode(texts))

    def _combine(self, parts: dict[str, EncodeResult], n: int, inputs: list[str]) -> VideoEncodeResult:
        """[frames | audio | transcript], each part L2-normalised and zero where absent."""
        vectors = np.zeros((n, self.dim), dtype=np.float32)
        mask = np.zeros(n, dtype=bool)
        for part, cols in self.part_slices.items():
            res = parts[part]
            vectors[:, cols] = np.where(res.mask[:, None], _l2(res.vectors), 0.0)
            mask |= res.mask
        errors = {}
        for i in range(n):
            if inputs[i] and not mask[i]:
                reasons = {p: parts[p].errors[i] for p in parts if i in parts[p].errors}
                if len(set(reasons.values())) == 1:             # the same failure in every part
                    errors[i] = next(iter(reasons.values()))
                else:
                    errors[i] = ("; ".join(f"{p}: {why}" for p, why in reasons.items())
                                 or "no frames, audio or transcript found")
        return VideoEncodeResult(vectors, mask, errors,
                                 part_masks={p: parts[p].mask.copy() for p in parts})

    @staticmethod
    def _place(res: EncodeResult, rows: list[int], out: EncodeResult) -> None:
        for j, i in enumerate(rows):
            if out.mask[j]:
                res.vectors[i] = _l2(out.vectors[j])
                res.mask[i] = True
            elif j in out.errors:
                res.errors[i] = out.errors[j]


def _encode_images(enc: Any, frames: list[Any]) -> EncodeResult:
    """Frames through ``encode_images`` when the encoder has it, else through temporary PNGs."""
    if isinstance(enc, ImageArrayEncoder):
        return enc.encode_images(frames)
    with tempfile.TemporaryDirectory(prefix="crossrec-frames-") as tmp:
        paths = []
        for k, image in enumerate(frames):
            paths.append(os.path.join(tmp, f"frame{k:03d}.png"))
            image.save(paths[-1])
        return enc.encode(paths)



def _probe(path: str) -> None:
    """Raise PyAV's error when ``path`` is not a media container it can open."""
    import av

    with av.open(path):
        pass
