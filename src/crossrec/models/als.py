"""Implicit-feedback ALS (Hu, Koren & Volinsky, ICDM 2008), as implemented by ``implicit``
(https://github.com/benfred/implicit, conjugate-gradient solver of Takács et al., RecSys 2011).

Fitted on the binary training matrix: observed pairs get confidence ``alpha``, all others 1.
``regularization`` is implicit's absolute L2 weight (not scaled by the number of
interactions). Users without training interactions get zero factors, hence all-zero scores.

Score: user_factors[u] @ item_factors.T. ``user_vectors`` folds a new or updated history in
without retraining: the exact least-squares user step of Hu et al., ``(YᵀY + λI + (α − 1)
Σ yᵢyᵢᵀ) x = α Σ yᵢ`` over the history's items (implicit's training reaches it approximately
by conjugate gradient).

Example:
    >>> model = ALSRecommender(factors=64, regularization=10.0).fit(train)
    >>> model.score(np.array([0, 1]))              # (2, n_items) float32
"""

from __future__ import annotations

import numpy as np

from crossrec.models.base import Recommender, TrainData, VectorModel, register


@register
class ALSRecommender(Recommender, VectorModel):
    name = "als"
    # ML-1M P1 valid NDCG@20: best regularization 30 at alpha 1 (0.110), 100 at alpha 10.
    param_grid = {"regularization": [1.0, 3.0, 10.0, 30.0, 100.0, 300.0], "alpha": [1.0, 10.0]}
    stochastic = True

    def __init__(self, factors: int = 128, regularization: float = 10.0, alpha: float = 1.0,
                 iterations: int = 15, seed: int = 0):
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.seed = seed

    def fit(self, train: TrainData, valid: TrainData | None = None) -> ALSRecommender:
        from implicit.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, "blas"):   # implicit's advice: its own threads, not BLAS's
            als = AlternatingLeastSquares(
                factors=int(self.factors), regularization=float(self.regularization),
                alpha=float(self.alpha), iterations=int(self.iterations),
                random_state=int(self.seed), use_gpu=False)
            als.fit(train.matrix, show_progress=False)
        self.user_factors_ = np.asarray(als.user_factors, dtype=np.float32)  # (n_users, f)
        self.item_factors_ = np.asarray(als.item_factors, dtype=np.float32)  # (n_items, f)
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        self._check_fitted()
        users = np.asarray(users, dtype=np.int64)
        return self.user_factors_[users] @ self.item_factors_.T             # (n, n_items)

    def with_history(self, history: TrainData) -> ALSRecommender:
        return self._copy_with(user_factors_=self.history_vectors(history))

    def item_vectors(self) -> np.ndarray:
        self._check_fitted()
        return self.item_factors_

    def user_vectors(self, histories: list[np.ndarray]) -> np.ndarray:
        """(n, factors) fold-in user factors for item-index histories (empty -> zeros)."""
        self._check_fitted()
        Y = self.item_factors_.astype(np.float64)
        base = Y.T @ Y + float(self.regularization) * np.eye(Y.shape[1])
        a = float(self.alpha)
        out = np.zeros((len(histories), Y.shape[1]), dtype=np.float32)
        for row, items in enumerate(histories):
            items = np.unique(np.asarray(items, dtype=np.int64))
            if len(items) == 0:
                continue
            Yu = Y[items]
            out[row] = np.linalg.solve(base + (a - 1.0) * Yu.T @ Yu, a * Yu.sum(axis=0))
        return out
