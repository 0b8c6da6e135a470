"""Item-based k-nearest neighbours (Sarwar et al., WWW 2001; Deshpande & Karypis, TOIS 2004).

The item-item similarity is computed by ``implicit.nearest_neighbours`` (Frederickson,
https://github.com/benfred/implicit) over the binary training matrix, keeping the ``k`` most
similar items per item (itself excluded). ``similarity`` picks implicit's weighting:
``"cosine"``, ``"bm25"`` or ``"tfidf"``. ``shrinkage`` damps similarities of rarely seen
pairs: s_ij * sqrt(n_i n_j) / (sqrt(n_i n_j) + shrinkage), with n_i the item's training users
(for cosine this is the usual dot / (|i| |j| + shrinkage); neighbours are chosen before it).

Score of item j for user u: sum of s_ij over the items i in u's training history.

Example:
    >>> model = ItemKNNRecommender(k=200).fit(train)
    >>> model.score(np.array([0, 1]))              # (2, n_items) float32
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp

from crossrec.models.base import Recommender, TrainData, register

SIMILARITIES = ("cosine", "bm25", "tfidf")


@register
class ItemKNNRecommender(Recommender):
    name = "itemknn"
    # ML-1M P1 valid NDCG@20: cosine peaks at k 25-50, bm25 plateaus by k 800 (0.109);
    # shrinkage gave nothing there, so it is left out of the grid.
    param_grid = {"k": [25, 50, 100, 200, 400, 800], "similarity": ["cosine", "bm25"]}

    def __init__(self, k: int = 200, similarity: str = "cosine", shrinkage: float = 0.0):
        self.k = k
        self.similarity = similarity
        self.shrinkage = shrinkage

    def fit(self, train: TrainData, valid: TrainData | None = None) -> ItemKNNRecommender:
        from implicit.nearest_neighbours import BM25Recommender, CosineRecommender, TFIDFRecommender
        from threadpoolctl import threadpool_limits

        if self.similarity not in SIMILARITIES:
            raise ValueError(f"itemknn: unknown similarity {self.similarity!r}; "
                             f"expected one of {SIMILARITIES}")
        if self.k < 1:
            raise ValueError(f"itemknn: k must be >= 1, got {self.k}")
        knn_class = {"cosine": CosineRecommender, "bm25": BM25Recommender,
                     "tfidf": TFIDFRecommender}[self.similarity]
        with threadpool_limits(1, "blas"), warnings.catch_warnings():
            # implicit's own weighting hands its kNN a COO matrix and then warns about it
            warnings.filterwarnings("ignore", message="Method expects CSR input")
            knn = knn_class(K=int(self.k) + 1)          # +1: the item itself, dropped below
            knn.fit(train.matrix, show_progress=False)
        sim = sp.csr_matrix(knn.similarity, dtype=np.float32)   # (n_items, n_items)
        sim = (sim - sp.diags(sim.diagonal())).tocsr()
        sim.eliminate_zeros()
        if self.shrinkage > 0:
            norm = np.sqrt(np.asarray(train.item_popularity, dtype=np.float32))
            rows = np.repeat(np.arange(sim.shape[0]), np.diff(sim.indptr))
            support = norm[rows] * norm[sim.indices]
            sim.data *= support / (support + np.float32(self.shrinkage))
        self.similarity_ = sim
        self.user_items_ = train.matrix.astype(np.float32)       # (n_users, n_items)
        return self

    def with_history(self, history: TrainData) -> ItemKNNRecommender:
        self._check_fitted()
        return self._copy_with(user_items_=history.matrix.astype(np.float32))

    def score(self, users: np.ndarray) -> np.ndarray:
        self._check_fitted()
        users = np.asarray(users, dtype=np.int64)
        scores = self.user_items_[users] @ self.similarity_       # (n, n_items) sparse
        return scores.toarray().astype(np.float32, copy=False)
