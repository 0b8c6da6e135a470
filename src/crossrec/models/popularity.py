"""Most popular: score = number of training users of the item, the same for every user.

Example:
    >>> model = PopularityRecommender().fit(train)
    >>> model.score(np.array([0]))[0]            # == train.item_popularity
"""

from __future__ import annotations

import numpy as np

from crossrec.models.base import Recommender, TrainData, register


@register
class PopularityRecommender(Recommender):
    name = "pop"
    param_grid: dict[str, list] = {}

    def __init__(self):
        pass

    def fit(self, train: TrainData, valid: TrainData | None = None) -> PopularityRecommender:
        self.popularity_ = np.asarray(train.item_popularity, dtype=np.float32)   # (n_items,)
        return self

    def with_history(self, history: TrainData) -> PopularityRecommender:
        return self                       # scores do not depend on the user's history

    def score(self, users: np.ndarray) -> np.ndarray:
        self._check_fitted()
        # a fresh writable copy per row: recommend() ranks in place
        return np.tile(self.popularity_, (len(users), 1))                      # (n, n_items)
