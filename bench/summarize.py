"""Print the Markdown tables of BENCHMARKS.md from bench/results/<run>/<model>.json.

    python bench/summarize.py > /tmp/tables.md
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent / "results"
METRICS = ("ndcg@10", "ndcg@20", "recall@20", "hr@20", "mrr@20", "coverage@10", "novelty@10",
           "diversity@10")


def cell(stat: dict, n_seeds: int) -> str:
    return f"{stat['mean']:.4f} ± {stat['std']:.4f}" if n_seeds > 1 else f"{stat['mean']:.4f}"


def table(folder: Path) -> str:
    recs = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))
            if p.name != "comparisons.json"]
    recs = [r for r in recs if "ndcg@20" in r.get("test", {}) and "split" in r]
    if not recs:
        return ""
    recs.sort(key=lambda r: -r["test"]["ndcg@20"]["mean"])
    split = recs[0]["split"]
    lines = [f"### {recs[0]['protocol']} on {recs[0]['dataset']}", "",
             f"Split: train {split['train']['interactions']:,} / valid "
             f"{split['valid']['interactions']:,} / test {split['test']['interactions']:,} "
             f"interactions; {split['eval_users_test']:,} test users; "
             f"{split['candidates_test']:,} candidate items.", "",
             "| model | valid NDCG@20 | " + " | ".join(METRICS) + " | train s (median) | params |",
             "|---" * (len(METRICS) + 4) + "|"]
    for r in recs:
        n = len(r["seeds"])
        train_s = sorted(r["train_seconds"].values())[len(r["train_seconds"]) // 2]
        lines.append(f"| {r['model']} | {r['valid'].get('ndcg@20', float('nan')):.4f} | "
                     + " | ".join(cell(r["test"][m], n) if m in r["test"] else "–"
                                  for m in METRICS)
                     + f" | {train_s:.1f} | `{json.dumps(r['params'])}` |")
    read = {r["model"]: r["test_history"] for r in recs if "test_history" in r}
    widest = max(read.values(), key=len, default=[])
    fewer = sorted(m for m, parts in read.items() if parts != widest)
    if widest:
        lines += ["", f"Test users scored from their {' + '.join(widest)} histories"
                  + (f", except {', '.join(fewer)} (a vector per user learned in training: "
                     f"{' + '.join(read[fewer[0]])} only)" if fewer else "") + "."]
    comp = folder / "comparisons.json"
    if comp.exists():
        sig = json.loads(comp.read_text())
        if sig:
            lines += ["", "Paired test against the best model (test NDCG@20 per user, seed 0): "
                      + "; ".join(f"{s['other']} {s['diff']:+.4f} (p={s['p_bootstrap']:.3g})"
                                  for s in sig)]
    return "\n".join(lines) + "\n"


def main() -> None:
    for folder in sorted(p for p in HERE.iterdir() if p.is_dir()):
        text = table(folder)
        if text:
            print(text)


if __name__ == "__main__":
    main()
