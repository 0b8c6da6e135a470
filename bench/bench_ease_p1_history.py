"""EASE on ML-1M P1: the test score with and without the valid part in the users' histories.

    python bench/bench_ease_p1_history.py --data-dir ../shared/data

For a few (λ, recency) settings it scores test three ways, all with the same split:
``train history`` (B fitted on train, each user scored from train alone: how P1 was read here
until 2026-12-03), ``train+valid history`` (B fitted on train, scored from train + valid:
P1 as ``crossrec evaluate`` reads it now, the split's default history) and ``fit+valid`` (B
fitted on train + valid, the same history). Writes bench/results/ease_p1_history.json. Used to
explain the gap between the train-history reading and an independently measured EASE figure
(BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from crossrec.data.datasets import load_dataset
from crossrec.data.interactions import Interactions
from crossrec.evaluation import metrics as M
from crossrec.evaluation.protocols import make_split
from crossrec.evaluation.runner import score_stage, train_data
from crossrec.models import TrainData, build_model

HERE = Path(__file__).resolve().parent
SETTINGS = [(3000.0, None, 1.0), (3000.0, 20.0, 1.0), (3000.0, 100.0, 1.0), (300.0, 20.0, 1.0),
            (1000.0, 20.0, 1.0)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, required=True)
    args = ap.parse_args()
    ds = load_dataset("ml-1m", args.data_dir / "ml-1m")
    split = make_split(ds, "p1")
    assert split.history["test"] == ["train", "valid"]
    train_only = dataclasses.replace(split, history={"valid": ["train"], "test": ["train"]})
    train = train_data(split, "test")
    both = TrainData(Interactions.concat([split.parts["train"], split.parts["valid"]]),
                     ds.n_users, ds.n_items)
    rows = []
    for lam, tau, floor in SETTINGS:
        params = {"lam": lam, "recency_tau": tau, "recency_floor": floor}
        on_train = build_model("ease", **params).fit(train)
        on_both = build_model("ease", **params).fit(both)
        row = {"params": params}
        row["train history"] = _ndcg(on_train, train_only)
        row["train+valid history"] = _ndcg(on_train, split)     # same B, longer history
        row["fit+valid"] = _ndcg(on_both, split)
        rows.append(row)
        print(json.dumps(row), flush=True)
    out = HERE / "results" / "ease_p1_history.json"
    out.write_text(json.dumps({"protocol": "p1", "dataset": "ml-1m", "metric": "test ndcg@20",
                               "rows": rows}, indent=2) + "\n")
    return 0


def _ndcg(model, split) -> float:
    return round(float(M.mean_over_users(score_stage(model, split, "test")
                                         .per_user["ndcg@20"])), 4)


if __name__ == "__main__":
    sys.exit(main())
