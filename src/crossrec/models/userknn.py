"""User-based nearest neighbours across media (Herlocker et al. 1999; for cross-domain use,
Cremonesi, Tripodi & Turrin, "Cross-domain recommender systems", ICDMW 2011).

1. Users are compared by their history in one medium (``source_medium``; None = all media):
   cosine of IDF-weighted binary rows (an item seen by few users says more).
2. Item ``i`` is scored by the similarities of the ``k`` nearest neighbours who have it,
   ``Σ_v sim(u, v)^power · X[v, i]``, normalised per user to a maximum of 1.
3. Blended with a popularity prior, ``pop_weight · pop_i / max pop``, which carries users whose
   neighbours say little.
4. Optionally (``ridge_weight`` > 0) plus a ridge map from source-medium history to the items
   of the other media, ``W = (XₛᵀXₛ + λI)⁻¹ XₛᵀXₜ``, fitted on every training user and
   normalised like 2 (with ``source_medium=None``: from the whole history to every item). It is
   computed in its dual form, ``W = Xₛᵀ(XₛXₛᵀ + λI)⁻¹Xₜ``, whose
   system is (n_users × n_users) whatever the number of items.

On P3 (Douban books -> music) the test users have only books in training, so with
``source_medium="book"`` the neighbours are found on books and vote with their music.

Example:
    >>> model = UserKNNRecommender(k=1000, source_medium="book", pop_weight=0.1).fit(train)
    >>> model.score(np.array([0]))                 # (1, n_items) float32
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from crossrec.models.base import Recommender, TrainData, register, with_source_media


@register
class UserKNNRecommender(Recommender):
    name = "userknn"
    # P3 valid NDCG@20 (Douban): books as source, k 200-1000, a small popularity weight.
    param_grid = {"k": [200, 1000], "pop_weight": [0.1, 0.3], "ridge_weight": [0.0, 0.03]}

    @classmethod
    def grid_for(cls, train: TrainData) -> dict[str, list]:
        """On multi-media data, also which medium to compare users on (None = all)."""
        return with_source_media(cls.param_grid, train)

    def __init__(self, k: int = 200, source_medium: str | None = None, pop_weight: float = 0.1,
                 ridge_weight: float = 0.0, ridge: float = 100.0, power: float = 1.0,
                 max_memory_mb: float = 4096.0):
        """
        Args:
            k: neighbours per user.
            source_medium: compare users on their items of this medium (None = all items).
            pop_weight: weight of the normalised popularity prior.
            ridge_weight: weight of the source-medium -> items ridge map (0 = off).
            ridge: its L2 weight λ.
            power: exponent on the similarities (> 1 favours the closest neighbours).
            max_memory_mb: limit for the dense (n_users × n_items) ridge map.
        """
        self.k = k
        self.source_medium = source_medium
        self.pop_weight = pop_weight
        self.ridge_weight = ridge_weight
        self.ridge = ridge
        self.power = power
        self.max_memory_mb = max_memory_mb

    def fit(self, train: TrainData, valid: TrainData | None = None) -> UserKNNRecommender:
        X = train.matrix.astype(np.float32)                             # (n_users, n_items)
        src = self._source_items(train)
        Xs = X[:, src]                                                  # (n_users, n_src)
        df = np.asarray((Xs > 0).sum(axis=0)).ravel()
        self.source_ = src
        self.idf_ = np.log(train.n_users / np.maximum(df, 1)).astype(np.float32)
        self.user_rows_ = self._idf_rows(Xs)                            # (n_users, n_src)
        if self.ridge_weight > 0:
            self.source_rows_ = Xs.tocsr()                              # binary source rows
        self.matrix_ = X.tocsr()
        pop = train.item_popularity.astype(np.float32)
        self.pop_prior_ = pop / max(float(pop.max()), 1.0)              # (n_items,)
        if self.ridge_weight > 0:
            self.ridge_map_ = self._ridge_map(Xs, X, src)               # (n_users, n_items)
        return self

    def _source_items(self, train: TrainData) -> np.ndarray:
        if self.source_medium is None:
            return np.arange(train.n_items)
        if train.item_medium is None:
            raise ValueError("userknn: source_medium given but the data has no item media")
        src = np.flatnonzero(np.asarray(train.item_medium) == self.source_medium)
        if len(src) == 0:
            raise ValueError(f"userknn: no items of medium {self.source_medium!r}; media: "
                             f"{sorted(set(train.item_medium))}")
        return src

    def _ridge_map(self, Xs: sp.csr_matrix, X: sp.csr_matrix, src: np.ndarray) -> np.ndarray:
        """``(XₛXₛᵀ + λI)⁻¹ Xₜ`` (n_users, n_items), zero on the source items' columns;
        a user's ridge scores are then ``(hₛ Xₛᵀ) @ this``."""
        n_users, n_items = X.shape
        need_mb = (n_users * n_users * 8 + 2 * n_users * n_items * 8) / 2**20
        if need_mb > self.max_memory_mb:
            raise MemoryError(f"userknn: the ridge map needs about {need_mb:.0f} MB, above "
                              f"max_memory_mb={self.max_memory_mb:g}")
        K = (Xs @ Xs.T).toarray().astype(np.float64)
        K[np.diag_indices(n_users)] += self.ridge
        # the other media's items; with no source medium, every item (a user's own items then
        # score high too, but seen items are never recommended)
        other = (np.arange(n_items) if self.source_medium is None
                 else np.setdiff1d(np.arange(n_items), src))
        out = np.zeros((n_users, n_items), dtype=np.float32)
        out[:, other] = scipy.linalg.solve(K, X[:, other].toarray().astype(np.float64),
                                           assume_a="pos")
        return out

    def _idf_rows(self, Xs: sp.csr_matrix) -> sp.csr_matrix:
        """Source-medium rows, IDF-weighted and cosine-normalised."""
        W = (Xs @ sp.diags(self.idf_)).tocsr()
        norms = np.sqrt(np.asarray(W.multiply(W).sum(axis=1)).ravel())
        W = sp.diags(np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)) @ W
        return W.astype(np.float32).tocsr()

    def with_history(self, history: TrainData) -> UserKNNRecommender:
        """Users compared to the training users (the neighbours) by ``history``."""
        self._check_fitted()
        Xs = history.matrix.astype(np.float32)[:, self.source_].tocsr()
        return self._copy_with(query_rows_=self._idf_rows(Xs), query_source_rows_=Xs)

    def score(self, users: np.ndarray) -> np.ndarray:
        self._check_fitted()
        users = np.asarray(users, dtype=np.int64)
        query = getattr(self, "query_rows_", self.user_rows_)
        sims = (query[users] @ self.user_rows_.T).toarray()             # (n, n_users)
        sims[np.arange(len(users)), users] = 0.0                        # not one's own neighbour
        k = min(int(self.k), sims.shape[1])
        if k < sims.shape[1]:
            cut = np.partition(sims, -k, axis=1)[:, -k][:, None]
            sims = np.where(sims >= cut, sims, 0.0)
        sims = np.power(np.maximum(sims, 0.0), self.power, dtype=np.float32)
        votes = (self.matrix_.T @ sims.T).T                             # (n, n_items)
        scores = _rownorm(np.ascontiguousarray(votes, dtype=np.float32))
        if self.ridge_weight > 0:
            rows = getattr(self, "query_source_rows_", self.source_rows_)
            kernel = (rows[users] @ self.source_rows_.T).toarray()      # (n, n_users)
            scores += np.float32(self.ridge_weight) * _rownorm(
                np.asarray(kernel @ self.ridge_map_, dtype=np.float32))
        return scores + np.float32(self.pop_weight) * self.pop_prior_[None, :]


def _rownorm(s: np.ndarray) -> np.ndarray:
    """Each row divided by its maximum (rows whose maximum is <= 0 are left as they are)."""
    top = s.max(axis=1, keepdims=True)
    return np.divide(s, top, out=s.copy(), where=top > 0)
