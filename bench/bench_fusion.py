"""Benchmark the fusion model (crossrec) against SASRec, LightGCN and the baselines.

    python bench/bench_fusion.py --data-dir ../shared/data [--only p2-ml-100k,...] \
        [--models crossrec,sasrec] [--seeds 0,1,2] [--ablation]

Every run goes through ``crossrec.evaluation.runner.evaluate`` (hyper-parameters chosen on
valid NDCG@20, early stopping on valid, test scored once per seed) on the protocol's split.
Features: the dataset's own matrices (Last.fm: minilm, vggish, whisper), the classical content
features (tfidf, categories, attributes, content) and the pretrained-encoder vectors from the
feature store (text: MiniLM, image: MobileNetV2 posters on ML-1M). One JSON file per (run,
model or ablation variant) in bench/results/fusion/<run>/, and a summary table on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "fusion"

# name -> (dataset, protocol, encoded modalities, {model: grid}); a grid of one value per
# parameter fixes the setting (chosen on valid in earlier runs, see BENCHMARKS.md). "crossrec"
# here is the towers alone (collab off); `--set collab=true --label crossrec-collab` adds the
# collaborative channel, the model's default.
RUNS: dict[str, tuple[str, str, list[str], dict[str, dict]]] = {
    "p1-ml-1m": ("ml-1m", "p1", ["text"], {
        "crossrec": {"collab": [False], "objective": ["next"], "id_dropout": [0.1], "epochs": [5],
                     "patience": [2], "medium_holdout": [0.0]},
        "sasrec": {"dropout": [0.2], "max_len": [50], "epochs": [5], "patience": [2]},
        "lightgcn": {"layers": [2], "reg": [1e-4], "epochs": [20], "patience": [2]},
    }),
    "p2-ml-100k": ("ml-100k", "p2", ["text"], {
        "crossrec": {"collab": [False], "objective": ["set"], "id_dropout": [1.0], "w_pop": [1.0],
                     "epochs": [30], "patience": [3], "medium_holdout": [0.0]},
    }),
    "p2-ml-1m": ("ml-1m", "p2", ["text", "image"], {
        "crossrec": {"collab": [False], "objective": ["set"], "id_dropout": [1.0], "w_pop": [1.0],
                     "max_targets": [10], "epochs": [8], "patience": [2]},
    }),
    "p3-douban": ("douban", "p3", [], {
        "crossrec": {"collab": [False], "objective": ["set"], "medium_holdout": [1.0], "id_dropout": [0.0],
                     "max_targets": [50], "negatives": [1024], "cf_init": [False, True],
                     "epochs": [10], "patience": [2]},
        "sasrec": {"dropout": [0.2], "max_len": [50], "epochs": [10], "patience": [2]},
        "lightgcn": {"layers": [2], "reg": [1e-4], "epochs": [20], "patience": [2]},
    }),
    "p4-cold-lfm2k": ("lastfm-2k", "p4-cold", [], {
        "crossrec": {"collab": [False], "objective": ["set"], "id_dropout": [1.0], "w_pop": [1.0],
                     "epochs": [10], "patience": [2]},
    }),
    "p4-cold-lfm2k-text-only": ("lastfm-2k", "p4-cold", [], {
        "crossrec": {"collab": [False], "objective": ["set"], "id_dropout": [1.0], "w_pop": [1.0],
                     "epochs": [10], "patience": [2], "features": ["minilm,tfidf"]},
    }),
}

# ablation variants on P2 ML-100K (each switches one thing off or on)
ABLATIONS: dict[str, dict] = {
    "full": {},
    "no-popularity-head": {"w_pop": 0.0},
    "no-align": {"w_align": 0.0},
    "no-category": {"w_category": 0.0},
    "with-rating": {"w_rating": 0.1},
    "with-cf-head": {"w_cf": 1.0},
    "bpr": {"loss": "bpr"},
    "no-logq": {"logq": False},
    "next-objective": {"objective": "next"},
    "mean-pooling": {"pooling": "mean"},
    "no-modality-dropout": {"modality_dropout": 0.0},
    "id-dropout-0.5": {"id_dropout": 0.5},
    "weight-decay-0.01": {"weight_decay": 0.01},
    "dropout-0.5": {"dropout": 0.5},
    "fgm-0.1": {"fgm_epsilon": 0.1},
    "text-only": {"features": "text"},
    "no-minilm": {"features": "attributes,categories,tfidf"},
    "ensemble-3": {"ensemble": 3},
    "lm-lora": {"lm": "lora", "features": "attributes,categories,text", "epochs": 3},
    "lm-ia3": {"lm": "ia3", "features": "attributes,categories,text", "epochs": 3},
    "lm-full": {"lm": "full", "features": "attributes,categories,text", "epochs": 3},
    "lm-lora-field-dropout": {"lm": "lora", "features": "attributes,categories,text",
                              "epochs": 3, "text_field_dropout": 0.3},
}


def features_for(dataset, modalities: list[str], store: Path) -> dict:
    from crossrec.fitting import item_features

    return item_features(dataset, modalities, store)[0]


def run_one(split, model: str, grid: dict, seeds: list[int], features: dict, out: Path,
            label: str) -> dict:
    from crossrec.evaluation.runner import evaluate, machine
    from crossrec.models.base import jsonable

    t0 = time.perf_counter()
    res = evaluate(split, model, seeds=seeds, features=features, grid=grid, progress=False)
    s = res.summary
    row = {"run": out.name, "model": model, "variant": label, "params": res.params,
           "seeds": res.seeds, "valid": res.valid, "grid": res.grid,
           "test": {k: v for k, v in s.items()},
           "test_per_seed": {str(k): r.means() for k, r in res.test.items()},
           "test_history": res.test[res.seeds[0]].history,
           "train_seconds": res.train_seconds, "peak_rss_mb": res.peak_rss_mb,
           "wall_seconds": time.perf_counter() - t0, "extra": res.extra,
           "machine": machine()}
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{label}.json").write_text(json.dumps(row, indent=2, default=jsonable) + "\n")
    print(f"{out.name:24s} {label:28s} valid {res.valid['ndcg@20']:.4f}  test ndcg@20 "
          f"{s['ndcg@20']['mean']:.4f} ± {s['ndcg@20']['std']:.4f}  "
          f"train s {np.median(list(res.train_seconds.values())):.0f}  "
          f"rss {res.peak_rss_mb:.0f} MB", flush=True)
    return row


def main() -> int:
    from crossrec.data.datasets import load_dataset
    from crossrec.evaluation.protocols import make_split

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--only", default="", help="comma-separated run names")
    ap.add_argument("--models", default="", help="comma-separated models (default: the run's)")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--store", type=Path, default=Path(".cache/features"))
    ap.add_argument("--ablation", action="store_true", help="the ablation table (P2 ML-100K)")
    ap.add_argument("--variants", default="", help="comma-separated ablation variants")
    ap.add_argument("--summary", action="store_true", help="print the tables from the JSON "
                    "files and exit")
    ap.add_argument("--set", default="", help="parameter overrides for the runs' models, "
                    "KEY=JSON,... (e.g. collab=true,collab_weight=1.0)")
    ap.add_argument("--label", default="", help="the variant name of the result files "
                    "(default: the model name)")
    args = ap.parse_args()
    overrides = {}
    for pair in filter(None, args.set.split(",")):
        key, _, value = pair.partition("=")
        overrides[key.strip()] = [json.loads(value)]
    if args.summary:
        print(summary())
        return 0
    seeds = [int(s) for s in args.seeds.split(",")]
    only = [r for r in args.only.split(",") if r]
    if args.ablation:
        dataset_name, protocol, modalities, grids = RUNS["p2-ml-100k"]
        ds = load_dataset(dataset_name, args.data_dir / dataset_name)
        split = make_split(ds, protocol)
        feats = features_for(ds, modalities, args.store)
        base = grids["crossrec"]
        wanted = [v for v in args.variants.split(",") if v] or list(ABLATIONS)
        for label in wanted:
            grid = {**base, **{k: [v] for k, v in ABLATIONS[label].items()}}
            run_one(split, "crossrec", grid, seeds, feats, OUT / "ablation-p2-ml-100k", label)
        return 0
    for run, (dataset_name, protocol, modalities, grids) in RUNS.items():
        if only and run not in only:
            continue
        ds = load_dataset(dataset_name, args.data_dir / dataset_name)
        split = make_split(ds, protocol)
        feats = features_for(ds, modalities, args.store)
        models = [m for m in args.models.split(",") if m] or list(grids)
        for model in models:
            grid = {**(grids.get(model) or {}), **overrides} if overrides or grids.get(model) \
                else None
            run_one(split, model, grid, seeds, feats, OUT / run, args.label or model)
    return 0


def summary() -> str:
    """Markdown tables (one per run folder) from bench/results/fusion/*/*.json."""
    lines = []
    for folder in sorted(p for p in OUT.iterdir() if p.is_dir()):
        rows = [json.loads(f.read_text()) for f in sorted(folder.glob("*.json"))]
        # only this script's files (the paired-* folders hold `crossrec evaluate` output)
        rows = [r for r in rows if isinstance(r, dict) and "variant" in r]
        if not rows:
            continue
        lines += [f"### {folder.name}", "",
                  "| variant | seeds | valid NDCG@20 | test NDCG@20 | recall@20 | hr@20 | "
                  "coverage@10 | train s (median) | peak RSS MB |",
                  "|---|---|---|---|---|---|---|---|---|"]
        rows.sort(key=lambda r: -r["test"]["ndcg@20"]["mean"])
        for r in rows:
            t = r["test"]
            sd = f" ± {t['ndcg@20']['std']:.4f}" if len(r["seeds"]) > 1 else ""
            lines.append(
                f"| {r['variant']} | {','.join(map(str, r['seeds']))} | "
                f"{r['valid']['ndcg@20']:.4f} | {t['ndcg@20']['mean']:.4f}{sd} | "
                f"{t['recall@20']['mean']:.4f} | {t['hr@20']['mean']:.4f} | "
                f"{t['coverage@10']['mean']:.4f} | "
                f"{np.median(list(r['train_seconds'].values())):.0f} | "
                f"{r['peak_rss_mb']:.0f} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
