"""Tune on valid, score on test, export runs: the evaluation loop every model goes through.

Example:
    >>> split = make_split(dataset, "p1")
    >>> result = evaluate(split, "als", seeds=[0, 1, 2])
    >>> result.summary["ndcg@20"]["mean"]
"""

from __future__ import annotations

import itertools
import logging
import os
import platform
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from crossrec.data.dataset import Features
from crossrec.data.split import Split
from crossrec.evaluation import metrics as M
from crossrec.models.base import Recommender, TrainData, model_class

log = logging.getLogger(__name__)

KS = (10, 20)
SELECT_BY = "ndcg@20"
RUN_DEPTH = 100


@dataclass
class StageResult:
    """Per-user metrics of one model on one stage, plus the ranked lists."""

    users: np.ndarray                  # (n,) user indices evaluated
    per_user: dict[str, np.ndarray]    # metric -> (n,) values
    beyond: dict[str, float]           # coverage@10, novelty@10, diversity@10
    ranked: np.ndarray                 # (n, depth) item indices
    scores: np.ndarray                 # (n, depth) scores
    eval_seconds: float
    history: list[str] = field(default_factory=list)   # the parts the users were scored from

    def means(self) -> dict[str, float]:
        out = {k: float(M.mean_over_users(v)) for k, v in self.per_user.items()}
        return {**out, **self.beyond}


@dataclass
class ModelResult:
    model: str
    params: dict
    seeds: list[int]
    valid: dict                        # best valid metrics
    grid: list[dict]                   # every configuration tried: params + valid ndcg@20
    test: dict[int, StageResult]       # seed -> test result
    train_seconds: dict[int, float]
    peak_rss_mb: float
    extra: dict = field(default_factory=dict)

    @property
    def summary(self) -> dict[str, dict[str, float]]:
        """metric -> {mean, std} over seeds."""
        rows = [r.means() for r in self.test.values()]
        return {k: {"mean": float(np.mean([r[k] for r in rows])),
                    "std": float(np.std([r[k] for r in rows]))} for k in rows[0]}


def train_data(split: Split, stage: str, features: dict[str, Features] | None = None
               ) -> TrainData:
    from crossrec.encoders.text import compose_texts

    ds = split.dataset
    return TrainData(split.fit_interactions(stage), ds.n_users, ds.n_items,
                     item_features=dict(features or {}), item_categories=ds.catalog.categories,
                     item_medium=ds.catalog.medium, item_text=compose_texts(ds.catalog))


def history_data(split: Split, stage: str) -> TrainData:
    """The users' histories at ``stage`` (``split.history``), as a model's ``with_history``
    takes them."""
    ds = split.dataset
    return TrainData(split.history_interactions(stage), ds.n_users, ds.n_items,
                     item_medium=ds.catalog.medium)


def with_stage_history(model: Recommender, split: Split, stage: str
                       ) -> tuple[Recommender, list[str]]:
    """``model`` as it scores ``stage``: where the stage reads histories from more parts than
    it fits on (P1's test: fitted on train, histories train + valid), a copy that scores each
    user from those histories. A model whose users are learned parameters (BPR, LightGCN)
    cannot, and keeps its training histories; the returned parts say which were used."""
    if split.history[stage] == split.fit[stage]:
        return model, list(split.fit[stage])
    if type(model).with_history is Recommender.with_history:      # it has no way to
        log.warning("%s learns a vector per user: it scores %s from its training histories "
                    "(%s), not from %s", model.name, stage, "+".join(split.fit[stage]),
                    "+".join(split.history[stage]))
        return model, list(split.fit[stage])
    return model.with_history(history_data(split, stage)), list(split.history[stage])


def target_data(split: Split, stage: str) -> TrainData:
    """The stage's held-out interactions and candidates, as ``fit(train, valid)`` takes them
    (for early stopping; only ever built for the valid stage)."""
    if stage != "valid":
        raise ValueError("only the valid stage may guide training")
    ds = split.dataset
    return TrainData(split.parts[stage], ds.n_users, ds.n_items,
                     candidates=split.candidates[stage])


def score_stage(model: Recommender, split: Split, stage: str, ks=KS, depth: int = 20,
                item_vectors: np.ndarray | None = None, popularity: np.ndarray | None = None,
                batch_size: int = 1024) -> StageResult:
    """Rank every evaluated user of ``stage`` over its candidates, each from the stage's
    histories (:func:`with_stage_history`), and compute all metrics."""
    t0 = time.perf_counter()
    model, history = with_stage_history(model, split, stage)
    relevant = split.relevant(stage)
    users = np.flatnonzero(np.diff(relevant.indptr) > 0)
    ranked, scores = model.recommend(users, k=max(depth, max(ks)),
                                     exclude=split.exclude_matrix(stage),
                                     candidates=split.candidates[stage], batch_size=batch_size,
                                     tiebreak=tiebreak_order(split.dataset.n_items))
    per_user = M.compute_metrics(ranked, relevant[users], ks=ks)
    n_cand = int(split.candidates[stage].sum())
    beyond = {"coverage@10": float(M.item_coverage(ranked, 10, n_cand))}
    if popularity is not None:
        beyond["novelty@10"] = float(M.novelty(ranked, 10, popularity, split.dataset.n_users))
    if item_vectors is not None:
        beyond["diversity@10"] = float(M.intra_list_diversity(ranked, 10, item_vectors))
    return StageResult(users, per_user, beyond, ranked, scores, time.perf_counter() - t0,
                       history)


def tiebreak_order(n_items: int, seed: int = 0) -> np.ndarray:
    """The fixed random item order that breaks score ties in every evaluation."""
    return np.random.default_rng(seed).permutation(n_items)


def param_grid(name: str, grid: dict[str, list] | None = None,
               train: TrainData | None = None) -> list[dict]:
    """Every combination of ``grid`` (default: the model's grid for ``train``)."""
    klass = model_class(name)
    if grid is None:
        grid = klass.grid_for(train) if train is not None else klass.param_grid
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))] \
        or [{}]


def evaluate(split: Split, name: str, seeds=(0,), features: dict[str, Features] | None = None,
             grid: dict[str, list] | None = None, item_vectors: np.ndarray | None = None,
             depth: int = 20, progress: bool = True) -> ModelResult:
    """Choose hyper-parameters on valid NDCG@20, then fit and score test once per seed.

    A deterministic model runs with the first seed only. The test split is never used for
    choosing anything.
    """
    klass = model_class(name)
    seeds = list(seeds) if klass.stochastic else list(seeds)[:1]
    seed_kw = "seed" in klass._param_names()
    valid_data = train_data(split, "valid", features)
    valid_target = target_data(split, "valid")
    configs = param_grid(name, grid, valid_data)
    tried, best, best_model, best_score = [], None, None, -np.inf
    bar = tqdm(configs, desc=f"{name}: tuning on valid", leave=False,
               disable=True if not progress or len(configs) < 2 else None)  # None: TTY only
    for params in bar:
        kw = {**params, **({"seed": seeds[0]} if seed_kw else {})}
        t0 = time.perf_counter()
        model = klass(**kw).fit(valid_data, valid_target)
        fit_s = time.perf_counter() - t0
        res = score_stage(model, split, "valid", depth=max(KS))
        value = float(M.mean_over_users(res.per_user[SELECT_BY]))
        tried.append({"params": params, SELECT_BY: value, "train_seconds": fit_s})
        if value > best_score:
            best, best_model, best_score, best_valid = params, model, value, res.means()
    log.info("%s: best valid %s=%.4f with %s", name, SELECT_BY, best_score, best)

    same_fit = split.fit["test"] == split.fit["valid"]
    test_data = valid_data if same_fit else train_data(split, "test", features)
    popularity = test_data.item_popularity
    results, train_s = {}, {}
    # a model that early-stopped on valid says how to refit without it (e.g. its best epoch
    # count); where train is the same for both stages it keeps valid for early stopping
    refit = {} if same_fit else best_model.refit_params()
    for seed in seeds:
        if same_fit and seed == seeds[0]:
            model, train_s[seed] = best_model, next(t["train_seconds"] for t in tried
                                                    if t["params"] == best)
        elif same_fit:
            t0 = time.perf_counter()
            model = klass(**{**best, **({"seed": seed} if seed_kw else {})}).fit(test_data,
                                                                               valid_target)
            train_s[seed] = time.perf_counter() - t0
        else:
            t0 = time.perf_counter()
            model = klass(**{**best, **refit, **({"seed": seed} if seed_kw else {})}
                          ).fit(test_data)
            train_s[seed] = time.perf_counter() - t0
        results[seed] = score_stage(model, split, "test", depth=depth, item_vectors=item_vectors,
                                    popularity=popularity)
    return ModelResult(name, best or {}, seeds, best_valid, tried, results, train_s,
                       peak_rss_mb(), extra={"refit_params": refit} if refit else {})


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def machine() -> dict:
    gpu = False
    try:
        import torch
        gpu = bool(torch.cuda.is_available())
    except ImportError:
        pass
    return {"cores": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "processor": platform.machine(), "gpu": gpu}


def write_run(result: StageResult, split: Split, path: str | Path, depth: int = RUN_DEPTH) -> Path:
    """Write a run file: ``user_id item_id rank score`` (original ids), top ``depth`` per user."""
    ds = split.dataset
    ranked, scores = result.ranked[:, :depth], result.scores[:, :depth]
    valid = ranked >= 0
    rows, cols = np.nonzero(valid)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    user_ids = ds.users.ids[result.users[rows]]
    item_ids = ds.items.ids[ranked[rows, cols]]
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write("user_id\titem_id\trank\tscore\n")
        f.writelines(f"{u}\t{i}\t{r + 1}\t{s:.6g}\n"
                     for u, i, r, s in zip(user_ids, item_ids, cols, scores[rows, cols]))
    os.replace(tmp, path)
    return path

