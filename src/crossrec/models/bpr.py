"""Bayesian Personalized Ranking matrix factorisation (Rendle et al., UAI 2009), as implemented
by ``implicit`` (https://github.com/benfred/implicit).

SGD over (user, seen item, sampled unseen item) triples on the binary training matrix. implicit
appends a bias column (user side fixed at 1), so factors have ``factors + 1`` columns and the
item bias is already inside the dot product. ``num_threads`` is implicit's (0: all cores); its
threads update the factors without locks (Hogwild), so only ``num_threads=1`` makes a seed
reproducible bit for bit.

Score: user_factors[u] @ item_factors.T.

Example:
    >>> model = BPRRecommender(factors=64, learning_rate=0.01).fit(train)
    >>> model.score(np.array([0, 1]))              # (2, n_items) float32
"""

from __future__ import annotations

import numpy as np

from crossrec.models.base import Recommender, TrainData, register


@register
class BPRRecommender(Recommender):
    name = "bpr"
    # ML-1M P1 valid NDCG@20: best learning_rate 0.01 for 30 iterations (0.094); longer or
    # faster training overfits.
    param_grid = {"learning_rate": [0.001, 0.003, 0.01], "iterations": [100, 200],
                  "regularization": [0.0001, 0.01]}
    stochastic = True

    def __init__(self, factors: int = 64, learning_rate: float = 0.01,
                 regularization: float = 0.001, iterations: int = 30, seed: int = 0,
                 num_threads: int = 0):
        self.factors = factors
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.iterations = iterations
        self.seed = seed
        self.num_threads = num_threads

    def fit(self, train: TrainData, valid: TrainData | None = None) -> BPRRecommender:
        from implicit.bpr import BayesianPersonalizedRanking
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, "blas"):
            bpr = BayesianPersonalizedRanking(
                factors=int(self.factors), learning_rate=float(self.learning_rate),
                regularization=float(self.regularization), iterations=int(self.iterations),
                random_state=int(self.seed), use_gpu=False,
                num_threads=int(self.num_threads))
            bpr.fit(train.matrix, show_progress=False)
        self.user_factors_ = np.asarray(bpr.user_factors, dtype=np.float32)  # (n_users, f+1)
        self.item_factors_ = np.asarray(bpr.item_factors, dtype=np.float32)  # (n_items, f+1)
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        self._check_fitted()
        users = np.asarray(users, dtype=np.int64)
        return self.user_factors_[users] @ self.item_factors_.T             # (n, n_items)
