"""Random: every item gets a uniform random score; the floor any model must beat.

Scores are deterministic per (seed, user): user ``u`` always gets the scores drawn by
``numpy.random.default_rng([seed, u])``, so repeated and batched calls agree.

Example:
    >>> model = RandomRecommender(seed=1).fit(train)
    >>> model.score(np.array([0, 5])).shape      # (2, n_items)
"""

from __future__ import annotations

import numpy as np

from crossrec.models.base import Recommender, TrainData, register


@register
class RandomRecommender(Recommender):
    name = "random"
    param_grid: dict[str, list] = {}
    stochastic = True

    def __init__(self, seed: int = 0):
        self.seed = seed

    def fit(self, train: TrainData, valid: TrainData | None = None) -> RandomRecommender:
        self.n_items_ = int(train.n_items)
        return self

    def with_history(self, history: TrainData) -> RandomRecommender:
        return self                       # scores do not depend on the user's history

    def score(self, users: np.ndarray) -> np.ndarray:
        self._check_fitted()
        users = np.asarray(users, dtype=np.int64)
        out = np.empty((len(users), self.n_items_), dtype=np.float32)   # (n, n_items)
        for row, user in enumerate(users):
            out[row] = np.random.default_rng([self.seed, int(user)]).random(
                self.n_items_, dtype=np.float32)
        return out
