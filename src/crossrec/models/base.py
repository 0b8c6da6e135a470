"""The recommender contract shared by every model.

A model writes ``__init__`` (store arguments only), ``fit`` and ``score``; recommending,
parameters, cloning, saving and loading are derived here once.

Example:
    >>> from crossrec.models import build_model
    >>> model = build_model("pop").fit(train)            # train: TrainData
    >>> item_idx, scores = model.recommend(np.array([0, 1]), k=10)
"""

from __future__ import annotations

import copy
import inspect
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from crossrec.data.dataset import Features
from crossrec.data.interactions import Interactions

_REGISTRY: dict[str, type[Recommender]] = {}


@dataclass
class TrainData:
    """What ``fit`` receives: interactions on dense indices plus id-aligned item content.

    Attributes:
        interactions: the training events (user and item indices, timestamps, values).
        n_users, n_items: sizes of the full index spaces (scores cover all n_items).
        item_features: name -> Features (n_items, dim) with a presence mask.
        item_categories: per item, a tuple of category labels (may be empty).
        item_medium: (n_items,) object medium per item, or None.
        item_text: per item, its composed text (for models that encode text themselves), or
            None.
        candidates: (n_items,) bool, the items ranked when this data is a validation target
            (``fit(train, valid)``), or None for all.
    """

    interactions: Interactions
    n_users: int
    n_items: int
    item_features: dict[str, Features] = field(default_factory=dict)
    item_categories: list[tuple[str, ...]] | None = None
    item_medium: np.ndarray | None = None
    item_text: list[str] | None = None
    candidates: np.ndarray | None = None

    @cached_property
    def matrix(self) -> sp.csr_matrix:
        """(n_users, n_items) binary float32 user-item matrix."""
        return self.interactions.to_csr(self.n_users, self.n_items)

    @cached_property
    def item_popularity(self) -> np.ndarray:
        """(n_items,) number of training users per item."""
        return np.asarray(self.matrix.sum(axis=0)).ravel()


def register(cls: type[Recommender]) -> type[Recommender]:
    """Class decorator: make a model available under ``cls.name``."""
    if not getattr(cls, "name", None):
        raise TypeError(f"{cls.__name__} needs a class attribute `name`")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"model name {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def available_models() -> list[str]:
    import crossrec.models  # noqa: F401  (registers the built-in models)
    return sorted(_REGISTRY)


def model_class(name: str) -> type[Recommender]:
    import crossrec.models  # noqa: F401
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(sorted(_REGISTRY))}") \
            from None


def build_model(name: str, **params: Any) -> Recommender:
    """Construct a registered model by name, e.g. ``build_model("als", factors=64)``."""
    return model_class(name)(**params)


class Recommender:
    """Base class. Subclasses set ``name`` and ``param_grid`` and implement fit/score.

    Learned state lives in attributes ending in ``_``; numpy arrays and scipy sparse matrices
    among them are saved and loaded automatically.
    """

    name: ClassVar[str] = ""
    param_grid: ClassVar[dict[str, list]] = {}
    """Small grid searched on valid NDCG@20 by ``crossrec evaluate``."""
    stochastic: ClassVar[bool] = False
    """True when results depend on ``seed`` (evaluated over several seeds)."""
    needs_features: ClassVar[bool] = False
    """True when ``fit`` needs at least one item feature matrix (content models)."""
    wants_encoded: ClassVar[tuple[str, ...]] = ()
    """Modalities ("text", "image", ...) whose pretrained-encoder vectors this model uses when
    the catalog has them: ``crossrec evaluate`` encodes them through the feature store and
    passes them as ``item_features[modality]``."""

    @classmethod
    def grid_for(cls, train: TrainData) -> dict[str, list]:
        """The grid to search on ``train`` (default: ``param_grid``); a model whose choices
        depend on the data (e.g. which feature matrices exist) overrides this."""
        return cls.param_grid

    # -- to implement -------------------------------------------------------------------------
    def fit(self, train: TrainData, valid: TrainData | None = None) -> Recommender:
        raise NotImplementedError

    def score(self, users: np.ndarray) -> np.ndarray:
        """(len(users), n_items) float32 scores, higher is better."""
        raise NotImplementedError

    def with_history(self, history: TrainData) -> Recommender:
        """A copy of this fitted model that scores each user from ``history`` instead of the
        training interactions: the users' interactions known at a later stage (P1's test is
        ranked by a model fitted on train, from train + valid). Nothing is refitted; the copy
        shares the fitted state. Models whose users are learned parameters (BPR, LightGCN)
        cannot and raise NotImplementedError."""
        raise NotImplementedError(f"{self.name} learns a vector per user and cannot score "
                                  f"another history without refitting")

    def _copy_with(self, **state: Any) -> Recommender:
        """A shallow copy with some fitted attributes replaced."""
        out = copy.copy(self)
        vars(out).update(state)
        return out

    def refit_params(self) -> dict[str, Any]:
        """Parameter overrides for refitting on more data without a validation set, e.g. the
        epoch count early stopping chose on valid (default: none)."""
        return {}

    # -- derived ------------------------------------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self) -> dict[str, Any]:
        return {p: getattr(self, p) for p in self._param_names()}

    def clone(self, **overrides: Any) -> Recommender:
        unknown = set(overrides) - set(self._param_names())
        if unknown:
            raise ValueError(f"{self.name}: unknown parameter(s) {sorted(unknown)}; "
                             f"known: {self._param_names()}")
        return type(self)(**{**self.get_params(), **overrides})

    @property
    def is_fitted(self) -> bool:
        return any(k.endswith("_") and not k.startswith("_") for k in vars(self))

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise RuntimeError(f"{self.name} is not fitted: call fit() first")

    def recommend(self, users: np.ndarray, k: int = 10, exclude: sp.csr_matrix | None = None,
                  candidates: np.ndarray | None = None, batch_size: int = 1024,
                  tiebreak: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k item indices and scores for each user.

        Args:
            users: (n,) user indices.
            exclude: optional (n_users_total, n_items) matrix of items never to return
                (e.g. the training matrix: exclude seen).
            candidates: optional (n_items,) bool mask of items that may be returned.
            tiebreak: optional (n_items,) permutation of the items; among equal scores the
                item that comes first in it wins (default: the lower item index). Evaluation
                passes a fixed random order, so that id order (which often follows
                popularity) never helps a model that scores many items alike.
        Returns:
            ((n, k) int64 item indices, -1 where fewer than k items qualify; (n, k) float32).
        """
        from crossrec.evaluation.metrics import rank_topk

        self._check_fitted()
        users = np.asarray(users, dtype=np.int64)
        items, scores = [], []
        for start in range(0, len(users), batch_size):
            batch = users[start:start + batch_size]
            s = np.asarray(self.score(batch), dtype=np.float32)
            if not (s.flags.owndata and s.flags.writeable):
                s = s.copy()  # rank_topk writes -inf in place: never into a model's state
            ex = exclude[batch] if exclude is not None else None
            if tiebreak is None:
                top = rank_topk(s, k, exclude=ex, candidates=candidates, inplace=True)
            else:                               # rank in tiebreak order, map positions back
                top = rank_topk(s[:, tiebreak], k, exclude=None if ex is None else ex[:, tiebreak],
                                candidates=None if candidates is None else candidates[tiebreak],
                                inplace=True)
                top = np.where(top >= 0, tiebreak[np.maximum(top, 0)], -1)
            items.append(top)
            scores.append(np.where(top >= 0, np.take_along_axis(s, np.maximum(top, 0), 1),
                                   -np.inf).astype(np.float32))
        if not items:
            return np.zeros((0, k), np.int64), np.zeros((0, k), np.float32)
        return np.vstack(items), np.vstack(scores)

    # -- persistence --------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items()
                if k.endswith("_") and not k.startswith("_")}

    def save(self, path: str | Path) -> Path:
        """Write ``model.json`` (name, params) and ``state.npz`` (learned arrays) to a folder."""
        self._check_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        arrays, extra = {}, {}
        for key, value in self._state().items():
            if sp.issparse(value):
                csr = sp.csr_matrix(value)
                for part in ("data", "indices", "indptr"):
                    arrays[f"{key}__sparse_{part}"] = getattr(csr, part)
                arrays[f"{key}__sparse_shape"] = np.asarray(csr.shape)
            elif isinstance(value, np.ndarray):
                arrays[key] = value
            else:
                extra[key] = value
        meta = {"name": self.name, "params": self.get_params(), "state": extra}
        (path / "model.json").write_text(json.dumps(meta, indent=2, default=jsonable))
        np.savez(path / "state.npz", **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Recommender:
        """Restore a model written by :meth:`save` (the class is taken from ``model.json``)."""
        path = Path(path)
        meta = json.loads((path / "model.json").read_text())
        klass = model_class(meta["name"]) if cls is Recommender else cls
        if klass.load.__func__ is not Recommender.load.__func__ and cls is Recommender:
            return klass.load(path)              # the model stores more than arrays itself
        if klass.name != meta["name"]:
            raise ValueError(f"{path} holds a {meta['name']!r} model, not {klass.name!r}")
        model = klass(**meta["params"])
        with np.load(path / "state.npz", allow_pickle=False) as z:
            sparse: dict[str, dict] = {}
            for key in z.files:
                if "__sparse_" in key:
                    attr, part = key.split("__sparse_")
                    sparse.setdefault(attr, {})[part] = z[key]
                else:
                    setattr(model, key, z[key])
        for attr, parts in sparse.items():
            setattr(model, attr, sp.csr_matrix((parts["data"], parts["indices"], parts["indptr"]),
                                               shape=tuple(parts["shape"])))
        for key, value in meta["state"].items():
            setattr(model, key, value)
        return model

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


class VectorModel:
    """Mixin for models whose score is a dot product ``user_vector · item_vector``.

    Serving needs exactly this: item vectors go into an (ANN) index once, and a user vector is
    recomputed from an updated history without retraining (fold-in). A vector model's
    ``score`` is ``user vector @ item_vectors().T``; for the training histories
    ``user_vectors`` gives those user vectors (exactly, or, where training solves
    approximately, as ALS's conjugate gradient does, the exact fold-in solution).

    - ``item_vectors()`` -> (n_items, d) float32.
    - ``user_vectors(histories)`` -> (len(histories), d) float32, where each history is an int64
      array of item indices in time order (oldest first); an empty history is allowed (the
      model returns its best guess for a newcomer, e.g. a zero or a popularity vector).
    """

    places_new_items: ClassVar[bool] = False
    """True when :meth:`new_item_vectors` places items the model was never fitted on (live
    cold start and text queries in the service)."""

    def item_vectors(self) -> np.ndarray:
        raise NotImplementedError

    def user_vectors(self, histories: list[np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def history_vectors(self, history: TrainData) -> np.ndarray:
        """(history.n_users, d) each user's vector from their interactions in ``history`` (the
        fold-in :meth:`Recommender.with_history` needs)."""
        return self.user_vectors(histories_from(history.interactions, history.n_users))

    reads_text: ClassVar[bool] = False
    """True when the model encodes item text itself (a tuned language model): callers then
    also pass the new items' composed texts to :meth:`new_item_vectors` as ``texts``."""

    def new_item_vectors(self, features: dict[str, Features]) -> np.ndarray:
        """(n, d) vectors for new items from their content: ``features`` maps a feature name
        to ``Features`` of n rows, encoded like the training features (a model that
        ``reads_text`` takes ``texts=`` too)."""
        raise NotImplementedError(f"{type(self).__name__} cannot place new items from content")


def with_source_media(grid: dict[str, list], train: TrainData) -> dict[str, list]:
    """``grid`` plus, on data of several media, ``source_medium``: None (all media) or each
    medium (for models that compare users on one medium's history)."""
    media = sorted(set(train.item_medium)) if train.item_medium is not None else []
    return {**grid, "source_medium": [None, *media]} if len(media) > 1 else dict(grid)


def histories_from(interactions: Interactions, n_users: int) -> list[np.ndarray]:
    """Per user index, the item indices of ``interactions`` in time order (ties: row order)."""
    order = interactions.chronological_order()
    users, items = interactions.user[order], interactions.item[order]
    bounds = np.searchsorted(users, np.arange(n_users + 1))
    return [items[bounds[u]:bounds[u + 1]] for u in range(n_users)]


def jsonable(value: Any) -> Any:
    """``json.dumps(default=...)`` for what models and artifacts hold: numpy scalars and
    arrays, tuples, sets and paths."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (tuple, set)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
