"""Paired significance tests over per-user metric arrays.

Both tests take two aligned per-user arrays (e.g. ``ndcg@10`` of system A and
system B on the same users, as returned by
:func:`crossrec.evaluation.metrics.compute_metrics`) and drop every pair in
which either value is NaN (users without relevant items), so they compare the
same users that :func:`~crossrec.evaluation.metrics.mean_over_users` averages.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

__all__ = ["paired_bootstrap", "paired_ttest"]

# resampled indices held in memory at once by paired_bootstrap
_BOOTSTRAP_CHUNK_ELEMS = 2_000_000


def _paired(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate shapes, flatten, and drop pairs where either value is NaN."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(
            f"a and b must have the same shape (one value per user), got {a.shape} and {b.shape}"
        )
    a, b = a.ravel(), b.ravel()
    keep = ~(np.isnan(a) | np.isnan(b))
    return a[keep], b[keep]


def paired_bootstrap(
    a: np.ndarray,
    b: np.ndarray,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> dict[str, float]:
    """Paired bootstrap of the mean difference ``mean(a) - mean(b)``.

    Users are resampled with replacement ``n_resamples`` times (the same users
    for both systems).

    Args:
        a, b: per-user values, same shape; pairs with a NaN are dropped.
        n_resamples: bootstrap replicates.
        seed: seed for ``numpy.random.default_rng``.

    Returns:
        ``mean_a``, ``mean_b``, ``diff`` (= mean_a - mean_b), ``ci_low`` /
        ``ci_high`` (95% percentile interval of the resampled differences),
        ``p_value`` (two-sided: twice the share of resampled differences on the
        other side of zero from ``diff``, zero included, capped at 1; 1.0 when
        ``diff == 0``) and ``n`` (number of pairs used). With no pairs left all
        floats are NaN.
    """
    a, b = _paired(a, b)
    n = int(a.size)
    n_resamples = int(n_resamples)
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if n == 0:
        nan = float("nan")
        return {
            "mean_a": nan,
            "mean_b": nan,
            "diff": nan,
            "ci_low": nan,
            "ci_high": nan,
            "p_value": nan,
            "n": 0,
        }

    d = a - b
    diff = float(d.mean())
    rng = np.random.default_rng(seed)
    boot = np.empty(n_resamples, dtype=np.float64)
    chunk = max(1, _BOOTSTRAP_CHUNK_ELEMS // n)
    for s in range(0, n_resamples, chunk):
        e = min(s + chunk, n_resamples)
        idx = rng.integers(0, n, size=(e - s, n))
        boot[s:e] = d[idx].mean(axis=1)

    ci_low, ci_high = np.percentile(boot, [2.5, 97.5])
    if diff > 0:
        p = 2.0 * np.count_nonzero(boot <= 0) / n_resamples
    elif diff < 0:
        p = 2.0 * np.count_nonzero(boot >= 0) / n_resamples
    else:
        p = 1.0
    return {
        "mean_a": float(a.mean()),
        "mean_b": float(b.mean()),
        "diff": diff,
        "ci_low": float(ci_low),
        "ci_high": float(ci_high),
        "p_value": float(min(p, 1.0)),
        "n": n,
    }


def paired_ttest(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Paired Student t-test (``scipy.stats.ttest_rel``) of ``a`` vs ``b``.

    Args:
        a, b: per-user values, same shape; pairs with a NaN are dropped.

    Returns:
        ``diff`` (mean of ``a - b``), ``t``, two-sided ``p_value`` and ``n``.
        Degenerate cases: fewer than 2 pairs gives NaN ``t``/``p_value``; when
        all differences are equal (zero variance) ``t``/``p_value`` are
        ``0``/``1`` if they are all zero and ``+-inf``/``0`` otherwise.
    """
    a, b = _paired(a, b)
    n = int(a.size)
    if n == 0:
        return {"diff": float("nan"), "t": float("nan"), "p_value": float("nan"), "n": 0}
    d = a - b
    diff = float(d.mean())
    if n < 2:
        return {"diff": diff, "t": float("nan"), "p_value": float("nan"), "n": n}
    if np.all(d == d[0]):
        if diff == 0:
            return {"diff": diff, "t": 0.0, "p_value": 1.0, "n": n}
        return {"diff": diff, "t": float(np.copysign(np.inf, diff)), "p_value": 0.0, "n": n}
    res = stats.ttest_rel(a, b)
    return {"diff": diff, "t": float(res.statistic), "p_value": float(res.pvalue), "n": n}
