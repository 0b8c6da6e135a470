"""Run every baseline on the fixed protocols and collect the results.

    python bench/run_baselines.py --data-dir ../shared/data [--only p1-ml-1m,p3-douban]

Each (protocol, dataset) runs `crossrec evaluate` in-process with the same split for all models,
writes the per-model JSON files under bench/results/<protocol>-<dataset>/, and one summary
bench/results/baselines.json. BENCHMARKS.md quotes these files.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from crossrec.cli import main as crossrec

HERE = Path(__file__).resolve().parent
BASELINES = "random,pop,itemknn,als,bpr,content,ease"
RUNS = {  # name -> (dataset, protocol, models)
    "p1-ml-1m": ("ml-1m", "p1", BASELINES),
    "p1b-ml-100k": ("ml-100k", "p1b", BASELINES),
    # collaborative models cannot score cold items; cb2cf maps content to them
    "p2-ml-1m": ("ml-1m", "p2", "random,pop,content,cb2cf"),
    "p2-ml-100k": ("ml-100k", "p2", "random,pop,content,cb2cf"),
    "p2-tail-ml-1m": ("ml-1m", "p2-tail", "random,pop,content,cb2cf"),
    "p2-tail-ml-100k": ("ml-100k", "p2-tail", "random,pop,content,cb2cf"),
    # Douban has no content; EASE's dense item-item inverse (12k items) is too slow for 2 cores
    "p3-douban": ("douban", "p3", "random,pop,itemknn,als,bpr,userknn"),
    "p4-lfm2k": ("lastfm-2k", "p4", "random,pop,itemknn,als,bpr,content"),  # 17.6k items
    "p5-ml-1m": ("ml-1m", "p5", BASELINES),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--only", default="", help="comma-separated run names")
    ap.add_argument("--seeds", default="0,1,2")
    args = ap.parse_args()
    only = [r for r in args.only.split(",") if r]
    summary_path = HERE / "results" / "baselines.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    for run, (dataset, protocol, models) in RUNS.items():
        if only and run not in only:
            continue
        out = HERE / "results" / run
        t0 = time.perf_counter()
        rc = crossrec(["evaluate", "--dataset", dataset, "--data-dir",
                       str(args.data_dir / dataset), "--protocol", protocol, "--models", models,
                       "--seeds", args.seeds, "--out", str(out)])
        if rc:
            return rc
        summary[run] = {
            "wall_seconds": round(time.perf_counter() - t0, 1),
            "models": {m: json.loads((out / f"{m}.json").read_text())["test"]
                       for m in models.split(",")}}
        summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
