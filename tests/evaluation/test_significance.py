"""Tests for crossrec.evaluation.significance."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from crossrec.evaluation.significance import paired_bootstrap, paired_ttest

KEYS_BOOT = {"mean_a", "mean_b", "diff", "ci_low", "ci_high", "p_value", "n"}


def test_bootstrap_identical_arrays():
    a = np.random.default_rng(0).random(300)
    res = paired_bootstrap(a, a.copy(), n_resamples=2000)
    assert set(res) == KEYS_BOOT
    assert res["diff"] == 0.0
    assert res["ci_low"] == 0.0 and res["ci_high"] == 0.0
    assert res["p_value"] == 1.0
    assert res["n"] == 300
    assert res["mean_a"] == pytest.approx(a.mean())


def test_bootstrap_clear_shift_is_significant():
    rng = np.random.default_rng(1)
    b = rng.random(500)
    a = b + 0.05 + 0.01 * rng.standard_normal(500)
    res = paired_bootstrap(a, b, n_resamples=2000, seed=3)
    assert res["diff"] == pytest.approx(np.mean(a - b))
    assert res["mean_a"] - res["mean_b"] == pytest.approx(res["diff"])
    assert res["p_value"] < 0.01
    assert res["ci_low"] < res["diff"] < res["ci_high"]
    assert res["ci_low"] > 0
    # symmetric when swapped
    swapped = paired_bootstrap(b, a, n_resamples=2000, seed=3)
    assert swapped["diff"] == pytest.approx(-res["diff"])
    assert swapped["p_value"] < 0.01 and swapped["ci_high"] < 0


def test_bootstrap_no_difference_has_large_p_and_ci_covers_zero():
    rng = np.random.default_rng(2)
    a, b = rng.random(400), rng.random(400)
    res = paired_bootstrap(a, b, n_resamples=3000)
    assert res["ci_low"] < 0 < res["ci_high"]
    assert 0.05 < res["p_value"] <= 1.0


def test_bootstrap_ci_matches_normal_approximation():
    rng = np.random.default_rng(4)
    d = rng.standard_normal(1000)
    res = paired_bootstrap(d, np.zeros(1000), n_resamples=4000, seed=0)
    se = d.std(ddof=1) / math.sqrt(d.size)
    assert res["ci_low"] == pytest.approx(d.mean() - 1.96 * se, abs=0.15 * se)
    assert res["ci_high"] == pytest.approx(d.mean() + 1.96 * se, abs=0.15 * se)


def test_bootstrap_is_deterministic_given_seed():
    rng = np.random.default_rng(5)
    a, b = rng.random(100), rng.random(100)
    assert paired_bootstrap(a, b, 500, seed=7) == paired_bootstrap(a, b, 500, seed=7)


def test_nan_pairs_dropped():
    a = np.array([0.5, np.nan, 0.7, 0.2, np.nan])
    b = np.array([0.1, 0.3, np.nan, 0.4, np.nan])
    # kept pairs: (0.5, 0.1) and (0.2, 0.4)
    res = paired_bootstrap(a, b, n_resamples=500)
    assert res["n"] == 2
    assert res["mean_a"] == pytest.approx(0.35)
    assert res["mean_b"] == pytest.approx(0.25)
    assert res["diff"] == pytest.approx(0.1)
    t = paired_ttest(a, b)
    assert t["n"] == 2
    assert t["diff"] == pytest.approx(0.1)
    ref = stats.ttest_rel([0.5, 0.2], [0.1, 0.4])
    assert t["t"] == pytest.approx(ref.statistic)
    assert t["p_value"] == pytest.approx(ref.pvalue)


def test_all_nan_gives_nan():
    res = paired_bootstrap(np.array([np.nan]), np.array([1.0]))
    assert res["n"] == 0 and math.isnan(res["diff"]) and math.isnan(res["p_value"])
    t = paired_ttest(np.array([np.nan]), np.array([1.0]))
    assert t["n"] == 0 and math.isnan(t["p_value"])


@pytest.mark.parametrize("test", [paired_bootstrap, paired_ttest])
def test_shape_mismatch_raises(test):
    with pytest.raises(ValueError, match="same shape"):
        test(np.zeros(3), np.zeros(4))


def test_ttest_matches_scipy_and_shift():
    rng = np.random.default_rng(6)
    b = rng.random(200)
    a = b + 0.05 + 0.02 * rng.standard_normal(200)
    res = paired_ttest(a, b)
    ref = stats.ttest_rel(a, b)
    assert set(res) == {"diff", "t", "p_value", "n"}
    assert res["t"] == pytest.approx(ref.statistic)
    assert res["p_value"] == pytest.approx(ref.pvalue)
    assert res["p_value"] < 0.01 and res["t"] > 0
    assert res["n"] == 200


def test_ttest_degenerate_cases():
    a = np.array([0.1, 0.4, 0.9])
    same = paired_ttest(a, a.copy())
    assert same["diff"] == 0.0 and same["t"] == 0.0 and same["p_value"] == 1.0
    b = np.array([0.5, 1.0, 2.0])
    const = paired_ttest(b + 0.25, b)  # all differences exactly 0.25
    assert const["diff"] == 0.25 and const["t"] == math.inf and const["p_value"] == 0.0
    neg = paired_ttest(b, b + 0.25)
    assert neg["t"] == -math.inf and neg["p_value"] == 0.0
    one = paired_ttest(np.array([1.0]), np.array([0.0]))
    assert one["n"] == 1 and math.isnan(one["t"])
