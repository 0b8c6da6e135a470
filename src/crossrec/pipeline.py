"""From a dataset to a servable artifact, and back again with the service's feedback.

- :func:`encode_content`: encode a catalog's modalities through the feature store and combine
  them with a :class:`~crossrec.recipe.ContentRecipe` (recorded in the artifact, so the service
  encodes new items and text queries the same way);
- :func:`fit_artifact`: fit a model on all interactions and save the artifact;
- :func:`retrain`: fold the service's stored events into the training data (likes, clicks,
  plays and ratings >= 4 are positives) and refit the same model class with the same
  parameters into a new artifact;
- :func:`run_demo`: the demo world end to end (generate, encode, evaluate, fit, save).

Example:
    >>> recipe, feats = encode_content(dataset.catalog, ["text", "image", "audio", "video"])
    >>> fit_artifact("artifacts/demo", "content", dataset, feats, recipe)
    >>> retrain("artifacts/demo", "sqlite:///events.db", "artifacts/demo-2")
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from crossrec.data.dataset import Dataset, Features
from crossrec.data.idmap import IdMap
from crossrec.data.interactions import Interactions
from crossrec.recipe import ContentRecipe

log = logging.getLogger(__name__)

DEFAULT_WEIGHTS = {"text": 1.0, "image": 0.5, "audio": 0.5}
"""Block weights of the demo's content feature: text carries the theme most plainly."""
VIDEO_OPTIONS = {"image": None}
"""Videos: sound track and transcript through the video encoder; the picture through the
poster frame each demo video has as its ``image`` (one frame, not several: fast on 2 cores)."""
DEMO_GRIDS: dict[str, dict[str, list]] = {
    "content": {"feature": ["content"]},
    # small and quick (a few seconds a fit on 2 cores); the defaults (lr 1e-3, 8 epochs) barely
    # move on the demo's 300 users. 15 epochs: about where early stopping on valid ends (epochs
    # 12-14), since the served model is refitted on everything without valid. The
    # collaborative channel (ALS + the content map) with its weight chosen on valid.
    "crossrec": {"dim": [32], "max_len": [20], "layers": [1], "lr": [0.01], "epochs": [15],
                 "patience": [3], "collab": [True]},
}
"""One configuration each for the content and fusion models in ``run_demo`` (it must be quick)."""


def encode_content(catalog, modalities=("text", "image", "audio", "video"),
                   store_root: str | os.PathLike = ".cache/features",
                   weights: dict[str, float] | None = None, template: str | None = None,
                   configs: dict[str, dict] | None = None, progress: bool = True
                   ) -> tuple[ContentRecipe, dict[str, Features]]:
    """Encode ``modalities`` of ``catalog`` (cached) and combine them: (recipe, {block name:
    Features, "content": Features})."""
    from crossrec.encoders import EncoderConfig, build_encoder, encode_catalog

    cfgs = {}
    for m in modalities:
        cfg = dict((configs or {}).get(m, {}))
        if m == "video":
            cfg.setdefault("options", dict(VIDEO_OPTIONS))
        cfgs[m] = EncoderConfig(modality=m, **cfg)
    encoders = {m: build_encoder(c) for m, c in cfgs.items()}
    recipe = ContentRecipe.for_encoders(encoders, weights=weights or DEFAULT_WEIGHTS,
                                        template=template)
    encoded, reports = encode_catalog(catalog, list(modalities), cfgs, store_root,
                                      template=template, progress=progress)
    for m, r in reports.items():
        log.info("%s: %d items, %d encoded, %d cached, %d failed (%.1fs)", m, r.n_items,
                 r.n_encoded, r.n_cached, r.n_failed, r.seconds)
    return recipe, recipe.combine(encoded)


def fit_artifact(out: str | os.PathLike, model_name: str, dataset: Dataset,
                 features: dict[str, Features] | None = None, recipe: ContentRecipe | None = None,
                 params: dict[str, Any] | None = None, history: Interactions | None = None,
                 metrics: dict | None = None, extra_config: dict | None = None) -> Path:
    """Fit ``model_name`` (with ``params``) on ``history`` (default: all of the dataset's
    interactions) and save the artifact, recording the content recipe."""
    from crossrec.artifact import save_artifact
    from crossrec.encoders.text import compose_texts
    from crossrec.models import build_model
    from crossrec.models.base import TrainData

    history = dataset.interactions if history is None else history
    data = TrainData(history, dataset.n_users, dataset.n_items,
                     item_features=dict(features or {}),
                     item_categories=dataset.catalog.categories,
                     item_medium=dataset.catalog.medium,
                     item_text=compose_texts(dataset.catalog))
    t0 = time.perf_counter()
    model = build_model(model_name, **(params or {})).fit(data)
    log.info("fitted %s on %d interactions in %.1fs", model_name, len(history),
             time.perf_counter() - t0)
    config = dict(extra_config or {})
    if recipe is not None:
        config["content_recipe"] = recipe.model_dump()
    encoders = {m: {"config": c} for m, c in recipe.encoders.items()} if recipe else {}
    return save_artifact(out, model, dataset, history, metrics=metrics, config=config,
                         encoders=encoders,
                         content_vectors=recipe.content_rows(features) if recipe else None)


def retrain(artifact_path: str | os.PathLike, store_url: str, out: str | os.PathLike,
            store_root: str | os.PathLike = ".cache/features", progress: bool = False
            ) -> dict[str, Any]:
    """A new artifact from an old one plus the store's positive events (same model class and
    parameters; users seen only in events are added; events on items the artifact does not
    know, e.g. items added at run time, are left out and counted)."""
    from crossrec.artifact import load_artifact
    from crossrec.serve.store import EventStore

    art = load_artifact(artifact_path)
    store = EventStore(store_url)
    users = IdMap(art.users.ids)
    rows_u, rows_i, rows_t, rows_v = [], [], [], []
    n_events = n_pos = n_unknown = 0
    for e in store.iter_events():
        n_events += 1
        if e.polarity <= 0:
            continue
        item = art.items.get([e.item_id])[0]
        if item < 0:
            n_unknown += 1
            continue
        n_pos += 1
        rows_u.append(users.extend([e.user_id])[0])
        rows_i.append(item)
        rows_t.append(e.ts)
        rows_v.append(e.value if e.type == "rating" and e.value is not None else 5.0)
    store.close()
    new = Interactions(np.asarray(rows_u, np.int64), np.asarray(rows_i, np.int64),
                       np.asarray(rows_t, np.float64), np.asarray(rows_v, np.float32))
    history = Interactions.concat([art.history, new])
    dataset = Dataset(art.meta["dataset"], history, users, art.items, art.catalog)
    recipe_dict = art.meta.get("config", {}).get("content_recipe")
    recipe = ContentRecipe(**recipe_dict) if recipe_dict else None
    features = None
    encode = art.meta.get("config", {}).get("encode")
    if encode is not None:           # written by `crossrec train`: the features it fitted on
        from crossrec.fitting import item_features

        features = item_features(dataset, list(encode), Path(store_root))[0]
    elif recipe is not None:
        from crossrec.encoders import encode_catalog

        encoded, _ = encode_catalog(art.catalog, list(recipe.encoders), recipe.encoders,
                                    store_root, template=recipe.template, progress=progress)
        features = recipe.combine(encoded)
    extra = {k: v for k, v in art.meta.get("config", {}).items() if k != "content_recipe"}
    extra["retrained_from"] = art.version
    path = fit_artifact(out, art.meta["model"], dataset, features, recipe,
                        params=art.meta["params"], history=history,
                        metrics=art.meta.get("metrics"), extra_config=extra)
    return {"artifact": str(path), "events": n_events, "positives_added": n_pos,
            "unknown_items": n_unknown, "users": len(users), "new_users": len(users)
            - len(art.users), "interactions": len(history)}


def run_demo(data_dir: str | os.PathLike = "data/demo", out: str | os.PathLike = "artifacts/demo",
             store_root: str | os.PathLike = ".cache/features", models: list[str] | None = None,
             n_items: int = 320, n_users: int = 300, dataset: str | None = None,
             progress: bool = True) -> dict[str, Any]:
    """Generate (or load) the demo data, encode it, evaluate ``models`` on protocol P1
    (chronological 80/10/10, tuned on valid), fit the served model on everything, save.

    The served model is the fusion model ``crossrec`` when it is registered and, with the demo's
    settings (``DEMO_GRIDS``), places new items from their content (live cold start and search
    need it), else ``content``. Returns {"artifact", "served", "table", "results"}.
    """
    from crossrec.data.datasets import load_dataset
    from crossrec.evaluation.protocols import make_split
    from crossrec.evaluation.report import format_table
    from crossrec.evaluation.runner import evaluate
    from crossrec.models import available_models, model_class

    data_dir = Path(data_dir)
    t0 = time.perf_counter()
    if dataset is None:
        from crossrec.data.world import is_world, write_world

        if not is_world(data_dir, n_items=n_items, n_users=n_users):   # absent, or other data
            write_world(data_dir, n_items=n_items, n_users=n_users)
            log.info("generated the demo world in %s (%.1fs)", data_dir, time.perf_counter() - t0)
        ds = load_dataset("demo", data_dir)
    else:
        ds = load_dataset(dataset, data_dir)
    have = [m for m in ("text", "image", "audio", "video")
            if m == "text" or any(ds.catalog.media.get(m, []))]
    recipe, feats = encode_content(ds.catalog, have, store_root, progress=progress)
    log.info("encoded %s in %.1fs", have, time.perf_counter() - t0)

    registered = available_models()
    grids = DEMO_GRIDS
    # asked of an instance: whether crossrec places new items depends on its settings (lm)
    fusion = "crossrec" in registered and bool(getattr(
        model_class("crossrec")(**{k: v[0] for k, v in grids["crossrec"].items()}),
        "places_new_items", False))
    served = "crossrec" if fusion else "content"
    models = list(models or ["pop", "als", "content"])
    if served not in models:
        models.append(served)
    split = make_split(ds, "p1")
    results = []
    for name in models:
        t1 = time.perf_counter()
        res = evaluate(split, name, seeds=[0], features=feats, grid=grids.get(name),
                       item_vectors=feats["content"].matrix, progress=progress)
        log.info("evaluated %s in %.1fs", name, time.perf_counter() - t1)
        results.append(res)
    table = format_table(results)
    best = next(r for r in results if r.model == served)
    path = fit_artifact(out, served, ds, feats, recipe, params=best.params,
                        metrics={k: v["mean"] for k, v in best.summary.items()},
                        extra_config={"protocol": "p1", "evaluated": models})
    return {"artifact": str(path), "served": served, "table": table, "results": results,
            "data_dir": str(data_dir), "seconds": time.perf_counter() - t0}


__all__ = ["DEFAULT_WEIGHTS", "DEMO_GRIDS", "encode_content", "fit_artifact", "retrain", "run_demo"]
