"""Result files: one JSON per model, a Markdown report with a table, a plot, significance."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from crossrec.evaluation import significance
from crossrec.evaluation.runner import SELECT_BY, ModelResult, machine

TABLE_METRICS = ("recall@10", "ndcg@10", "recall@20", "ndcg@20", "hr@20", "mrr@20",
                 "coverage@10", "novelty@10", "diversity@10")


def result_record(res: ModelResult, protocol: str, dataset: str, split_stats: dict) -> dict:
    """The JSON row PROTOCOL.md asks for (protocol, dataset, model, params, seeds, metrics,
    wall seconds, peak memory, machine)."""
    return {
        "protocol": protocol, "dataset": dataset, "model": res.model, "params": res.params,
        "seeds": res.seeds, "selected_by": f"valid {SELECT_BY}",
        "valid": res.valid,
        "test": res.summary,
        "test_per_seed": {str(s): r.means() for s, r in res.test.items()},
        "train_seconds": {str(s): round(t, 3) for s, t in res.train_seconds.items()},
        "eval_seconds": {str(s): round(r.eval_seconds, 3) for s, r in res.test.items()},
        "test_history": res.test[res.seeds[0]].history,
        "tuning": res.grid, "peak_rss_mb": round(res.peak_rss_mb, 1),
        "split": split_stats, "machine": machine(),
    }


def format_table(results: list[ModelResult], metrics=TABLE_METRICS) -> str:
    """A Markdown table, mean ± std over seeds where a model ran several."""
    head = "| model | " + " | ".join(metrics) + " | train s |\n"
    head += "|---" * (len(metrics) + 2) + "|\n"
    rows = []
    for r in results:
        s = r.summary
        cells = []
        for m in metrics:
            if m not in s:
                cells.append("–")
            elif len(r.seeds) > 1:
                cells.append(f"{s[m]['mean']:.4f} ± {s[m]['std']:.4f}")
            else:
                cells.append(f"{s[m]['mean']:.4f}")
        rows.append(f"| {r.model} | " + " | ".join(cells)
                    + f" | {np.median(list(r.train_seconds.values())):.1f} |")
    return head + "\n".join(rows) + "\n"


def compare_to_best(results: list[ModelResult], metric: str = SELECT_BY) -> list[dict]:
    """Paired bootstrap and t-test of every model against the best one on test ``metric``
    (first seed, per-user values over the same users)."""
    if len(results) < 2:
        return []
    best = max(results, key=lambda r: r.summary[metric]["mean"])
    a = best.test[best.seeds[0]].per_user[metric]
    out = []
    for r in results:
        if r is best:
            continue
        b = r.test[r.seeds[0]].per_user[metric]
        boot = significance.paired_bootstrap(a, b)
        t = significance.paired_ttest(a, b)
        out.append({"best": best.model, "other": r.model, "metric": metric,
                    "diff": boot["diff"], "ci95": [boot["ci_low"], boot["ci_high"]],
                    "p_bootstrap": boot["p_value"], "p_ttest": t["p_value"]})
    return out


def plot(results: list[ModelResult], path: Path, metric: str = SELECT_BY, title: str = "") -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r.model for r in results]
    means = [r.summary[metric]["mean"] for r in results]
    stds = [r.summary[metric]["std"] for r in results]
    fig, ax = plt.subplots(figsize=(max(4, 1.1 * len(names) + 2), 3.2), dpi=120)
    ax.bar(names, means, yerr=stds, color="#4c72b0", capsize=4)
    for i, v in enumerate(means):
        ax.text(i, v, f"{v:.4f}", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel(f"test {metric}")
    ax.set_title(title, fontsize=10)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_report(results: list[ModelResult], out: Path, protocol: str, dataset: str,
                 split_stats: dict) -> Path:
    """Write ``out/<model>.json``, ``out/report.md`` and ``out/ndcg20.png``; return the report."""
    out.mkdir(parents=True, exist_ok=True)
    for r in results:
        record = result_record(r, protocol, dataset, split_stats)
        (out / f"{r.model}.json").write_text(json.dumps(record, indent=2) + "\n")
    title = f"{dataset} / {protocol}"
    png = plot(results, out / "ndcg20.png", title=title)
    sig = compare_to_best(results)
    lines = [f"# {title}", "", "Test metrics; hyper-parameters chosen on valid NDCG@20.", "",
             format_table(results), f"![NDCG@20]({png.name})", ""]
    if sig:
        lines += ["## Paired comparison with the best model (test NDCG@20, per user)", "",
                  "| best | other | diff | 95% CI | p (bootstrap) | p (t-test) |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {s['best']} | {s['other']} | {s['diff']:+.4f} | "
                  f"[{s['ci95'][0]:+.4f}, {s['ci95'][1]:+.4f}] | {s['p_bootstrap']:.4g} | "
                  f"{s['p_ttest']:.4g} |" for s in sig]
        lines.append("")
    lines += ["## Chosen hyper-parameters", ""]
    lines += [f"- {r.model}: `{json.dumps(r.params)}` (valid NDCG@20 "
              f"{r.valid.get(SELECT_BY, float('nan')):.4f})" for r in results]
    lines += ["", "## Split", "", "```json", json.dumps(split_stats, indent=2), "```", ""]
    (out / "comparisons.json").write_text(json.dumps(sig, indent=2) + "\n")
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
