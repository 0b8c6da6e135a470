"""Content-based nearest neighbours: a user is the mean of the feature vectors of the items
they interacted with; items are ranked by cosine similarity to that profile (Lops, de Gemmis &
Semeraro, "Content-based Recommender Systems", Recommender Systems Handbook, 2011).

Uses ``train.item_features[feature]`` (e.g. the "content" features of
:func:`crossrec.features.default_content_features`). Item vectors are L2-normalised (zero rows
stay zero); only items whose feature mask is True enter a profile. Items never interacted with
are scored too, so this model serves cold items. Users with no usable history score 0.
``new_item_vectors(features)`` places items it was never fitted on (the service's live cold
start and text search; ``places_new_items = True`` announces this optional extension of the
vector-model contract).

Example:
    >>> model = ContentRecommender(feature="tfidf").fit(train)
    >>> model.score(np.array([0, 1]))              # (2, n_items) float32 cosines
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from crossrec.data.dataset import Features
from crossrec.models.base import Recommender, TrainData, VectorModel, register


def _with_feature(matrix: sp.csr_matrix, mask: np.ndarray) -> sp.csr_matrix:
    """The history restricted to the items that have the feature."""
    out = (matrix @ sp.diags(mask.astype(np.float32))).tocsr()
    out.eliminate_zeros()
    return out


def _l2_normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


@register
class ContentRecommender(Recommender, VectorModel):
    name = "content"
    param_grid: dict[str, list] = {}
    needs_features = True
    places_new_items = True

    @classmethod
    def grid_for(cls, train: TrainData) -> dict[str, list]:
        """Every feature matrix the data offers is a candidate."""
        return {"feature": sorted(train.item_features)} if train.item_features else {}

    def __init__(self, feature: str = "content"):
        self.feature = feature

    def fit(self, train: TrainData, valid: TrainData | None = None) -> ContentRecommender:
        if self.feature not in train.item_features:
            raise ValueError(f"content: no item feature {self.feature!r}; available: "
                             f"{sorted(train.item_features) or 'none'}")
        feats = train.item_features[self.feature]
        if feats.matrix.shape[0] != train.n_items:
            raise ValueError(f"content: feature {self.feature!r} has {feats.matrix.shape[0]} "
                             f"rows, train has {train.n_items} items")
        vectors = _l2_normalise(np.asarray(feats.matrix, dtype=np.float32))
        vectors[~feats.mask] = 0.0
        self.item_vectors_ = vectors                                     # (n_items, d)
        # history restricted to items that have the feature: (n_users, n_items)
        self.user_items_ = _with_feature(train.matrix, feats.mask)
        return self

    def with_history(self, history: TrainData) -> ContentRecommender:
        self._check_fitted()
        has = np.any(self.item_vectors_ != 0, axis=1)
        return self._copy_with(user_items_=_with_feature(history.matrix, has))

    def score(self, users: np.ndarray) -> np.ndarray:
        self._check_fitted()
        users = np.asarray(users, dtype=np.int64)
        return self._profiles(self.user_items_[users]) @ self.item_vectors_.T   # (n, n_items)

    def _profiles(self, history: sp.csr_matrix) -> np.ndarray:
        """(n, d) unit-length mean of the history's item vectors (zeros for no history)."""
        counts = np.asarray(history.sum(axis=1), dtype=np.float32)       # (n, 1)
        profile = np.asarray(history @ self.item_vectors_, dtype=np.float32)
        profile = np.divide(profile, counts, out=np.zeros_like(profile), where=counts > 0)
        return _l2_normalise(profile)

    def item_vectors(self) -> np.ndarray:
        self._check_fitted()
        return self.item_vectors_

    def user_vectors(self, histories: list[np.ndarray]) -> np.ndarray:
        self._check_fitted()
        n_items = len(self.item_vectors_)
        rows = np.repeat(np.arange(len(histories)), [len(h) for h in histories])
        cols = np.concatenate([np.asarray(h, np.int64) for h in histories]) if histories \
            else np.zeros(0, np.int64)
        history = sp.csr_matrix((np.ones(len(cols), np.float32), (rows, cols)),
                                shape=(len(histories), n_items))
        history.data[:] = 1.0                                            # binary, as in fit
        has = np.abs(self.item_vectors_).sum(axis=1) > 0                 # items with the feature
        return self._profiles((history @ sp.diags(has.astype(np.float32))).tocsr())

    def new_item_vectors(self, features: dict[str, Features]) -> np.ndarray:
        """(n, d) unit vectors of new items from ``features[self.feature]``, as in ``fit``."""
        self._check_fitted()
        if self.feature not in features:
            raise ValueError(f"content: new items need feature {self.feature!r}; got "
                             f"{sorted(features) or 'none'}")
        feats = features[self.feature]
        if feats.matrix.shape[1] != self.item_vectors_.shape[1]:
            raise ValueError(f"content: feature {self.feature!r} has dim {feats.matrix.shape[1]}, "
                             f"the model {self.item_vectors_.shape[1]}")
        vectors = _l2_normalise(np.asarray(feats.matrix, dtype=np.float32))
        vectors[~feats.mask] = 0.0
        return vectors
