"""Score a run file against a split folder with pytrec_eval, independently of crossrec's code.

    python bench/score_run.py SPLIT_DIR RUN.tsv [--stage test]

Relevant = the stage's rows whose item is a candidate at that stage; users without any are
skipped. Prints NDCG@10/20 and Recall@10/20 averaged over the stage's users (a user of the
stage that the run lacks scores 0). This is how BENCHMARKS.md checks exported runs.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
from pathlib import Path

import pytrec_eval


def read_tsv(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("split", type=Path)
    ap.add_argument("run", type=Path)
    ap.add_argument("--stage", default="test")
    args = ap.parse_args()
    cand = {r["item_id"] for r in read_tsv(args.split / "items.tsv") if r[f"cand_{args.stage}"] == "1"}
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    for r in read_tsv(args.split / f"{args.stage}.tsv"):
        if r["item_id"] in cand:
            qrels[r["user_id"]][r["item_id"]] = 1
    run: dict[str, dict[str, float]] = defaultdict(dict)
    for r in read_tsv(args.run):
        if r["user_id"] in qrels:
            run[r["user_id"]][r["item_id"]] = -float(r["rank"])  # rank decides, not the score
    out = {}
    for k in (10, 20):
        cut = {u: dict(sorted(items.items(), key=lambda x: -x[1])[:k]) for u, items in run.items()}
        ev = pytrec_eval.RelevanceEvaluator(dict(qrels), {f"ndcg_cut_{k}", f"recall_{k}"})
        res = ev.evaluate(cut)
        for m in (f"ndcg_cut_{k}", f"recall_{k}"):
            out[m] = sum(res.get(u, {}).get(m, 0.0) for u in qrels) / len(qrels)
    out["users"] = len(qrels)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
