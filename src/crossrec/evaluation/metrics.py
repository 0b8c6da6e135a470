"""Pure, vectorised top-k ranking metrics for implicit-feedback recommendation.

Conventions shared by every function in this module:

* Users and items are dense ``int`` indices.
* ``ranked`` is an ``int64`` array of shape ``(n_users, K)`` holding item
  indices, best first. An entry of ``-1`` means "no item at this position" and
  is ignored everywhere (it is never a hit and never counts as recommended).
  Items are assumed distinct within a row; should an item appear twice, only
  its first (best) position can be a hit.
* ``relevant`` is a ``scipy.sparse`` CSR matrix of shape ``(n_users, n_items)``
  whose stored nonzero entries mark relevant items (binary gains: the values
  are ignored, stored explicit zeros are not relevant). Row ``u`` of ``ranked``
  corresponds to row ``u`` of ``relevant``.
* Per-user accuracy metrics are ``float64`` arrays of shape ``(n_users,)``.
  Users whose ``relevant`` row is empty get ``NaN``; :func:`mean_over_users`
  averages ignoring ``NaN``, so aggregates are over users with at least one
  relevant item.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

__all__ = [
    "ACCURACY_METRICS",
    "compute_metrics",
    "hit_matrix",
    "hr_at_k",
    "intra_list_diversity",
    "item_coverage",
    "map_at_k",
    "mean_over_users",
    "mrr_at_k",
    "n_relevant",
    "ndcg_at_k",
    "novelty",
    "precision_at_k",
    "rank_topk",
    "recall_at_k",
]

#: Names of the per-user accuracy metrics produced by :func:`compute_metrics`.
ACCURACY_METRICS: tuple[str, ...] = ("recall", "ndcg", "hr", "mrr", "precision", "map")

_DEFAULT_BATCH = 256


# ---------------------------------------------------------------------------
# input helpers
# ---------------------------------------------------------------------------


def _as_ranked(ranked: np.ndarray) -> np.ndarray:
    """Return ``ranked`` as a 2-D int64 array (no copy when already so)."""
    ranked = np.asarray(ranked)
    if ranked.ndim != 2:
        raise ValueError(f"ranked must be 2-D (n_users, K), got shape {ranked.shape}")
    if ranked.size and not np.issubdtype(ranked.dtype, np.integer):
        raise TypeError(f"ranked must hold integer item indices, got dtype {ranked.dtype}")
    return ranked.astype(np.int64, copy=False)


def _as_relevant(relevant: sp.spmatrix | sp.sparray) -> sp.csr_matrix:
    """Return ``relevant`` as canonical CSR (sorted, no duplicates, no stored zeros).

    The input is never modified; a copy is made only when it needs fixing.
    """
    if not sp.issparse(relevant):
        raise TypeError("relevant must be a scipy.sparse matrix (CSR preferred)")
    rel = sp.csr_matrix(relevant)
    if not rel.has_canonical_format:
        rel = rel.copy()
        rel.sum_duplicates()
    if rel.nnz and not np.all(rel.data != 0):
        rel = rel.copy()
        rel.eliminate_zeros()
    return rel


def _check_k(k: int, n_cols: int) -> int:
    k = int(k)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if k > n_cols:
        raise ValueError(f"k={k} exceeds the number of ranked columns ({n_cols})")
    return k


def n_relevant(relevant: sp.spmatrix | sp.sparray) -> np.ndarray:
    """Number of relevant items per user, int64 ``(n_users,)``."""
    rel = _as_relevant(relevant)
    return np.diff(rel.indptr).astype(np.int64)


# ---------------------------------------------------------------------------
# ranking
# ---------------------------------------------------------------------------


def rank_topk(
    scores: np.ndarray,
    k: int,
    exclude: sp.spmatrix | sp.sparray | None = None,
    candidates: np.ndarray | None = None,
    *,
    inplace: bool = False,
    batch_size: int = _DEFAULT_BATCH,
) -> np.ndarray:
    """Top-``k`` item indices per user from a dense score matrix.

    Args:
        scores: float ``(n_users, n_items)``; higher is better. Scores of
            ``-inf`` or ``NaN`` mark an item as unrankable.
        k: number of items to return per user.
        exclude: optional sparse ``(n_users, n_items)``; stored entries of row
            ``u`` (typically the training items) are never ranked for user ``u``.
        candidates: optional boolean ``(n_items,)``; items where it is False are
            never ranked for anyone.
        inplace: if True, ``scores`` itself is used as scratch space: excluded,
            non-candidate and NaN entries are overwritten with ``-inf``. Saves a
            copy; requires a writable floating-point array. Default False leaves
            ``scores`` untouched (each user batch is copied).
        batch_size: users processed per batch (keeps the working set in cache).

    Returns:
        int64 ``(n_users, k)``, best first. Ties are broken by the lower item
        index. When a user has fewer than ``k`` rankable items the row is padded
        with ``-1``.
    """
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D (n_users, n_items), got shape {scores.shape}")
    k = int(k)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    n_users, n_items = scores.shape
    if not np.issubdtype(scores.dtype, np.floating):
        if inplace:
            raise TypeError("inplace=True needs a floating-point scores array")
        scores = scores.astype(np.float64)  # already a private copy
        inplace = True
    if inplace and not scores.flags.writeable:
        raise ValueError("inplace=True needs a writable scores array")

    excl = None
    if exclude is not None:
        if not sp.issparse(exclude):
            raise TypeError("exclude must be a scipy.sparse matrix")
        excl = sp.csr_matrix(exclude)
        if excl.shape != scores.shape:
            raise ValueError(f"exclude shape {excl.shape} != scores shape {scores.shape}")
    drop_cols = None
    if candidates is not None:
        cand = np.asarray(candidates)
        if cand.dtype != np.bool_ or cand.shape != (n_items,):
            raise ValueError(f"candidates must be a boolean mask of shape ({n_items},)")
        drop_cols = np.flatnonzero(~cand)
        if drop_cols.size == 0:
            drop_cols = None

    out = np.full((n_users, k), -1, dtype=np.int64)
    kk = min(k, n_items)
    if n_users == 0 or kk == 0:
        return out
    batch_size = max(1, int(batch_size))
    neg_inf = -np.inf

    for b0 in range(0, n_users, batch_size):
        b1 = min(b0 + batch_size, n_users)
        block = scores[b0:b1] if inplace else scores[b0:b1].copy()
        nb = b1 - b0

        # mask unrankable entries with -inf
        nan_mask = np.isnan(block)
        if nan_mask.any():
            block[nan_mask] = neg_inf
        if drop_cols is not None:
            block[:, drop_cols] = neg_inf
        if excl is not None:
            lo, hi = excl.indptr[b0], excl.indptr[b1]
            if hi > lo:
                rows = np.repeat(np.arange(nb), np.diff(excl.indptr[b0 : b1 + 1]))
                block[rows, excl.indices[lo:hi]] = neg_inf

        # select the kk largest per row
        if kk < n_items:
            part = np.argpartition(block, n_items - kk, axis=1)
            sel = part[:, n_items - kk :]
            thresh = np.take_along_axis(block, part[:, n_items - kk : n_items - kk + 1], 1)
            # rows where values equal to the k-th largest spill outside the
            # selection: re-select so that the lowest indices among ties win
            n_ge = np.count_nonzero(block >= thresh, axis=1)
            tied = np.flatnonzero((n_ge > kk) & (thresh[:, 0] > neg_inf))
            if tied.size:
                sub = block[tied]
                t = thresh[tied]
                gt = sub > t
                eq = sub == t
                need = kk - np.count_nonzero(gt, axis=1)
                keep = gt | (eq & (np.cumsum(eq, axis=1) <= need[:, None]))
                sel = sel.copy()
                sel[tied] = np.nonzero(keep)[1].reshape(tied.size, kk)
        else:
            sel = np.broadcast_to(np.arange(n_items), (nb, n_items))

        # order the selection: score descending, then item index ascending
        sel = np.sort(sel, axis=1)
        vals = np.take_along_axis(block, sel, 1)
        order = np.argsort(-vals, axis=1, kind="stable")
        top = np.take_along_axis(sel, order, 1)
        top[np.take_along_axis(vals, order, 1) == neg_inf] = -1
        out[b0:b1, :kk] = top
    return out


# ---------------------------------------------------------------------------
# hits and accuracy metrics
# ---------------------------------------------------------------------------


def hit_matrix(ranked: np.ndarray, relevant: sp.spmatrix | sp.sparray) -> np.ndarray:
    """Boolean ``(n_users, K)``: True where ``ranked[u, j]`` is relevant for ``u``.

    Vectorised: the relevant pairs are encoded as sorted keys
    ``row * n_items + col`` and looked up with ``np.searchsorted``. ``-1``
    entries are never hits; a repeated item is a hit at its first position only.
    """
    ranked = _as_ranked(ranked)
    rel = _as_relevant(relevant)
    n_users, n_cols = ranked.shape
    if rel.shape[0] != n_users:
        raise ValueError(f"ranked has {n_users} rows but relevant has {rel.shape[0]}")
    n_items = rel.shape[1]
    hits = np.zeros((n_users, n_cols), dtype=bool)
    if ranked.size == 0:
        return hits
    lo, hi = ranked.min(), ranked.max()
    if lo < -1 or hi >= n_items:
        raise ValueError(f"ranked entries must lie in [-1, {n_items - 1}], got [{lo}, {hi}]")
    if rel.nnz == 0:
        return hits

    row_of = np.repeat(np.arange(n_users, dtype=np.int64), np.diff(rel.indptr))
    rel_keys = row_of * n_items + rel.indices  # sorted: canonical CSR
    valid = ranked >= 0
    keys = np.arange(n_users, dtype=np.int64)[:, None] * n_items + ranked
    pos = np.searchsorted(rel_keys, keys)
    np.minimum(pos, rel_keys.size - 1, out=pos)
    hits = (rel_keys[pos] == keys) & valid

    if n_cols > 1:  # a repeated item only counts once (at its best position)
        order = np.argsort(ranked, axis=1, kind="stable")
        srt = np.take_along_axis(ranked, order, 1)
        dup_sorted = (srt[:, 1:] == srt[:, :-1]) & (srt[:, 1:] >= 0)
        if dup_sorted.any():
            dup = np.zeros_like(hits)
            np.put_along_axis(dup, order[:, 1:], dup_sorted, 1)
            hits &= ~dup
    return hits


def _discounts(n: int) -> np.ndarray:
    """``1 / log2(rank + 1)`` for ranks ``1..n``, float64 ``(n,)``."""
    return 1.0 / np.log2(np.arange(2, n + 2, dtype=np.float64))


def _nan_empty(values: np.ndarray, n_rel: np.ndarray) -> np.ndarray:
    values = values.astype(np.float64, copy=False)
    values[n_rel == 0] = np.nan
    return values


def _recall(hits_k: np.ndarray, n_rel: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return _nan_empty(np.count_nonzero(hits_k, axis=1) / n_rel, n_rel)


def _precision(hits_k: np.ndarray, n_rel: np.ndarray, k: int) -> np.ndarray:
    return _nan_empty(np.count_nonzero(hits_k, axis=1) / float(k), n_rel)


def _hr(hits_k: np.ndarray, n_rel: np.ndarray) -> np.ndarray:
    return _nan_empty(hits_k.any(axis=1).astype(np.float64), n_rel)


def _ndcg(hits_k: np.ndarray, n_rel: np.ndarray, k: int) -> np.ndarray:
    disc = _discounts(k)
    dcg = hits_k @ disc
    ideal = np.concatenate(([0.0], np.cumsum(disc)))[np.minimum(n_rel, k)]
    with np.errstate(divide="ignore", invalid="ignore"):
        return _nan_empty(dcg / ideal, n_rel)


def _mrr(hits_k: np.ndarray, n_rel: np.ndarray) -> np.ndarray:
    first = np.argmax(hits_k, axis=1)
    rr = np.where(hits_k.any(axis=1), 1.0 / (first + 1.0), 0.0)
    return _nan_empty(rr, n_rel)


def _map(
    hits_k: np.ndarray, n_rel: np.ndarray, k: int, cum_hits: np.ndarray | None = None
) -> np.ndarray:
    if cum_hits is None:
        cum_hits = np.cumsum(hits_k, axis=1)
    prec_at_i = cum_hits[:, :k] / np.arange(1, k + 1, dtype=np.float64)
    num = np.einsum("ij,ij->i", prec_at_i, hits_k)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _nan_empty(num / np.minimum(n_rel, k), n_rel)


def _prepare(
    ranked: np.ndarray, relevant: sp.spmatrix | sp.sparray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    ranked = _as_ranked(ranked)
    k = _check_k(k, ranked.shape[1])
    rel = _as_relevant(relevant)
    hits = hit_matrix(ranked[:, :k], rel)
    return hits, np.diff(rel.indptr)


def recall_at_k(ranked: np.ndarray, relevant: sp.spmatrix | sp.sparray, k: int) -> np.ndarray:
    """Recall@k per user: hits in the top ``k`` / ``|relevant|``; ``(n_users,)``.

    NaN for users without relevant items (aggregate with :func:`mean_over_users`,
    i.e. over users with >= 1 relevant item).
    """
    hits, n_rel = _prepare(ranked, relevant, k)
    return _recall(hits, n_rel)


def precision_at_k(ranked: np.ndarray, relevant: sp.spmatrix | sp.sparray, k: int) -> np.ndarray:
    """Precision@k per user: hits in the top ``k`` / ``k``; ``(n_users,)``.

    ``-1`` padding counts as a miss. NaN for users without relevant items.
    """
    hits, n_rel = _prepare(ranked, relevant, k)
    return _precision(hits, n_rel, int(k))


def ndcg_at_k(ranked: np.ndarray, relevant: sp.spmatrix | sp.sparray, k: int) -> np.ndarray:
    """NDCG@k per user with binary gains; ``(n_users,)``.

    DCG = sum over hit ranks r <= k of ``1 / log2(r + 1)`` (ranks start at 1);
    the ideal DCG places ``min(k, |relevant|)`` hits at the top. NaN for users
    without relevant items.
    """
    hits, n_rel = _prepare(ranked, relevant, k)
    return _ndcg(hits, n_rel, int(k))


def hr_at_k(ranked: np.ndarray, relevant: sp.spmatrix | sp.sparray, k: int) -> np.ndarray:
    """Hit rate@k per user: 1.0 if any of the top ``k`` is relevant else 0.0.

    Shape ``(n_users,)``; NaN for users without relevant items.
    """
    hits, n_rel = _prepare(ranked, relevant, k)
    return _hr(hits, n_rel)


def mrr_at_k(ranked: np.ndarray, relevant: sp.spmatrix | sp.sparray, k: int) -> np.ndarray:
    """Reciprocal rank of the first hit within the top ``k`` (0.0 if none).

    Shape ``(n_users,)``; NaN for users without relevant items.
    """
    hits, n_rel = _prepare(ranked, relevant, k)
    return _mrr(hits, n_rel)


def map_at_k(ranked: np.ndarray, relevant: sp.spmatrix | sp.sparray, k: int) -> np.ndarray:
    """Average precision@k per user; ``(n_users,)``.

    AP@k = (sum over positions i <= k holding a hit of precision@i) divided by
    ``min(k, |relevant|)``. Note the denominator: ``min(k, |relevant|)`` (as in
    most recommender libraries), not ``|relevant|`` as in trec_eval's
    ``map_cut``; a perfect top-k list therefore always scores 1. NaN for users
    without relevant items.
    """
    hits, n_rel = _prepare(ranked, relevant, k)
    return _map(hits, n_rel, int(k))


def compute_metrics(
    ranked: np.ndarray,
    relevant: sp.spmatrix | sp.sparray,
    ks: Sequence[int] = (10, 20),
    metrics: Sequence[str] = ACCURACY_METRICS,
) -> dict[str, np.ndarray]:
    """All per-user accuracy metrics for every cut-off in ``ks``.

    Args:
        ranked: int64 ``(n_users, K)`` with ``K >= max(ks)``.
        relevant: sparse ``(n_users, n_items)``.
        ks: cut-offs.
        metrics: subset of :data:`ACCURACY_METRICS` to compute.

    Returns:
        ``{"recall@10": (n_users,), "ndcg@10": ..., ...}`` in the order
        ``for k in ks: for metric in metrics``. Users without relevant items are
        NaN; aggregate with :func:`mean_over_users`. The hit matrix is computed
        once and shared by all metrics and cut-offs.
    """
    ranked = _as_ranked(ranked)
    ks = [int(k) for k in ks]
    unknown = set(metrics) - set(ACCURACY_METRICS)
    if unknown:
        raise ValueError(f"unknown metrics {sorted(unknown)}; choose from {ACCURACY_METRICS}")
    if not ks:
        return {}
    k_max = max(_check_k(k, ranked.shape[1]) for k in ks)
    rel = _as_relevant(relevant)
    hits_all = hit_matrix(ranked[:, :k_max], rel)
    n_rel = np.diff(rel.indptr)
    cum_hits = np.cumsum(hits_all, axis=1) if "map" in metrics else None

    out: dict[str, np.ndarray] = {}
    for k in ks:
        hits = hits_all[:, :k]
        for name in metrics:
            if name == "recall":
                val = _recall(hits, n_rel)
            elif name == "ndcg":
                val = _ndcg(hits, n_rel, k)
            elif name == "hr":
                val = _hr(hits, n_rel)
            elif name == "mrr":
                val = _mrr(hits, n_rel)
            elif name == "precision":
                val = _precision(hits, n_rel, k)
            else:  # "map"
                val = _map(hits, n_rel, k, cum_hits)
            out[f"{name}@{k}"] = val
    return out


def mean_over_users(values: np.ndarray) -> float:
    """Mean of a per-user metric ignoring NaN, i.e. over users with >= 1 relevant item.

    Returns NaN (without a warning) when every entry is NaN or the array is empty.
    """
    values = np.asarray(values, dtype=np.float64)
    mask = ~np.isnan(values)
    if not mask.any():
        return float("nan")
    return float(values[mask].mean())


# ---------------------------------------------------------------------------
# beyond-accuracy metrics
# ---------------------------------------------------------------------------


def _topk_items(ranked: np.ndarray, k: int) -> np.ndarray:
    """The non-negative entries of ``ranked[:, :k]`` as a flat int64 array."""
    ranked = _as_ranked(ranked)
    k = _check_k(k, ranked.shape[1])
    top = ranked[:, :k]
    return top[top >= 0]


def item_coverage(ranked: np.ndarray, k: int, n_candidates: int) -> float:
    """Share of the catalogue recommended to anyone: distinct items in all top-k / n_candidates.

    Args:
        ranked: int64 ``(n_users, K)``, ``-1`` entries ignored.
        k: cut-off.
        n_candidates: number of items that could have been recommended.
    """
    if n_candidates <= 0:
        raise ValueError(f"n_candidates must be positive, got {n_candidates}")
    items = _topk_items(ranked, k)
    if items.size == 0:
        return 0.0
    seen = np.zeros(int(items.max()) + 1, dtype=bool)
    seen[items] = True
    return float(np.count_nonzero(seen)) / float(n_candidates)


def novelty(ranked: np.ndarray, k: int, item_popularity: np.ndarray, n_users: int) -> float:
    """Mean self-information ``-log2(share)`` over all recommended (user, item) slots.

    ``share = item_popularity[item] / n_users`` where ``item_popularity`` (``(n_items,)``)
    counts the training users who interacted with each item and ``n_users`` is
    the number of training users. Items with popularity 0 use
    ``share = 1 / n_users`` (as if seen by one user). ``-1`` slots are ignored;
    returns NaN when nothing was recommended.
    """
    if n_users <= 0:
        raise ValueError(f"n_users must be positive, got {n_users}")
    items = _topk_items(ranked, k)
    if items.size == 0:
        return float("nan")
    pop = np.asarray(item_popularity, dtype=np.float64)[items]
    share = np.maximum(pop, 1.0) / float(n_users)
    return float(-np.log2(share).mean())


def intra_list_diversity(ranked: np.ndarray, k: int, item_vectors: np.ndarray) -> float:
    """Mean over users of ``1 - mean pairwise cosine similarity`` of their top-k items.

    Args:
        ranked: int64 ``(n_users, K)``; ``-1`` entries ignored.
        k: cut-off.
        item_vectors: float ``(n_items, d)``; rows are L2-normalised here, a zero
            vector has cosine 0 with everything (itself included).

    Only users with at least 2 items in their top ``k`` count; NaN if none.
    The mean is over unordered pairs of distinct list positions. Vectorised over
    all users at once with the identity
    ``sum_{i != j} <v_i, v_j> = ||sum_i v_i||^2 - sum_i ||v_i||^2``: the per-user
    sums ``sum_i v_i`` come from one sparse (user x item) @ (item x d) product
    and the squared norms from ``einsum``, so no ``(n_users, k, d)`` gather or
    ``k x k`` Gram matrix is formed.
    """
    ranked = _as_ranked(ranked)
    k = _check_k(k, ranked.shape[1])
    vecs = np.asarray(item_vectors, dtype=np.float64)
    if vecs.ndim != 2:
        raise ValueError(f"item_vectors must be 2-D (n_items, d), got shape {vecs.shape}")
    n_users, n_items = ranked.shape[0], vecs.shape[0]
    top = ranked[:, :k]
    valid = top >= 0
    m = np.count_nonzero(valid, axis=1)
    ok = m >= 2
    if not ok.any():
        return float("nan")
    items = top[valid]
    if items.max() >= n_items:
        raise ValueError("ranked contains item indices beyond item_vectors")

    norms = np.sqrt(np.einsum("ij,ij->i", vecs, vecs))
    unit = np.divide(vecs, norms[:, None], out=np.zeros_like(vecs), where=norms[:, None] > 0)
    self_sim = (norms > 0).astype(np.float64)  # <v_i, v_i> after normalisation

    # (n_users, n_items) count matrix of each user's list positions
    indptr = np.concatenate(([0], np.cumsum(m)))
    lists = sp.csr_matrix((np.ones(items.size), items, indptr), shape=(n_users, n_items))
    summed = lists @ unit  # (n_users, d): sum of the user's unit vectors
    sq = np.einsum("bd,bd->b", summed, summed)
    off_diag = sq - lists @ self_sim
    mf = m[ok].astype(np.float64)
    mean_cos = off_diag[ok] / (mf * (mf - 1.0))
    return float(np.mean(1.0 - mean_cos))
