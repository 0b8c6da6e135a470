"""Content-to-collaborative mapping for cold items (the idea of CB2CF, Barkan et al. 2019, and
of DropoutNet-style mappings, Volkovs et al. 2017).

1. Fit implicit ALS (:class:`~crossrec.models.als.ALSRecommender`) on the training matrix.
2. Build one content matrix ``F`` (n_items, D) from the item features the data has: genre
   multi-hot, year bins, pretrained text vectors, image vectors, audio vectors (each block
   L2-normalised and weighted), plus a constant column.
3. On the warm items (those with training interactions) learn a ridge regression (or, as an
   option, a small MLP) from ``F`` to the ALS item factors and to the standardised log
   popularity.
4. Score ``x_u · ŷ_i + pop_weight · p̂_i``: the user's ALS factor times the item's factor
   (learned for warm items, predicted from content for cold ones) plus a tuned popularity
   term predicted from content.

On the cold-item protocol (P2) every candidate is cold, so the ranking comes from content
alone; most of the gain over a content-similarity model comes from ``p̂``, the predicted
popularity (hence ``p2-tail``, which measures the same ranking away from the head).

It is a vector model: item vectors are ``[ŷ_i, pop_weight · p̂_i]`` and user vectors
``[x_u, 1]``; a new or updated history is folded in by the ALS least-squares user step. With
the ridge mapper it places new items from their content (``new_item_vectors``: the same map
applied to their feature rows; a feature it was fitted on but not given counts as absent).

Example:
    >>> model = CB2CFRecommender(ridge=3.0, pop_weight=0.03).fit(train)
    >>> model.score(np.array([0]))                 # (1, n_items) float32
"""

from __future__ import annotations

import numpy as np

from crossrec.data.dataset import Features
from crossrec.models.als import ALSRecommender
from crossrec.models.base import Recommender, TrainData, VectorModel, register

FEATURE_BLOCKS: tuple[str, ...] = ("categories", "attributes", "text", "image", "audio", "video",
                                   "minilm", "vggish", "whisper")
"""Feature matrices used by default, where the data has them (see ``features``)."""


@register
class CB2CFRecommender(Recommender, VectorModel):
    name = "cb2cf"
    # P2 valid NDCG@20 (ML-1M, ML-100K): ridge 3-10 and a small popularity weight were best.
    param_grid = {"regularization": [10.0, 30.0], "ridge": [1.0, 3.0, 10.0],
                  "pop_weight": [0.0, 0.03]}
    stochastic = True
    needs_features = True
    wants_encoded = ("text", "image", "audio")

    def __init__(self, factors: int = 64, regularization: float = 30.0, alpha: float = 1.0,
                 iterations: int = 15, ridge: float = 3.0, pop_weight: float = 0.03,
                 features: tuple[str, ...] | None = None,
                 block_weights: dict[str, float] | None = None, mapper: str = "ridge",
                 hidden: int = 256, epochs: int = 200, seed: int = 0):
        """
        Args:
            factors, regularization, alpha, iterations: the ALS model (see ``als``).
            ridge: L2 weight of the content -> factor regression.
            pop_weight: weight of the predicted (standardised) log popularity in the score.
            features: names of ``train.item_features`` to map from; None = those of
                :data:`FEATURE_BLOCKS` the data has (or, with none of them, every matrix).
            block_weights: per feature name, the weight of its (L2-normalised) block
                (default 1).
            mapper: "ridge" (closed form) or "mlp" (one hidden layer, torch, full batch).
            hidden, epochs: the MLP's width and full-batch Adam steps.
        """
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.ridge = ridge
        self.pop_weight = pop_weight
        self.features = features
        self.block_weights = block_weights
        self.mapper = mapper
        self.hidden = hidden
        self.epochs = epochs
        self.seed = seed

    # -- fit ----------------------------------------------------------------------------------
    def content_matrix(self, train: TrainData) -> np.ndarray:
        """(n_items, D + 1) float32: the chosen feature blocks, each row-L2-normalised and
        weighted, then a constant column."""
        names = self._feature_names(train)
        return self._content_rows([train.item_features[n] for n in names], names)

    def _content_rows(self, parts: list[Features], names: list[str]) -> np.ndarray:
        from crossrec.features import concat_features

        weights = self.block_weights or {}
        blocks = concat_features(parts, [weights.get(n, 1.0) for n in names]).matrix
        return np.hstack([blocks, np.ones((len(blocks), 1), np.float32)])

    def has_content(self, train: TrainData) -> bool:
        """Whether ``train`` has item features this model can map from."""
        try:
            self._feature_names(train)
        except ValueError:
            return False
        return True

    def _feature_names(self, train: TrainData) -> list[str]:
        if self.features is not None:
            unknown = [n for n in self.features if n not in train.item_features]
            if unknown:
                raise ValueError(f"cb2cf: no item feature(s) {unknown}; available: "
                                 f"{sorted(train.item_features) or 'none'}")
            return list(self.features)
        names = [n for n in FEATURE_BLOCKS if n in train.item_features]
        if not names:                       # other data: every matrix it has
            names = sorted(train.item_features)
        if not names:
            raise ValueError("cb2cf: the data has no item features to map from")
        return names

    def fit(self, train: TrainData, valid: TrainData | None = None) -> CB2CFRecommender:
        if self.mapper not in ("ridge", "mlp"):
            raise ValueError(f"cb2cf: mapper must be 'ridge' or 'mlp', not {self.mapper!r}")
        F = self.content_matrix(train)                                  # (n_items, D+1)
        als = ALSRecommender(self.factors, self.regularization, self.alpha, self.iterations,
                             self.seed).fit(train)
        pop = train.item_popularity.astype(np.float64)
        warm = pop > 0
        if warm.sum() < 2:
            raise ValueError("cb2cf: needs at least two items with training interactions")
        logpop = np.log1p(pop)
        mu, sd = logpop[warm].mean(), logpop[warm].std() or 1.0
        targets = np.hstack([als.item_factors_, ((logpop - mu) / sd)[:, None]])   # (n, f+1)
        names = self._feature_names(train)
        self.feature_dims_ = {n: int(train.item_features[n].matrix.shape[1]) for n in names}
        predicted = self._map(F, targets, warm)                          # (n_items, f+1)
        factors = np.where(warm[:, None], als.item_factors_, predicted[:, :-1])
        self.user_factors_ = als.user_factors_                           # (n_users, f)
        self.item_factors_ = factors.astype(np.float32)                  # (n_items, f)
        self.pop_pred_ = predicted[:, -1].astype(np.float32)             # (n_items,)
        return self

    def _map(self, F: np.ndarray, Y: np.ndarray, warm: np.ndarray) -> np.ndarray:
        """Fit content -> targets on the warm rows, predict every row."""
        Fw, Yw = F[warm].astype(np.float64), Y[warm].astype(np.float64)
        if self.mapper == "ridge":
            d = F.shape[1]
            if d <= len(Fw):                                             # primal: (D, D)
                A = Fw.T @ Fw + self.ridge * np.eye(d)
                W = np.linalg.solve(A, Fw.T @ Yw)
            else:                                                        # dual: (n_warm²)
                K = Fw @ Fw.T + self.ridge * np.eye(len(Fw))
                W = Fw.T @ np.linalg.solve(K, Yw)
            self.map_ = W.astype(np.float32)                             # (D+1, f+1)
            return (F.astype(np.float64) @ W).astype(np.float32)
        return self._mlp(F, Y, warm)

    def _mlp(self, F: np.ndarray, Y: np.ndarray, warm: np.ndarray) -> np.ndarray:
        import torch

        torch.manual_seed(int(self.seed))
        x = torch.from_numpy(F.astype(np.float32))
        y = torch.from_numpy(Y[warm].astype(np.float32))
        net = torch.nn.Sequential(torch.nn.Linear(F.shape[1], self.hidden), torch.nn.GELU(),
                                  torch.nn.Linear(self.hidden, Y.shape[1]))
        opt = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=0.0)
        idx = torch.from_numpy(np.flatnonzero(warm))
        for _ in range(int(self.epochs)):
            opt.zero_grad()
            pred = net(x[idx])
            loss = ((pred - y) ** 2).mean() + self.ridge * 1e-4 * sum(
                (p ** 2).sum() for p in net.parameters())
            loss.backward()
            opt.step()
        with torch.no_grad():
            return net(x).numpy()

    # -- new items ----------------------------------------------------------------------------
    @property
    def places_new_items(self) -> bool:
        """The ridge map can be applied to new rows (the MLP's weights are not kept)."""
        return self.mapper == "ridge"

    def new_item_vectors(self, features: dict[str, Features]) -> np.ndarray:
        """(n, factors + 1) ``[ŷ, pop_weight · p̂]`` for items never fitted on, from their
        feature rows (name -> Features of n rows, encoded like the training features)."""
        self._check_fitted()
        if not hasattr(self, "map_"):
            raise ValueError(f"cb2cf: mapper={self.mapper!r} keeps no content map, so it "
                             f"cannot place new items (use mapper='ridge')")
        names = list(self.feature_dims_)
        given = [n for n in names if n in features]
        if not given:
            raise ValueError(f"cb2cf: new items need at least one of the features the model "
                             f"was fitted on {names}; got {sorted(features) or 'none'}")
        n = len(features[given[0]].mask)
        parts = []
        for name in names:
            f = features.get(name)
            if f is None:
                f = Features(np.zeros((n, self.feature_dims_[name]), np.float32),
                             np.zeros(n, bool), name)
            elif f.matrix.shape != (n, self.feature_dims_[name]):
                raise ValueError(f"cb2cf: feature {name!r} has shape {f.matrix.shape}; expected "
                                 f"({n}, {self.feature_dims_[name]})")
            parts.append(f)
        predicted = self._content_rows(parts, names) @ self.map_
        return np.hstack([predicted[:, :-1], np.float32(self.pop_weight) * predicted[:, -1:]]
                         ).astype(np.float32)

    # -- score --------------------------------------------------------------------------------
    def item_vectors(self) -> np.ndarray:
        self._check_fitted()
        return np.hstack([self.item_factors_,
                          (np.float32(self.pop_weight) * self.pop_pred_)[:, None]])

    def _user_rows(self, x: np.ndarray) -> np.ndarray:
        return np.hstack([x, np.ones((len(x), 1), np.float32)])

    def user_vectors(self, histories: list[np.ndarray]) -> np.ndarray:
        """ALS fold-in over the items' (learned or predicted) factors, then a constant 1."""
        self._check_fitted()
        fold = ALSRecommender(self.factors, self.regularization, self.alpha)
        fold.item_factors_ = self.item_factors_
        return self._user_rows(fold.user_vectors(histories))

    def with_history(self, history: TrainData) -> CB2CFRecommender:
        rows = self.history_vectors(history)
        return self._copy_with(user_factors_=np.ascontiguousarray(rows[:, :-1]))

    def score(self, users: np.ndarray) -> np.ndarray:
        self._check_fitted()
        users = np.asarray(users, dtype=np.int64)
        return self._user_rows(self.user_factors_[users]) @ self.item_vectors().T
