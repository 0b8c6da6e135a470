"""A trained recommender as one folder that the service loads without any training code.

Layout of an artifact folder::

    artifact.json      format, model name, dataset, created, version, encoders, config, metrics
    model/             the model's own save() (model.json + state.npz, or its own files)
    catalog.parquet    one row per item index: id, medium, text fields, media, categories, ...
    users.parquet      one row per user index: the external user id
    history.parquet    the interactions the model was trained on (user, item, timestamp, value)
    item_vectors.npy   (n_items, d) float32, for vector models (what the index is built from)
    content_vectors.npy  (n_items, D) float16, optional: the items' content feature (the content
                       recipe's blocks) where the model's own vectors are another space; the
                       service says from it which modality links two items

The folder is written under a temporary name and renamed into place, so a reader never sees a
half-written artifact; ``version`` is a hash of the model files (it changes whenever the model
is retrained or tuned).

Example:
    >>> save_artifact("artifacts/demo", model, dataset, split.fit_interactions("test"),
    ...               metrics={"ndcg@20": 0.31})
    >>> art = load_artifact("artifacts/demo")
    >>> art.model.recommend(np.array([0]), k=10)
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from crossrec._io import atomic_folder
from crossrec.data.catalog import Catalog
from crossrec.data.dataset import Dataset
from crossrec.data.idmap import IdMap
from crossrec.data.interactions import Interactions
from crossrec.models.base import Recommender, VectorModel, histories_from, jsonable

FORMAT = 1


@dataclass
class Artifact:
    """A loaded artifact: the model plus everything needed to serve it.

    Attributes:
        path: the folder it was read from.
        meta: the contents of ``artifact.json``.
        model: the fitted recommender (``model.is_fitted``).
        users, items: the id maps (external id <-> index).
        catalog: item content, row-aligned with ``items``.
        history: the training interactions (user and item indices).
        item_vectors: (n_items, d) float32 for vector models, else None.
        content_vectors: (n_items, D) float16 content feature rows, memory-mapped, or None
            (not saved).
    """

    path: Path
    meta: dict[str, Any]
    model: Recommender
    users: IdMap
    items: IdMap
    catalog: Catalog
    history: Interactions
    item_vectors: np.ndarray | None = None
    content_vectors: np.ndarray | None = None
    _histories: list[np.ndarray] | None = field(default=None, repr=False)

    @property
    def version(self) -> str:
        return self.meta["version"]

    def histories(self) -> list[np.ndarray]:
        """Per user index, the training item indices in time order (oldest first)."""
        if self._histories is None:
            self._histories = histories_from(self.history, len(self.users))
        return self._histories


def save_artifact(path: str | os.PathLike, model: Recommender, dataset: Dataset,
                  history: Interactions, *, metrics: dict | None = None,
                  config: dict | None = None, encoders: dict | None = None,
                  content_vectors: np.ndarray | None = None, overwrite: bool = True) -> Path:
    """Write a fitted ``model`` trained on ``history`` (indices of ``dataset``) to ``path``.

    Args:
        encoders: modality -> {"config": EncoderConfig fields, "fingerprint": str}: what the
            service needs to encode new items and text queries like the training features.
        content_vectors: (n_items, D) the items' content feature (``ContentRecipe.content_rows``),
            kept where the model's vectors are not that space (a vector of the same width is
            taken to be it, as the content model's is); stored as float16, since it only says
            which modality links two items.
        overwrite: replace an existing artifact at ``path`` (atomically); else raise.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"artifact {path} exists (pass overwrite=True to replace it)")
    model._check_fitted()
    with atomic_folder(path) as tmp:
        model.save(tmp / "model")
        pq.write_table(catalog_to_table(dataset.catalog), tmp / "catalog.parquet")
        pq.write_table(pa.table({"user_id": pa.array(dataset.users.ids.astype(str))}),
                       tmp / "users.parquet")
        pq.write_table(pa.table({"user": history.user, "item": history.item,
                                 "timestamp": history.timestamp, "value": history.value}),
                       tmp / "history.parquet")
        vectors = None
        if isinstance(model, VectorModel):
            vectors = np.ascontiguousarray(model.item_vectors(), dtype=np.float32)
            np.save(tmp / "item_vectors.npy", vectors)
        if content_vectors is not None:
            content_vectors = np.asarray(content_vectors)
            if content_vectors.ndim != 2 or len(content_vectors) != dataset.n_items:
                raise ValueError(f"content_vectors has shape {content_vectors.shape}; expected "
                                 f"({dataset.n_items}, D)")
            if vectors is None or vectors.shape[1] != content_vectors.shape[1]:
                np.save(tmp / "content_vectors.npy", content_vectors.astype(np.float16))
        meta = {"format": FORMAT, "model": model.name, "params": model.get_params(),
                "dataset": dataset.name, "n_users": dataset.n_users, "n_items": dataset.n_items,
                "n_history": len(history), "vector_dim": None if vectors is None
                else int(vectors.shape[1]),
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "version": _hash_files(tmp / "model"), "encoders": encoders or {},
                "config": config or {}, "metrics": metrics or {}}
        (tmp / "artifact.json").write_text(json.dumps(meta, indent=2, default=jsonable),
                                           encoding="utf-8")
    return path


def load_artifact(path: str | os.PathLike) -> Artifact:
    """Read an artifact folder written by :func:`save_artifact`."""
    path = Path(path)
    meta_file = path / "artifact.json"
    if not meta_file.exists():
        raise FileNotFoundError(f"{path} is not a crossrec artifact (no artifact.json)")
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: artifact format {meta.get('format')!r}, this crossrec "
                         f"reads format {FORMAT}")
    model = Recommender.load(path / "model")
    catalog = catalog_from_table(pq.read_table(path / "catalog.parquet"))
    users = IdMap(pq.read_table(path / "users.parquet").column("user_id").to_pylist())
    h = pq.read_table(path / "history.parquet")
    history = Interactions(h.column("user").to_numpy(), h.column("item").to_numpy(),
                           h.column("timestamp").to_numpy(), h.column("value").to_numpy())
    vec_file = path / "item_vectors.npy"
    vectors = np.load(vec_file) if vec_file.exists() else None
    content_file = path / "content_vectors.npy"
    # memory-mapped: the service reads it once, in chunks, to build its modality links
    content = np.load(content_file, mmap_mode="r") if content_file.exists() else None
    if len(catalog) != meta["n_items"] or len(users) != meta["n_users"]:
        raise ValueError(f"{path}: catalog or users do not match artifact.json")
    if content is not None and len(content) != meta["n_items"]:
        raise ValueError(f"{path}: content_vectors.npy has {len(content)} rows, the artifact "
                         f"{meta['n_items']} items")
    return Artifact(path, meta, model, users, IdMap(catalog.ids), catalog, history, vectors,
                    content)


# -- catalog <-> Arrow ------------------------------------------------------------------------

def catalog_to_table(catalog: Catalog) -> pa.Table:
    """Columns ``item_id``, ``medium``, ``text:<field>``, ``media:<kind>``, ``categories``,
    ``tags`` (lists of strings) and ``attr:<name>`` (float64)."""
    cols: dict[str, pa.Array] = {
        "item_id": pa.array(catalog.ids.astype(str)),
        "medium": pa.array([str(m) for m in catalog.medium])}
    for name, col in catalog.text.items():
        cols[f"text:{name}"] = pa.array(["" if v is None else str(v) for v in col])
    for kind, col in catalog.media.items():
        cols[f"media:{kind}"] = pa.array(["" if v is None or v != v else str(v) for v in col])
    cols["categories"] = pa.array([list(c) for c in catalog.categories], pa.list_(pa.string()))
    cols["tags"] = pa.array([list(t) for t in catalog.tags], pa.list_(pa.string()))
    for name, col in catalog.attributes.items():
        cols[f"attr:{name}"] = pa.array(np.asarray(col, dtype=np.float64))
    return pa.table(cols)


def catalog_from_table(table: pa.Table) -> Catalog:
    """Inverse of :func:`catalog_to_table`."""
    def col(name):
        return np.asarray(table.column(name).to_pylist(), dtype=object)

    names = table.column_names
    return Catalog(
        ids=col("item_id"), medium=col("medium"),
        text={n[5:]: col(n) for n in names if n.startswith("text:")},
        media={n[6:]: col(n) for n in names if n.startswith("media:")},
        categories=[tuple(c) for c in table.column("categories").to_pylist()],
        tags=[tuple(t) for t in table.column("tags").to_pylist()],
        attributes={n[5:]: table.column(n).to_numpy() for n in names if n.startswith("attr:")})


def _hash_files(folder: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(f.relative_to(folder).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


__all__ = ["FORMAT", "Artifact", "catalog_from_table", "catalog_to_table", "load_artifact",
           "save_artifact"]
