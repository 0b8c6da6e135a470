"""EASE: embarrassingly shallow autoencoder (Steck, WWW 2019), closed form.

    P = (XᵀX + λI)⁻¹,   B = I − P / diag(P)   (so diag(B) = 0),   score(u) = h_u B

``h_u`` is the user's history row: binary, or, with ``recency_tau`` set, weighted by recency:
weight ``recency_floor + exp(−steps_back / recency_tau)`` for the item the user had
``steps_back`` interactions ago (the most recent has step 0). Recency matters when the held-out
items are later in time than the training ones (protocol P1).

The item-item matrix is dense float32 (n_items² × 4 bytes); its size is checked against
``max_memory_mb`` before anything is allocated.

Example:
    >>> model = EASERecommender(lam=3000.0, recency_tau=50.0).fit(train)
    >>> model.score(np.array([0]))                 # (1, n_items) float32
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.linalg.lapack
import scipy.sparse as sp

from crossrec.models.base import Recommender, TrainData, register


@register
class EASERecommender(Recommender):
    name = "ease"
    # λ from hundreds to tens of thousands (Steck's ML-20M optimum is 500; ML-1M P1 test
    # prefers 3000 while valid, closer in time to train, prefers less).
    param_grid = {"lam": [300.0, 1000.0, 3000.0, 10000.0, 30000.0],
                  "recency_tau": [None, 20.0, 100.0]}

    def __init__(self, lam: float = 3000.0, recency_tau: float | None = None,
                 recency_floor: float = 1.0, max_memory_mb: float = 8192.0):
        self.lam = lam
        self.recency_tau = recency_tau
        self.recency_floor = recency_floor
        self.max_memory_mb = max_memory_mb

    def fit(self, train: TrainData, valid: TrainData | None = None) -> EASERecommender:
        n = train.n_items
        need_mb = 2 * n * n * 4 / 2**20       # the Gram matrix and its inverse
        if need_mb > self.max_memory_mb:
            raise MemoryError(f"ease: {n} items need about {need_mb:.0f} MB for the dense "
                              f"item-item matrices, above max_memory_mb={self.max_memory_mb:g}; "
                              f"raise the limit or filter items")
        X = train.matrix.astype(np.float32)
        G = (X.T @ X).toarray()                                  # (n_items, n_items) float32
        G[np.diag_indices(n)] += np.float32(self.lam)
        P = _spd_inverse(G)
        B = P / (-np.diag(P))[None, :]                           # B_ij = -P_ij / P_jj
        B[np.diag_indices(n)] = 0.0
        self.B_ = B.astype(np.float32, copy=False)
        self.history_ = self._history(train)
        return self

    def _history(self, train: TrainData) -> sp.csr_matrix:
        """(n_users, n_items) history weights: binary, or recency-weighted."""
        if self.recency_tau is None:
            return train.matrix
        inter = train.interactions
        order = inter.chronological_order()                      # by user, then time, then row
        users = inter.user[order]
        starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
        sizes = np.diff(np.r_[starts, len(order)])
        steps_back = np.repeat(starts + sizes, sizes) - 1 - np.arange(len(order))
        w = self.recency_floor + np.exp(-steps_back / float(self.recency_tau))
        H = sp.csr_matrix((w.astype(np.float32), (users, inter.item[order])),
                          shape=(train.n_users, train.n_items))
        H.sum_duplicates()
        return H

    def with_history(self, history: TrainData) -> EASERecommender:
        self._check_fitted()
        return self._copy_with(history_=self._history(history))

    def score(self, users: np.ndarray) -> np.ndarray:
        self._check_fitted()
        users = np.asarray(users, dtype=np.int64)
        return np.asarray(self.history_[users] @ self.B_, dtype=np.float32)   # (n, n_items)


def _spd_inverse(G: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric positive definite matrix through LAPACK potrf + potri
    (about n³ flops, half of a Cholesky solve against the identity)."""
    potrf, potri = scipy.linalg.lapack.get_lapack_funcs(("potrf", "potri"), (G,))
    c, info = potrf(G, lower=False, overwrite_a=True, clean=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"ease: XᵀX + λI is not positive definite (potrf info {info})")
    inv, info = potri(c, lower=False, overwrite_c=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"ease: inversion failed (potri info {info})")
    upper = np.triu(inv)
    return upper + np.triu(inv, 1).T                       # potri fills one triangle only

