"""Speed benchmark of the evaluation metrics at MovieLens-1M scale.

Random float32 scores for 6040 users x 3706 items (seed 0), ~130 training
(excluded) items and ~16 relevant items per user, 384-dim item vectors. Times
(median of 5 runs, ``time.perf_counter``):

* ``rank_topk`` (k=20, with exclusion, ``inplace=True`` on a copy made outside
  the timing),
* ``compute_metrics`` for ks (10, 20),
* ``item_coverage`` + ``novelty`` + ``intra_list_diversity`` at k=20,

and the whole pipeline. Prints the result and writes
``bench/results/metrics_speed.json``.

Run: ``python bench/bench_metrics.py``
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from crossrec.evaluation.metrics import (
    compute_metrics,
    intra_list_diversity,
    item_coverage,
    novelty,
    rank_topk,
)

N_USERS, N_ITEMS, DIM = 6040, 3706, 384
TRAIN_PER_USER, REL_PER_USER = 130, 16
K, KS = 20, (10, 20)
REPEATS = 5
OUT = Path(__file__).resolve().parent / "results" / "metrics_speed.json"


def _random_sets(rng: np.random.Generator, n_users: int, n_items: int, sizes: np.ndarray):
    """Per user, ``sizes[u]`` distinct random items; returns a list of sorted arrays."""
    return [np.sort(rng.choice(n_items, size=int(s), replace=False)) for s in sizes]


def _to_csr(sets: list[np.ndarray], n_items: int) -> sp.csr_matrix:
    indptr = np.concatenate(([0], np.cumsum([len(s) for s in sets])))
    indices = np.concatenate(sets).astype(np.int32)
    data = np.ones(indices.size, dtype=np.float32)
    return sp.csr_matrix((data, indices, indptr), shape=(len(sets), n_items))


def make_data(seed: int = 0):
    rng = np.random.default_rng(seed)
    scores = rng.random((N_USERS, N_ITEMS), dtype=np.float32)
    sizes = rng.poisson(TRAIN_PER_USER + REL_PER_USER, size=N_USERS).clip(20, N_ITEMS)
    both = _random_sets(rng, N_USERS, N_ITEMS, sizes)
    train_sets, rel_sets = [], []
    for items in both:  # split each user's items into disjoint train / relevant parts
        items = rng.permutation(items)
        n_rel = max(1, round(len(items) * REL_PER_USER / (TRAIN_PER_USER + REL_PER_USER)))
        rel_sets.append(np.sort(items[:n_rel]))
        train_sets.append(np.sort(items[n_rel:]))
    train = _to_csr(train_sets, N_ITEMS)
    relevant = _to_csr(rel_sets, N_ITEMS)
    item_vectors = rng.standard_normal((N_ITEMS, DIM), dtype=np.float32)
    popularity = np.diff(train.tocsc().indptr)
    return scores, train, relevant, item_vectors, popularity


def main() -> dict:
    scores, train, relevant, item_vectors, popularity = make_data(0)
    times: dict[str, list[float]] = {
        "rank_topk": [],
        "compute_metrics": [],
        "beyond": [],
        "total": [],
    }
    for _ in range(REPEATS):
        work = scores.copy()  # rank_topk(inplace=True) scribbles on it; copy not timed
        t0 = time.perf_counter()
        ranked = rank_topk(work, K, exclude=train, inplace=True)
        t1 = time.perf_counter()
        per_user = compute_metrics(ranked, relevant, ks=KS)
        t2 = time.perf_counter()
        cov = item_coverage(ranked, K, N_ITEMS)
        nov = novelty(ranked, K, popularity, N_USERS)
        ild = intra_list_diversity(ranked, K, item_vectors)
        t3 = time.perf_counter()
        times["rank_topk"].append(t1 - t0)
        times["compute_metrics"].append(t2 - t1)
        times["beyond"].append(t3 - t2)
        times["total"].append(t3 - t0)
        del work

    medians = {name: statistics.median(v) for name, v in times.items()}
    result = {
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "processor": platform.processor(),
            "python": platform.python_version(),
            "numpy": np.__version__,
        },
        "config": {
            "n_users": N_USERS,
            "n_items": N_ITEMS,
            "dim": DIM,
            "k": K,
            "ks": list(KS),
            "mean_train_per_user": float(train.nnz / N_USERS),
            "mean_relevant_per_user": float(relevant.nnz / N_USERS),
            "repeats": REPEATS,
        },
        "median_s": medians,
        "runs_s": times,
        "sanity": {
            "ndcg@20_mean": float(np.nanmean(per_user["ndcg@20"])),
            "coverage@20": cov,
            "novelty@20": nov,
            "ild@20": ild,
        },
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    for name, value in medians.items():
        print(f"{name:16s} median {value * 1000:8.1f} ms")
    print(f"wrote {OUT}")
    return result


if __name__ == "__main__":
    main()
