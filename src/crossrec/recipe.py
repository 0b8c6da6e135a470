"""A content recipe: how encoded modalities become the one content feature a model reads, so
the service builds exactly the same feature for a new item or a text query.

Each item gets three blocks, whatever its medium: **text** (its text, and a video's
transcript), **image** (its picture, or a video's frames) and **audio** (its sound, or a
video's sound track). A block is the L2-normalised mean of the sources the item has (zeros
where it has none); the feature is the weighted concatenation of the blocks
(:func:`crossrec.features.concat_features`). A video therefore shares the image block with
pictures and the audio block with clips, and a text query lands in the text block of every
item: that is what makes "more like this" and search cross-media for a content model.

Example:
    >>> recipe = ContentRecipe.for_encoders(encoders, weights={"text": 1.0, "image": 0.4})
    >>> feats = recipe.combine({"text": text_feats, "image": img_feats, "video": vid_feats})
    >>> feats["content"].matrix.shape                   # (n, 384 + 1280 + 512)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from crossrec.data.dataset import Features

BLOCKS = ("text", "image", "audio")
VIDEO_PART_BLOCK = {"transcript": "text", "frames": "image", "audio": "audio"}


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


class ContentRecipe(BaseModel):
    """Attributes:
        name: the feature name the model was fitted on (``ContentRecommender(feature=name)``).
        dims: block -> its dimension (blocks absent here are not used).
        weights: block -> weight in the concatenation (default 1).
        video_slices: video part ("frames" | "audio" | "transcript") -> [start, stop) columns
            of the video encoder's vector.
        template: the item text template the text encoder was fed (None: the default).
        encoders: modality -> EncoderConfig fields, the encoders the features came from.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = "content"
    dims: dict[str, int]
    weights: dict[str, float] = Field(default_factory=dict)
    video_slices: dict[str, list[int]] = Field(default_factory=dict)
    template: str | None = None
    encoders: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @classmethod
    def for_encoders(cls, encoders: dict[str, Any], weights: dict[str, float] | None = None,
                     template: str | None = None, name: str = "content") -> ContentRecipe:
        """A recipe over built encoders (modality -> Encoder): block dims from their ``dim``,
        video part slices from the video encoder's ``part_slices``."""
        dims: dict[str, int] = {}
        slices: dict[str, list[int]] = {}
        for modality, enc in encoders.items():
            if modality == "video":
                for part, sl in enc.part_slices.items():
                    slices[part] = [sl.start, sl.stop]
                    dims.setdefault(VIDEO_PART_BLOCK[part], sl.stop - sl.start)
            else:
                dims[modality] = int(enc.dim)
        for part, (a, b) in slices.items():
            block = VIDEO_PART_BLOCK[part]
            if dims[block] != b - a:
                raise ValueError(f"video part {part} has dim {b - a}, the {block} block {dims[block]}"
                                 f": use the same {block} encoder for videos")
        return cls(name=name, dims={b: dims[b] for b in BLOCKS if b in dims},
                   weights=weights or {}, video_slices=slices, template=template,
                   encoders={m: e.config.model_dump(mode="json") for m, e in encoders.items()})

    @property
    def dim(self) -> int:
        return sum(self.dims.values())

    def block_slices(self) -> dict[str, slice]:
        """block -> its columns in the combined feature."""
        out, start = {}, 0
        for b in self.dims:
            out[b] = slice(start, start + self.dims[b])
            start += self.dims[b]
        return out

    def combine(self, encoded: dict[str, Features]) -> dict[str, Features]:
        """Modality features (any of text, image, audio, video; row-aligned) -> {block name:
        Features, ..., ``name``: the weighted concatenation}."""
        n = next(iter(encoded.values())).matrix.shape[0] if encoded else 0
        sources: dict[str, list[np.ndarray]] = {b: [] for b in self.dims}
        for modality, feats in encoded.items():
            m = np.where(feats.mask[:, None], feats.matrix, 0).astype(np.float32)
            if modality == "video":
                for part, (a, b) in self.video_slices.items():
                    sources[VIDEO_PART_BLOCK[part]].append(_unit(m[:, a:b]))
            elif modality in self.dims:
                if m.shape[1] != self.dims[modality]:
                    raise ValueError(f"{modality} features have dim {m.shape[1]}, the recipe "
                                     f"{self.dims[modality]}")
                sources[modality].append(_unit(m))
        out: dict[str, Features] = {}
        blocks = []
        for b, dim in self.dims.items():
            parts = sources[b]
            block = _unit(np.sum(parts, axis=0)) if parts else np.zeros((n, dim), np.float32)
            mask = np.abs(block).sum(1) > 0
            out[b] = Features(block, mask, b)
            blocks.append(np.float32(self.weights.get(b, 1.0)) * block)
        matrix = np.hstack(blocks) if blocks else np.zeros((n, 0), np.float32)
        out[self.name] = Features(matrix, np.abs(matrix).sum(1) > 0, self.name)
        return out

    def content_rows(self, features: dict[str, Features] | None) -> np.ndarray | None:
        """(n, dim) float32: the combined content feature of ``features`` (the one named
        ``name`` when it has this recipe's width, else the modality features combined), or None
        when none of this recipe's modalities is there."""
        features = features or {}
        named = features.get(self.name)
        if named is not None and named.matrix.shape[1] == self.dim:
            return np.asarray(named.matrix, np.float32)
        modal = {m: f for m, f in features.items()
                 if m in self.dims or (m == "video" and self.video_slices)}
        return self.combine(modal)[self.name].matrix if modal else None

    def text_query(self, text_vectors: np.ndarray) -> dict[str, Features]:
        """The features of items that have only text (a free-text query): (n, text dim) in."""
        return self.combine({"text": Features(text_vectors, np.ones(len(text_vectors), bool))})


__all__ = ["BLOCKS", "VIDEO_PART_BLOCK", "ContentRecipe"]
