"""The encoder contract: content in, id-aligned float32 vectors out, with a presence mask.

An encoder turns one modality of a batch of items into vectors:

    >>> enc = build_encoder(EncoderConfig(modality="text"))          # all-MiniLM-L6-v2, offline
    >>> out = enc.encode(["A novel of space and time", "Jazz piano"])
    >>> out.vectors.shape, out.mask.tolist()
    ((2, 384), [True, True])

Inputs are strings: the composed text for "text"; a local path or URL for "image", "audio"
and "video" ("" = the item has none). A missing, truncated, corrupt or unsupported input
never raises: its row is zeros, ``mask`` is False and ``errors`` names the reason. A
configuration naming an unknown encoder or a model path that does not exist raises at once
(:class:`EncoderConfigError`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

Modality = Literal["text", "image", "audio", "video"]
MODALITIES: tuple[str, ...] = ("text", "image", "audio", "video")


class EncoderConfigError(ValueError):
    """A configuration that cannot work: unknown encoder, missing model path, bad option."""


class EncoderConfig(BaseModel):
    """Which encoder to build for one modality (typed; unknown keys are errors).

    Attributes:
        modality: "text" | "image" | "audio" | "video".
        kind: registry name of the encoder class, e.g. "sentence-transformers", "mobilenet-v2",
            "clip", "aisfx", "clap", "video"; None = the modality's default.
        model: a model name or local path (meaning depends on ``kind``); None = the default.
        batch_size: items per forward pass.
        device: "cpu", "cuda", ... (None = cuda when available, else cpu).
        options: further encoder-specific settings, validated by the encoder.
    """

    model_config = ConfigDict(extra="forbid")

    modality: Modality
    kind: str | None = None
    model: str | None = None
    batch_size: int = Field(32, ge=1, le=4096)
    device: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)


@dataclass
class EncodeResult:
    """Vectors of one batch of items.

    Attributes:
        vectors: (n, dim) float32; zero rows where ``mask`` is False.
        mask: (n,) bool, True where the item was encoded.
        errors: row -> reason, for every row with an input that could not be encoded
            (rows with no input at all, "", are masked without an error).
    """

    vectors: np.ndarray
    mask: np.ndarray
    errors: dict[int, str] = field(default_factory=dict)

    def __post_init__(self):
        self.vectors = np.asarray(self.vectors, dtype=np.float32)
        self.mask = np.asarray(self.mask, dtype=bool)
        if self.vectors.ndim != 2 or len(self.vectors) != len(self.mask):
            raise ValueError(f"vectors {self.vectors.shape} and mask {self.mask.shape} do not align")


class Encoder:
    """Base class. Subclasses set ``kind`` and ``modality`` and implement ``dim``,
    ``fingerprint`` and ``_encode``; heavy libraries are imported inside methods.

    ``fingerprint`` names the model, its revision (e.g. a hash of the weights file) and the
    preprocessing, so that a change of any of them changes the feature-store cache key.
    """

    kind: ClassVar[str] = ""
    modality: ClassVar[str] = ""

    def __init__(self, config: EncoderConfig):
        self.config = config

    @property
    def dim(self) -> int:
        raise NotImplementedError

    @property
    def fingerprint(self) -> str:
        raise NotImplementedError

    def _encode(self, inputs: Sequence[str]) -> EncodeResult:
        """Encode non-empty inputs (the base class handles "" and batching)."""
        raise NotImplementedError

    def encode(self, inputs: Sequence[str]) -> EncodeResult:
        """(n, dim) vectors for ``inputs``; "" rows are masked, failures masked with a reason."""
        inputs = list(inputs)
        present = [i for i, x in enumerate(inputs) if x]
        vectors = np.zeros((len(inputs), self.dim), dtype=np.float32)
        mask = np.zeros(len(inputs), dtype=bool)
        errors: dict[int, str] = {}
        if present:
            res = self._encode([inputs[i] for i in present])
            rows = np.asarray(present)
            vectors[rows] = res.vectors
            mask[rows] = res.mask
            errors = {present[j]: why for j, why in res.errors.items()}
        return EncodeResult(vectors, mask, errors)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.fingerprint})"


_REGISTRY: dict[str, type[Encoder]] = {}
DEFAULT_KIND: dict[str, str] = {"text": "sentence-transformers", "image": "mobilenet-v2",
                                "audio": "aisfx", "video": "video"}


def register_encoder(cls: type[Encoder]) -> type[Encoder]:
    if not cls.kind or cls.modality not in MODALITIES:
        raise TypeError(f"{cls.__name__} needs `kind` and a `modality` in {MODALITIES}")
    _REGISTRY[cls.kind] = cls
    return cls


def available_encoders() -> dict[str, str]:
    """kind -> modality of every registered encoder."""
    import crossrec.encoders  # noqa: F401  (registers the built-in encoders)
    return {k: c.modality for k, c in sorted(_REGISTRY.items())}


def build_encoder(config: EncoderConfig | dict) -> Encoder:
    """Build the encoder a config names; unknown kinds and modality mismatches raise."""
    import crossrec.encoders  # noqa: F401

    if isinstance(config, dict):
        config = EncoderConfig(**config)
    kind = config.kind or DEFAULT_KIND[config.modality]
    cls = _REGISTRY.get(kind)
    if cls is None:
        raise EncoderConfigError(f"unknown encoder kind {kind!r}; available: "
                                 f"{', '.join(f'{k} ({m})' for k, m in available_encoders().items())}")
    if cls.modality != config.modality:
        raise EncoderConfigError(f"encoder {kind!r} encodes {cls.modality}, not {config.modality}")
    return cls(config)


def map_safely(fn: Callable[[str], Any], inputs: Sequence[str]) -> tuple[list[Any], dict[int, str]]:
    """Apply ``fn`` to each input; collect results and per-row error reasons (never raises).

    The reason is ``"<ExceptionType>: <message>"`` on one line.
    """
    out: list[Any] = []
    errors: dict[int, str] = {}
    for i, x in enumerate(inputs):
        try:
            out.append(fn(x))
        except Exception as e:  # noqa: BLE001 - any unreadable input is masked, never fatal
            out.append(None)
            errors[i] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}".strip()
    return out, errors
