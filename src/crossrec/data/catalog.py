"""Catalog: what each item is (medium, text fields, media files, categories, tags)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MEDIA_KINDS = ("image", "audio", "video")
"""Keys of :attr:`Catalog.media`: one path or URL per item and kind ("" where none)."""


@dataclass
class Catalog:
    """Item content, row-aligned with an item ``IdMap`` (row i describes item index i).

    Attributes:
        ids: (n,) object external item ids.
        medium: (n,) object medium of each item ("movie", "book", "music", "article", ...).
        text: field name -> (n,) object strings ("" where missing), e.g. title, plot, tags.
        media: kind ("image" | "audio" | "video") -> (n,) object path or URL ("" where none).
        categories: per item, a tuple of category / genre labels.
        tags: per item, a tuple of free tags.
        attributes: name -> (n,) float64 numeric side information (NaN where missing), e.g. year.
    """

    ids: np.ndarray
    medium: np.ndarray
    text: dict[str, np.ndarray] = field(default_factory=dict)
    media: dict[str, np.ndarray] = field(default_factory=dict)
    categories: list[tuple[str, ...]] | None = None
    tags: list[tuple[str, ...]] | None = None
    attributes: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self):
        n = len(self.ids)
        self.ids = np.asarray([str(i) for i in self.ids], dtype=object)
        self.medium = np.asarray(self.medium, dtype=object)
        if self.medium.ndim == 0:
            self.medium = np.full(n, self.medium.item(), dtype=object)
        self.categories = [tuple(c) for c in self.categories] if self.categories else [()] * n
        self.tags = [tuple(t) for t in self.tags] if self.tags else [()] * n
        for kind in self.media:
            if kind not in MEDIA_KINDS:
                raise ValueError(f"unknown media kind {kind!r}; expected one of {MEDIA_KINDS}")
        for name, cols in (("text", self.text), ("media", self.media),
                           ("attributes", self.attributes)):
            for key, col in cols.items():
                dtype = np.float64 if name == "attributes" else object
                cols[key] = np.asarray(col, dtype=dtype)
                if len(cols[key]) != n:
                    raise ValueError(f"Catalog.{name}[{key!r}] has {len(cols[key])} rows, "
                                     f"ids has {n}")
        for name in ("medium", "categories", "tags"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"Catalog.{name} has {len(getattr(self, name))} rows, ids has {n}")
        _, first, counts = np.unique(self.ids.astype(str), return_index=True, return_counts=True)
        if (counts > 1).any():
            dup = self.ids[first[counts > 1]][:5].tolist()
            raise ValueError(f"duplicate item ids in catalog: {dup}")

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def empty(cls, ids, medium: str = "item") -> Catalog:
        """A catalog that knows only the ids (content unknown)."""
        return cls(ids=np.asarray(list(ids), dtype=object), medium=medium)

    def take(self, rows: np.ndarray) -> Catalog:
        rows = np.asarray(rows, dtype=np.int64)
        return Catalog(self.ids[rows], self.medium[rows],
                       {k: v[rows] for k, v in self.text.items()},
                       {k: v[rows] for k, v in self.media.items()},
                       [self.categories[r] for r in rows], [self.tags[r] for r in rows],
                       {k: v[rows] for k, v in self.attributes.items()})

    def item_text(self, fields: tuple[str, ...] | None = None, with_categories: bool = True,
                  with_tags: bool = True) -> list[str]:
        """One string per item: the chosen text fields, then categories and tags."""
        fields = tuple(self.text) if fields is None else fields
        out = []
        for i in range(len(self)):
            parts = [str(self.text[f][i]) for f in fields if self.text[f][i]]
            if with_categories and self.categories[i]:
                parts.append(" ".join(self.categories[i]))
            if with_tags and self.tags[i]:
                parts.append(" ".join(self.tags[i]))
            out.append(". ".join(parts))
        return out

    def category_vocabulary(self) -> list[str]:
        return sorted({c for cats in self.categories for c in cats})
