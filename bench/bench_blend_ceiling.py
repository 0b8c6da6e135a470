"""How far can crossrec's towers and the best peer go together? A diagnostic, not a result.

    python bench/bench_blend_ceiling.py --data-dir ../shared/data [--only p2-ml-100k,...] \
        [--seed 0]

crossrec adds its collaborative channel to the towers' score after training, with a weight
chosen on valid (``score = towers + w · s · channel``). This script fits the towers once per
stage (valid: on train, early-stopped on valid; test: on train + valid with the valid-chosen
epoch count, as ``crossrec evaluate`` does), then scores **both stages** for a sweep of

- P2 (ML-100K, ML-1M): every setting of the channel (``cb2cf``'s own grid: ALS
  regularisation, ridge, popularity weight) times channel weights ``w`` (and the channel
  alone, ``inf``);
- P3 (Douban): the towers' per-user z-scored score added to the z-scored score of ``userknn``
  (the setting its own grid chose on valid, see BENCHMARKS.md) with tower weights ``w``.

Reading test for every setting is what the protocol forbids for *choosing*; here it only
measures the ceiling of a post-hoc blend (the best test score any setting reaches) and how
far valid's choice lands from it. Writes bench/results/blend_ceiling/<run>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "blend_ceiling"
WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 64.0)
CHANNEL_GRID = [(reg, ridge, pw) for reg in (10.0, 30.0) for ridge in (1.0, 3.0, 10.0)
                for pw in (0.0, 0.03)]
TOWERS = {"objective": "set", "collab": False}
RUNS = {  # name -> (dataset, protocol, encoded modalities, tower settings as in bench_fusion)
    "p2-ml-100k": ("ml-100k", "p2", ["text"], {"id_dropout": 1.0, "w_pop": 1.0, "epochs": 30,
                                               "patience": 3, "medium_holdout": 0.0}),
    "p2-ml-1m": ("ml-1m", "p2", ["text", "image"], {"id_dropout": 1.0, "w_pop": 1.0,
                                                    "max_targets": 10, "epochs": 8,
                                                    "patience": 2}),
    "p3-douban": ("douban", "p3", [], {"medium_holdout": 1.0, "id_dropout": 0.0,
                                       "max_targets": 50, "negatives": 1024, "cf_init": True,
                                       "epochs": 10, "patience": 2}),
}
USERKNN = {"k": 1000, "pop_weight": 0.1, "ridge_weight": 0.03, "source_medium": "book"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--only", default="")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--store", type=Path, default=Path(".cache/features"))
    args = ap.parse_args()
    only = [r for r in args.only.split(",") if r]
    for run, spec in RUNS.items():
        if not only or run in only:
            row = sweep(run, *spec, args)
            OUT.mkdir(parents=True, exist_ok=True)
            (OUT / f"{run}.json").write_text(json.dumps(row, indent=2) + "\n")
            print(json.dumps(row["summary"]), flush=True)
    return 0


def sweep(run: str, dataset: str, protocol: str, modalities: list[str], towers: dict,
          args) -> dict:
    from crossrec.data.datasets import load_dataset
    from crossrec.evaluation import metrics as M
    from crossrec.evaluation.protocols import make_split
    from crossrec.evaluation.runner import score_stage, target_data, train_data
    from crossrec.fitting import item_features
    from crossrec.models import build_model

    t0 = time.perf_counter()
    ds = load_dataset(dataset, args.data_dir / dataset)
    split = make_split(ds, protocol)
    feats = item_features(ds, modalities, args.store)[0] if modalities else {}
    fits = {"valid": train_data(split, "valid", feats), "test": train_data(split, "test", feats)}
    params = {**TOWERS, **towers, "seed": args.seed}
    model = {"valid": build_model("crossrec", **params).fit(fits["valid"],
                                                            target_data(split, "valid"))}
    refit = model["valid"].refit_params()
    model["test"] = build_model("crossrec", **{**params, **refit}).fit(fits["test"])

    def ndcg(m, stage, scores) -> float:
        m.score = lambda users: scores[users]
        return round(float(M.mean_over_users(score_stage(m, split, stage)
                                             .per_user["ndcg@20"])), 4)

    table: dict[str, dict[str, dict[str, float]]] = {"valid": {}, "test": {}}
    users = np.arange(ds.n_users)
    for stage in ("valid", "test"):
        m = model[stage]
        T = m.score(users)
        if protocol == "p3":
            peer = build_model("userknn", **USERKNN).fit(fits[stage]).score(users)
            zt, zp = _z(T), _z(peer)
            table[stage]["userknn"] = {str(w): ndcg(m, stage, zp + w * zt) for w in WEIGHTS}
            table[stage]["userknn"]["towers"] = ndcg(m, stage, T)
            continue
        for reg, ridge, pw in CHANNEL_GRID:
            m.item_vectors_, m.user_vectors_ = m.item_vectors_.copy(), m.user_vectors_.copy()
            m.collab = True
            m.collab_regularization, m.collab_ridge, m.collab_pop_weight = reg, ridge, pw
            m.collab_weight = 1.0
            m._fit_collab(fits[stage], None)          # appends the channel at w = 1
            tw = m.tower_width_
            C = m.user_vectors_[:, tw:] @ m.item_vectors_[:, tw:].T
            m.item_vectors_, m.user_vectors_ = m.item_vectors_[:, :tw], m.user_vectors_[:, :tw]
            key = f"regularization={reg:g} ridge={ridge:g} pop_weight={pw:g}"
            table[stage][key] = {str(w): ndcg(m, stage, T + w * C) for w in WEIGHTS}
            table[stage][key]["inf"] = ndcg(m, stage, C)
        print(run, stage, "done", flush=True)
    return {"run": run, "seed": args.seed, "towers": params, "refit": refit,
            "valid": table["valid"], "test": table["test"], "summary": _summary(run, table),
            "wall_seconds": round(time.perf_counter() - t0, 1)}


def _summary(run: str, table: dict) -> dict:
    cells = [(s, w) for s in table["valid"] for w in table["valid"][s] if w != "towers"]
    chosen = max(cells, key=lambda c: table["valid"][c[0]][c[1]])
    ceiling = max(cells, key=lambda c: table["test"][c[0]][c[1]])
    peer = max(table["valid"], key=lambda s: table["valid"][s]["inf" if "inf" in
                                                               table["valid"][s] else "0.0"])
    peer_w = "inf" if "inf" in table["test"][peer] else "0.0"
    return {"run": run,
            "valid_choice": {"setting": chosen[0], "w": chosen[1],
                             "valid": table["valid"][chosen[0]][chosen[1]],
                             "test": table["test"][chosen[0]][chosen[1]]},
            "test_ceiling": {"setting": ceiling[0], "w": ceiling[1],
                             "test": table["test"][ceiling[0]][ceiling[1]]},
            "peer_alone": {"setting": peer, "test": table["test"][peer][peer_w]}}


def _z(s: np.ndarray) -> np.ndarray:
    s = s - s.mean(axis=1, keepdims=True)
    return s / (s.std(axis=1, keepdims=True) + 1e-9)


if __name__ == "__main__":
    sys.exit(main())
