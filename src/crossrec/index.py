"""Vector indices for serving: exact (numpy) and faiss (flat, IVF or HNSW), with a medium filter.

The contract is small: ``add(vectors, ids, media)``, ``search(queries, k, media=..., mask=...)
-> (ids, scores)``, ``save(path)``, ``load(path)``. Scores are inner products (a vector model's
score). Results are padded with id -1 and score -inf where fewer than k items qualify.

The medium filter keeps one sub-index per medium: a query restricted to some media searches
those sub-indices and merges their top k, so a rare medium is never starved the way a
post-filter or a filtered graph walk can starve it. A query over all media searches every
sub-index, or, with ``all_media=True`` (faiss kinds), one more index over every item: one
search instead of one per medium, at twice the memory. For HNSW that buys little (on the
serving benchmark's 100k items recall@10 0.82 against 0.97 at efSearch 128, and the same cost
as the per-medium walks at equal recall); for IVF, the ``auto`` kind above 50k items, it
halves the cost of a query at nearly equal recall, so ``build_index`` turns it on. The exact
kind gets its all-items matrix from ``freeze()``. ``mask`` (a boolean per item id) is an
exact post-filter: the sub-indices are asked for more items until k pass it.

IVF lists hold their vectors as 8-bit scalar-quantised codes by default (``codes="sq8"``), a
quarter of the bytes a query scans, and the candidates are re-ranked by exact inner products
(faiss ``IndexRefineFlat``, :data:`REFINE_FACTOR` × k of them): on the serving benchmark's
clustered vectors the same recall@10 as float lists (0.993 at 100k items, 0.961 at 1M) in
0.87 and 0.64 × their time, for 1.25 × their memory (codes plus the float copy
the re-ranking reads). ``codes="flat"`` keeps float lists (IndexIVFFlat).

Example:
    >>> index = build_index(item_vectors, media=catalog.medium)      # exact to 50k items, IVF above
    >>> ids, scores = index.search(user_vectors, k=10, media={"video", "audio"})
    >>> ids.shape, scores.shape                                       # (n, 10) each
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

EXACT_MAX_ITEMS = 50_000
"""``build_index(kind="auto")`` uses the exact index up to this many items, IVF above."""

KINDS = ("exact", "flat", "ivf", "hnsw")

IVF_MIN_ITEMS = 10_000
"""An "ivf" sub-index with fewer items than this on its first ``add`` is a flat (exact) one: a
coarse quantiser needs some tens of items per list to be trained."""


CODES = ("sq8", "flat")

REFINE_FACTOR = 2.0
"""With ``codes="sq8"``, how many candidates per result the quantised lists give the exact
re-ranking (2: 60 candidates for the 30 a recommendation asks for)."""


def ivf_lists(n: int) -> int:
    """The number of IVF lists for ``n`` items: 2 sqrt(n) (316 at 25k, 1,000 at 250k), at
    least 1, at most n / 39 (faiss wants 39 training points per list)."""
    return int(max(1, min(round(2 * np.sqrt(n)), n // 39)))


def _topk(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise top k of (n, m) scores, sorted descending: ((n, k') positions, (n, k') scores)."""
    k = min(k, scores.shape[1])
    if k == 0:
        return np.zeros((len(scores), 0), np.int64), np.zeros((len(scores), 0), np.float32)
    if len(scores) == 1:                                   # one query: the serving case, 1-D
        s = scores[0]
        part = np.argpartition(-s, k - 1)[:k] if k < len(s) else np.arange(len(s))
        order = np.argsort(-s[part], kind="stable")
        return part[order][None], s[part][order][None]
    if k < scores.shape[1]:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(scores.shape[1]), scores.shape).copy()
    s = np.take_along_axis(scores, part, 1)
    order = np.argsort(-s, axis=1, kind="stable")
    return np.take_along_axis(part, order, 1), np.take_along_axis(s, order, 1)


class _Part:
    """One medium's vectors: a flat numpy matrix, or a faiss index over the same rows."""

    def __init__(self, kind: str, dim: int, hnsw_m: int, ef_construction: int, ef_search: int,
                 nprobe: int = 32, codes: str = "sq8"):
        self.kind, self.dim = kind, dim
        self.hnsw_m, self.ef_construction, self.ef_search = hnsw_m, ef_construction, ef_search
        self.nprobe, self.codes = nprobe, codes
        self._ivf = None                                    # the IVF inside self.faiss, if any
        self.ids = np.zeros(0, np.int64)                    # (m,) global id of each row
        self._chunks: list[np.ndarray] = []
        self._matrix = np.zeros((0, dim), np.float32)
        self.faiss = None
        if kind in ("flat", "hnsw"):
            import faiss

            if kind == "flat":
                self.faiss = faiss.IndexFlatIP(dim)
            else:
                self.faiss = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
                self.faiss.hnsw.efConstruction = ef_construction
        # "ivf": the faiss index is made by the first add, which trains the coarse quantiser

    def _make_ivf(self, vectors: np.ndarray) -> None:
        """An IVF-flat index trained on (a seeded sample of) the first vectors added, or a flat
        one when there are too few of them to train on."""
        import faiss

        n = len(vectors)
        if n < IVF_MIN_ITEMS:
            self.faiss = faiss.IndexFlatIP(self.dim)
            return
        nlist = ivf_lists(n)
        quantiser = faiss.IndexFlatIP(self.dim)
        if self.codes == "sq8":
            index = faiss.IndexIVFScalarQuantizer(quantiser, self.dim, nlist,
                                                  faiss.ScalarQuantizer.QT_8bit,
                                                  faiss.METRIC_INNER_PRODUCT)
        else:
            index = faiss.IndexIVFFlat(quantiser, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = 0
        sample = vectors if n <= 64 * nlist else vectors[
            np.random.default_rng(0).choice(n, 64 * nlist, replace=False)]
        index.train(np.ascontiguousarray(sample))
        self._owned = (quantiser, index)             # faiss does not own what Python made
        if self.codes == "sq8":
            index = faiss.IndexRefineFlat(index)     # exact re-ranking of the candidates
            index.k_factor = REFINE_FACTOR
        self.set_faiss(index)

    def set_faiss(self, index) -> None:
        import faiss

        self.faiss = index
        self._ivf = faiss.try_extract_index_ivf(index)

    @property
    def matrix(self) -> np.ndarray:
        if self._chunks:
            self._matrix = np.vstack([self._matrix, *self._chunks])
            self._chunks = []
        return self._matrix

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        self.ids = np.concatenate([self.ids, ids])
        if self.kind == "ivf" and self.faiss is None:
            self._make_ivf(vectors)
        if self.faiss is not None:
            self.faiss.add(vectors)
        else:
            self._chunks.append(vectors)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """((n, k) global ids or -1, (n, k) scores or -inf)."""
        n = len(queries)
        k_eff = min(k, len(self.ids))
        if k_eff == 0:
            return np.full((n, k), -1, np.int64), np.full((n, k), -np.inf, np.float32)
        if self.faiss is None:
            pos, s = _topk(queries @ self.matrix.T, k_eff)
            s = s.astype(np.float32, copy=False)
        else:
            if self.kind == "hnsw":
                self.faiss.hnsw.efSearch = max(self.ef_search, k_eff)
            elif self._ivf is not None:
                self._ivf.nprobe = self.nprobe
            s, pos = self.faiss.search(queries, k_eff)
        ok = pos >= 0
        if k_eff == k and ok.all():              # every row full (the usual case): no padding
            return self.ids[pos], s
        ids = np.full((n, k), -1, np.int64)
        scores = np.full((n, k), -np.inf, np.float32)
        ids[:, :k_eff] = np.where(ok, self.ids[np.maximum(pos, 0)], -1)
        scores[:, :k_eff] = np.where(ok, s, -np.inf)
        return ids, scores


class Index:
    """Inner-product index over item vectors, one sub-index per medium.

    Args:
        dim: vector size.
        kind: "exact" (numpy, argpartition), "flat" (faiss IndexFlatIP), "ivf" (faiss
            IndexIVFFlat per medium, :func:`ivf_lists` lists trained on the first vectors
            added; a medium with fewer than :data:`IVF_MIN_ITEMS` is searched flat) or "hnsw"
            (faiss IndexHNSWFlat, inner product).
        hnsw_m, ef_construction, ef_search: HNSW graph degree and beam widths (ef_search is
            raised to k when k is larger).
        nprobe: IVF lists visited per query (recall against cost: on the serving benchmark's
            clustered vectors 32 gives recall@10 0.96 over all media with the all-media index
            and 0.99 within one medium, at 1M items).
        codes: how IVF lists store vectors: "sq8" (8-bit codes, candidates re-ranked exactly,
            the default) or "flat" (float32).
    """

    def __init__(self, dim: int, kind: str = "exact", hnsw_m: int = 32,
                 ef_construction: int = 80, ef_search: int = 128, all_media: bool = False,
                 nprobe: int = 32, codes: str = "sq8"):
        if kind not in KINDS:
            raise ValueError(f"unknown index kind {kind!r}; expected one of {', '.join(KINDS)}")
        if int(nprobe) < 1:
            raise ValueError(f"nprobe must be >= 1, got {nprobe}")
        if codes not in CODES:
            raise ValueError(f"unknown IVF codes {codes!r}; expected one of {', '.join(CODES)}")
        self.dim, self.kind = int(dim), kind
        self.hnsw_m, self.ef_construction, self.ef_search = hnsw_m, ef_construction, ef_search
        self.nprobe, self.codes = int(nprobe), codes
        self.all_media = bool(all_media) and kind != "exact"
        self.parts: dict[str, _Part] = {}
        self._medium_of: dict[int, str] = {}
        # every item in one more sub-index, for searches over all media: with all_media for
        # faiss kinds (kept alongside the per-medium ones), built by freeze() for exact
        self._all: _Part | None = None

    def __len__(self) -> int:
        return sum(len(p.ids) for p in self.parts.values())

    @property
    def media(self) -> list[str]:
        return sorted(self.parts)

    def counts(self) -> dict[str, int]:
        return {m: len(p.ids) for m, p in sorted(self.parts.items())}

    def add(self, vectors: np.ndarray, ids: Iterable[int] | None = None,
            media: Iterable[str] | str | None = None) -> None:
        """Add (n, dim) vectors with their integer ids (default: the next n) and media."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"index of dim {self.dim}: got vectors of shape {vectors.shape}")
        n = len(vectors)
        ids = np.arange(len(self), len(self) + n, dtype=np.int64) if ids is None \
            else np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids, np.int64)
        if media is None or isinstance(media, str):
            media = np.full(n, media or "item", dtype=object)
        media = np.asarray(list(media) if not isinstance(media, np.ndarray) else media, object)
        if len(ids) != n or len(media) != n:
            raise ValueError(f"{n} vectors, {len(ids)} ids, {len(media)} media")
        if self.kind == "exact":
            self._all = None                     # rebuilt by freeze()
        dup = [int(i) for i in ids if int(i) in self._medium_of]
        if dup or len(set(ids.tolist())) != n:
            raise ValueError(f"ids already in the index: {dup[:5] or 'repeated in the batch'}")
        for m in np.unique(media.astype(str)):
            rows = np.flatnonzero(media.astype(str) == m)
            part = self.parts.get(m)
            if part is None:
                part = self.parts[m] = _Part(self.kind, self.dim, self.hnsw_m,
                                             self.ef_construction, self.ef_search, self.nprobe,
                                             self.codes)
            part.add(vectors[rows], ids[rows])
        if self.all_media:
            if self._all is None:
                self._all = _Part(self.kind, self.dim, self.hnsw_m, self.ef_construction,
                                  self.ef_search, self.nprobe, self.codes)
            self._all.add(vectors, ids)
        self._medium_of.update(zip(ids.tolist(), media.astype(str).tolist()))

    def freeze(self) -> Index:
        """Consolidate for concurrent read-only searching (no lazy work left inside a search);
        an exact index also gets all items in one matrix, so a search over every medium is
        one product instead of one per medium (faiss kinds keep such a sub-index all along).
        ``add`` afterwards unfreezes an exact index."""
        for part in self.parts.values():
            part.matrix  # noqa: B018  (stacks pending chunks)
        if self.kind == "exact" and len(self.parts) > 1:
            whole = _Part("exact", self.dim, self.hnsw_m, self.ef_construction, self.ef_search)
            whole.ids = np.concatenate([p.ids for p in self.parts.values()])
            whole._matrix = np.vstack([p.matrix for p in self.parts.values()])
            self._all = whole
        return self

    def medium_of(self, item_id: int) -> str | None:
        return self._medium_of.get(int(item_id))

    def search(self, queries: np.ndarray, k: int, media: Iterable[str] | None = None,
               mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top k ids by inner product for each (n, dim) query.

        Args:
            media: only items of these media (None: all).
            mask: optional bool array indexed by item id; only ids where it is True qualify
                (ids beyond its length do not qualify).
        Returns:
            ((n, k) int64 ids, -1 padded; (n, k) float32 scores, -inf padded), best first.
        """
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if queries.shape[1] != self.dim:
            raise ValueError(f"index of dim {self.dim}: got queries of shape {queries.shape}")
        k = int(k)
        if k < 0:
            raise ValueError(f"k must be >= 0, got {k}")
        wanted = self.parts if media is None else \
            {m: self.parts[m] for m in dict.fromkeys(media) if m in self.parts}
        n = len(queries)
        if not wanted or k == 0:
            return np.full((n, k), -1, np.int64), np.full((n, k), -np.inf, np.float32)
        if mask is not None:
            mask = np.asarray(mask, bool)
        if media is None and self._all is not None and len(self.parts) > 1:
            wanted = {"*": self._all}
        if len(wanted) == 1 and mask is None:     # one sub-index: its answer, sorted and padded
            return next(iter(wanted.values())).search(queries, k)
        got = [self._search_part(p, queries, k, mask) for p in wanted.values()]
        ids = np.hstack([g[0] for g in got])
        scores = np.hstack([g[1] for g in got])
        pos, top = _topk(scores, k)
        out_ids = np.take_along_axis(ids, pos, 1)
        out_ids = np.where(np.isfinite(top), out_ids, -1)
        pad = k - out_ids.shape[1]
        if pad:
            out_ids = np.hstack([out_ids, np.full((n, pad), -1, np.int64)])
            top = np.hstack([top, np.full((n, pad), -np.inf, np.float32)])
        return out_ids.astype(np.int64), top.astype(np.float32)

    @staticmethod
    def _search_part(part: _Part, queries: np.ndarray, k: int, mask: np.ndarray | None):
        """One sub-index's top k that pass ``mask``: fetch more until each row has k passing
        items or the part is exhausted."""
        fetch = min(k, len(part.ids))
        while True:
            ids, scores = part.search(queries, fetch)
            if mask is None:
                return ids, scores
            ok = (ids >= 0) & (ids < len(mask))
            ok[ok] = mask[ids[ok]]
            if (ok.sum(1) >= k).all() or fetch >= len(part.ids):
                return np.where(ok, ids, -1), np.where(ok, scores, -np.inf)
            fetch = min(len(part.ids), fetch * 4)

    # -- persistence --------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the index to a folder (atomically: a temporary folder renamed into place)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        meta = {"format": 1, "dim": self.dim, "kind": self.kind, "all_media": self.all_media,
                "hnsw_m": self.hnsw_m,
                "ef_construction": self.ef_construction, "ef_search": self.ef_search,
                "nprobe": self.nprobe, "codes": self.codes, "parts": {}}
        for j, (medium, part) in enumerate(sorted(self.parts.items())):
            meta["parts"][medium] = f"part{j}"
            np.save(tmp / f"part{j}.ids.npy", part.ids)
            if part.faiss is None:
                np.save(tmp / f"part{j}.vectors.npy", part.matrix)
            else:
                import faiss

                faiss.write_index(part.faiss, str(tmp / f"part{j}.faiss"))
        if self.all_media and self._all is not None:
            import faiss

            meta["all"] = "all"
            np.save(tmp / "all.ids.npy", self._all.ids)
            faiss.write_index(self._all.faiss, str(tmp / "all.faiss"))
        (tmp / "index.json").write_text(json.dumps(meta, indent=2))
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Index:
        path = Path(path)
        meta = json.loads((path / "index.json").read_text())
        index = cls(meta["dim"], meta["kind"], meta["hnsw_m"], meta["ef_construction"],
                    meta["ef_search"], all_media=meta.get("all_media", bool(meta.get("all"))),
                    nprobe=meta.get("nprobe", 32), codes=meta.get("codes", "flat"))
        for medium, stem in meta["parts"].items():
            part = _Part(index.kind, index.dim, index.hnsw_m, index.ef_construction,
                         index.ef_search, index.nprobe, index.codes)
            part.ids = np.load(path / f"{stem}.ids.npy")
            if index.kind == "exact":
                part._matrix = np.load(path / f"{stem}.vectors.npy")
            else:
                import faiss

                part.set_faiss(faiss.read_index(str(path / f"{stem}.faiss")))
            index.parts[medium] = part
            index._medium_of.update((int(i), medium) for i in part.ids.tolist())
        if meta.get("all"):                      # written by this version for faiss kinds
            import faiss

            whole = _Part(index.kind, index.dim, index.hnsw_m, index.ef_construction,
                          index.ef_search, index.nprobe, index.codes)
            whole.ids = np.load(path / "all.ids.npy")
            whole.set_faiss(faiss.read_index(str(path / "all.faiss")))
            index._all = whole
        return index


def build_index(vectors: np.ndarray, media: Iterable[str] | None = None,
                ids: Iterable[int] | None = None, kind: str = "auto", **options) -> Index:
    """An index over ``vectors`` (ids default to row numbers): ``kind="auto"`` is exact up to
    :data:`EXACT_MAX_ITEMS` items and IVF above (8-bit codes re-ranked exactly), per medium and
    over all media (``all_media``); on the serving benchmark's 1M items IVF reached recall@10
    0.96 in 0.27 ms a query where HNSW took 1.4 ms for 0.65 (BENCHMARKS.md, "Serving")."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if kind == "auto":
        kind = "exact" if len(vectors) <= EXACT_MAX_ITEMS else "ivf"
        if kind == "ivf":                   # one IVF walk for queries over every medium
            options = {"all_media": True, **options}
    index = Index(vectors.shape[1], kind, **options)
    index.add(vectors, ids, media)
    return index


__all__ = ["CODES", "EXACT_MAX_ITEMS", "IVF_MIN_ITEMS", "Index", "KINDS", "REFINE_FACTOR",
           "build_index", "ivf_lists"]
