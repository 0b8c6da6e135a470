"""Dataset: interactions + catalog + id maps + optional precomputed item features."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from crossrec.data.catalog import Catalog
from crossrec.data.idmap import IdMap
from crossrec.data.interactions import Interactions

log = logging.getLogger(__name__)

RAW_COLUMNS = ("user_id", "item_id", "rating", "timestamp", "event")
"""Columns of a raw interaction frame (external ids); the last three are optional."""


@dataclass
class Features:
    """An id-aligned item feature matrix: row i belongs to item index i.

    Attributes:
        matrix: (n_items, dim) float32.
        mask: (n_items,) bool, False where the item has no such feature (row is zeros).
        name: a short name, e.g. "minilm-text", "vggish-audio".
    """

    matrix: np.ndarray
    mask: np.ndarray
    name: str = ""

    def __post_init__(self):
        self.matrix = np.asarray(self.matrix, dtype=np.float32)
        self.mask = np.asarray(self.mask, dtype=bool)
        if self.matrix.ndim != 2 or len(self.mask) != len(self.matrix):
            raise ValueError(f"features {self.name!r}: matrix {self.matrix.shape} and mask "
                             f"{self.mask.shape} do not align")


@dataclass
class Dataset:
    """Everything a protocol needs, with ids mapped to indices exactly once.

    ``catalog`` rows align with ``items`` (row i is item index i); ``features`` too.
    """

    name: str
    interactions: Interactions
    users: IdMap
    items: IdMap
    catalog: Catalog
    features: dict[str, Features] = field(default_factory=dict)

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    @classmethod
    def from_frame(cls, name: str, frame: pd.DataFrame, catalog: Catalog | None = None,
                   medium: str = "item", features: dict[str, tuple[list[str], np.ndarray]] | None
                   = None) -> Dataset:
        """Build from a raw frame with columns :data:`RAW_COLUMNS` (external string ids).

        Users are indexed in order of first appearance. Items are indexed in catalog order, then
        any interaction items absent from the catalog (those get an empty catalog row, medium
        ``medium``, and a logged warning). ``features`` maps a name to (item ids, matrix); items
        without a row get a zero row and ``mask`` False.
        """
        for col in ("user_id", "item_id"):
            if col not in frame.columns:
                raise ValueError(f"interaction frame of {name!r} lacks column {col!r}")
        user_ids = frame["user_id"].astype(str).to_numpy()
        item_ids = frame["item_id"].astype(str).to_numpy()
        users = IdMap.from_values(user_ids)
        items = IdMap(catalog.ids if catalog is not None else ())
        n_known = len(items)
        item_idx = items.extend(item_ids)
        if catalog is None:
            catalog = Catalog.empty(items.ids, medium=medium)
        elif len(items) > n_known:
            extra = items.ids[n_known:]
            log.warning("%s: %d interaction item(s) are not in the catalog, e.g. %s", name,
                        len(extra), list(extra[:3]))
            catalog = _extend_catalog(catalog, extra, medium)
        inter = Interactions(
            user=users.index(user_ids), item=item_idx,
            timestamp=frame["timestamp"].to_numpy(np.float64) if "timestamp" in frame else None,
            value=frame["rating"].to_numpy(np.float32) if "rating" in frame else None,
            event=frame["event"].to_numpy(object) if "event" in frame else None)
        feats = {}
        for fname, (ids, matrix) in (features or {}).items():
            rows = items.get(ids)
            known = rows >= 0
            full = np.zeros((len(items), matrix.shape[1]), dtype=np.float32)
            full[rows[known]] = matrix[known]
            mask = np.zeros(len(items), dtype=bool)
            mask[rows[known]] = True
            feats[fname] = Features(full, mask, fname)
        return cls(name, inter, users, items, catalog, feats)

    def summary(self) -> dict:
        media = pd.Series(self.catalog.medium).value_counts().to_dict()
        return {"name": self.name, "users": self.n_users, "items": self.n_items,
                "interactions": len(self.interactions), "media": media,
                "features": {k: list(v.matrix.shape) for k, v in self.features.items()}}


def _extend_catalog(catalog: Catalog, extra_ids: np.ndarray, medium: str) -> Catalog:
    n = len(extra_ids)
    return Catalog(
        np.concatenate([catalog.ids, extra_ids]),
        np.concatenate([catalog.medium, np.full(n, medium, dtype=object)]),
        {k: np.concatenate([v, np.full(n, "", dtype=object)]) for k, v in catalog.text.items()},
        {k: np.concatenate([v, np.full(n, "", dtype=object)]) for k, v in catalog.media.items()},
        list(catalog.categories) + [()] * n, list(catalog.tags) + [()] * n,
        {k: np.concatenate([v, np.full(n, np.nan)]) for k, v in catalog.attributes.items()})
