"""Tests for crossrec.evaluation.metrics: hand-computed cases and a pytrec_eval cross-check."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from crossrec.evaluation.metrics import (
    ACCURACY_METRICS,
    compute_metrics,
    hit_matrix,
    hr_at_k,
    intra_list_diversity,
    item_coverage,
    map_at_k,
    mean_over_users,
    mrr_at_k,
    n_relevant,
    ndcg_at_k,
    novelty,
    precision_at_k,
    rank_topk,
    recall_at_k,
)

NAN = float("nan")


def _csr(rows: list[list[int]], n_items: int) -> sp.csr_matrix:
    dense = np.zeros((len(rows), n_items), dtype=np.float32)
    for u, items in enumerate(rows):
        dense[u, items] = 1.0
    return sp.csr_matrix(dense)


# ---------------------------------------------------------------------------
# hand-computed accuracy case
#
# 4 users, 6 items, K = 4 columns.
#   u0: ranked [0, 1, 2, 3], relevant {0, 2}     -> hits at ranks 1, 3
#   u1: ranked [5, 4, 3, 2], relevant {3}        -> hit at rank 3
#   u2: ranked [0, 1, 2, 3], relevant {}         -> NaN everywhere
#   u3: ranked [1, -1, 4, 0], relevant {0, 4, 5} -> hits at ranks 3, 4 (-1 ignored)
# ---------------------------------------------------------------------------

RANKED = np.array([[0, 1, 2, 3], [5, 4, 3, 2], [0, 1, 2, 3], [1, -1, 4, 0]], dtype=np.int64)
RELEVANT = _csr([[0, 2], [3], [], [0, 4, 5]], 6)
L2, L3, L4, L5 = math.log2(2), math.log2(3), math.log2(4), math.log2(5)

EXPECTED = {
    4: {
        # hits / |rel|
        "recall": [2 / 2, 1 / 1, NAN, 2 / 3],
        # hits / k
        "precision": [2 / 4, 1 / 4, NAN, 2 / 4],
        # u0: (1/log2 2 + 1/log2 4) / (1/log2 2 + 1/log2 3)
        # u1: (1/log2 4) / (1/log2 2)
        # u3: (1/log2 4 + 1/log2 5) / (1/log2 2 + 1/log2 3 + 1/log2 4)
        "ndcg": [
            (1 / L2 + 1 / L4) / (1 / L2 + 1 / L3),
            (1 / L4) / (1 / L2),
            NAN,
            (1 / L4 + 1 / L5) / (1 / L2 + 1 / L3 + 1 / L4),
        ],
        "hr": [1.0, 1.0, NAN, 1.0],
        # 1 / rank of first hit
        "mrr": [1.0, 1 / 3, NAN, 1 / 3],
        # u0: (P@1 + P@3) / min(4, 2) = (1 + 2/3) / 2
        # u1: P@3 / min(4, 1) = (1/3) / 1
        # u3: (P@3 + P@4) / min(4, 3) = (1/3 + 2/4) / 3
        "map": [(1 + 2 / 3) / 2, 1 / 3, NAN, (1 / 3 + 2 / 4) / 3],
    },
    2: {
        # top-2: u0 hits [1, 0]; u1 none; u3 none
        "recall": [1 / 2, 0.0, NAN, 0.0],
        "precision": [1 / 2, 0.0, NAN, 0.0],
        "ndcg": [1 / (1 + 1 / L3), 0.0, NAN, 0.0],
        "hr": [1.0, 0.0, NAN, 0.0],
        "mrr": [1.0, 0.0, NAN, 0.0],
        # u0: P@1 / min(2, 2)
        "map": [1 / 2, 0.0, NAN, 0.0],
    },
}

FUNCS = {
    "recall": recall_at_k,
    "precision": precision_at_k,
    "ndcg": ndcg_at_k,
    "hr": hr_at_k,
    "mrr": mrr_at_k,
    "map": map_at_k,
}


def test_hit_matrix_hand_case():
    expected = np.array(
        [
            [True, False, True, False],
            [False, False, True, False],
            [False, False, False, False],
            [False, False, True, True],
        ]
    )
    hits = hit_matrix(RANKED, RELEVANT)
    assert hits.dtype == bool
    np.testing.assert_array_equal(hits, expected)


@pytest.mark.parametrize("k", [2, 4])
@pytest.mark.parametrize("name", sorted(FUNCS))
def test_accuracy_metrics_hand_case(name, k):
    got = FUNCS[name](RANKED, RELEVANT, k)
    assert got.shape == (4,) and got.dtype == np.float64
    np.testing.assert_allclose(got, EXPECTED[k][name], rtol=0, atol=1e-12)


def test_ndcg_example_from_docs():
    # hits at ranks 1 and 3, |rel| = 2
    ranked = np.array([[7, 1, 8, 2]])
    rel = _csr([[7, 8]], 10)
    expected = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert ndcg_at_k(ranked, rel, 4)[0] == pytest.approx(expected, abs=1e-12)


def test_perfect_ranking_scores_one():
    # |rel| = 5 > k = 3 and the top 3 are all relevant: ndcg = map = precision = 1
    ranked = np.array([[0, 1, 2, 3, 4]])
    rel = _csr([[0, 1, 2, 3, 4]], 6)
    for f in (ndcg_at_k, map_at_k, precision_at_k, hr_at_k, mrr_at_k):
        assert f(ranked, rel, 3)[0] == pytest.approx(1.0)
    assert recall_at_k(ranked, rel, 3)[0] == pytest.approx(3 / 5)


def test_compute_metrics_matches_individual_functions():
    out = compute_metrics(RANKED, RELEVANT, ks=(2, 4))
    assert list(out) == [f"{m}@{k}" for k in (2, 4) for m in ACCURACY_METRICS]
    for k in (2, 4):
        for name in ACCURACY_METRICS:
            np.testing.assert_allclose(out[f"{name}@{k}"], EXPECTED[k][name], atol=1e-12)
    sub = compute_metrics(RANKED, RELEVANT, ks=(4,), metrics=("ndcg",))
    assert list(sub) == ["ndcg@4"]
    with pytest.raises(ValueError):
        compute_metrics(RANKED, RELEVANT, ks=(4,), metrics=("auc",))


def test_mean_over_users_ignores_empty_users():
    recall = recall_at_k(RANKED, RELEVANT, 4)
    # users 0, 1, 3 have relevant items
    assert mean_over_users(recall) == pytest.approx((1 + 1 + 2 / 3) / 3)
    assert math.isnan(mean_over_users(np.array([NAN, NAN])))
    assert math.isnan(mean_over_users(np.array([])))


def test_n_relevant():
    np.testing.assert_array_equal(n_relevant(RELEVANT), [2, 1, 0, 3])


def test_k_larger_than_ranked_columns_raises():
    with pytest.raises(ValueError, match="exceeds"):
        recall_at_k(RANKED, RELEVANT, 5)
    with pytest.raises(ValueError):
        compute_metrics(RANKED, RELEVANT, ks=(2, 10))


def test_hit_matrix_validation_and_robustness():
    # out-of-range item ids
    with pytest.raises(ValueError):
        hit_matrix(np.array([[0, 6]]), _csr([[0]], 6))
    with pytest.raises(ValueError):
        hit_matrix(np.array([[0, -2]]), _csr([[0]], 6))
    # row count mismatch
    with pytest.raises(ValueError):
        hit_matrix(np.array([[0, 1]]), _csr([[0], [1]], 6))
    # a repeated item only counts at its first position
    hits = hit_matrix(np.array([[2, 2, 0, 2]]), _csr([[2]], 3))
    np.testing.assert_array_equal(hits, [[True, False, False, False]])
    assert recall_at_k(np.array([[2, 2, 0]]), _csr([[2]], 3), 3)[0] == 1.0
    # non-canonical input (unsorted, duplicated entries) and stored explicit zeros
    rel = sp.csr_matrix(
        (np.array([1.0, 1.0, 0.0, 3.0]), np.array([4, 1, 2, 4]), np.array([0, 4])),
        shape=(1, 6),
    )
    np.testing.assert_array_equal(hit_matrix(np.array([[1, 2, 4, 0]]), rel), [[1, 0, 1, 0]])
    assert recall_at_k(np.array([[1, 2, 4, 0]]), rel, 4)[0] == pytest.approx(1.0)  # |rel| = 2
    assert rel.nnz == 4  # input untouched
    # no relevant at all
    assert not hit_matrix(np.array([[0, 1]]), sp.csr_matrix((1, 6))).any()


# ---------------------------------------------------------------------------
# rank_topk
# ---------------------------------------------------------------------------


def _reference_topk(scores, k, exclude=None, candidates=None):
    """Slow reference: per row, sort by (-score, item) over the rankable items."""
    n_users, n_items = scores.shape
    out = np.full((n_users, k), -1, dtype=np.int64)
    ex = exclude.toarray() != 0 if exclude is not None else np.zeros(scores.shape, bool)
    cand = candidates if candidates is not None else np.ones(n_items, bool)
    for u in range(n_users):
        ok = cand & ~ex[u] & ~np.isnan(scores[u]) & (scores[u] > -np.inf)
        items = np.flatnonzero(ok)
        order = items[np.lexsort((items, -scores[u, items]))][:k]
        out[u, : order.size] = order
    return out


def test_rank_topk_basic_order():
    scores = np.array([[0.1, 0.5, 0.3, 0.9], [4.0, 3.0, 2.0, 1.0]])
    np.testing.assert_array_equal(rank_topk(scores, 2), [[3, 1], [0, 1]])
    np.testing.assert_array_equal(rank_topk(scores, 4), [[3, 1, 2, 0], [0, 1, 2, 3]])
    assert rank_topk(scores, 2).dtype == np.int64


def test_rank_topk_ties_broken_by_lower_index():
    scores = np.array([[1.0] * 6, [0.5, 0.9, 0.5, 0.5, 0.1, 0.5], [0.0, 2.0, 2.0, 0.0, 2.0, 2.0]])
    np.testing.assert_array_equal(rank_topk(scores, 3), [[0, 1, 2], [1, 0, 2], [1, 2, 4]])


def test_rank_topk_many_ties_matches_reference():
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 4, size=(57, 200)).astype(np.float32)  # heavy ties
    exclude = sp.random(57, 200, density=0.2, format="csr", random_state=1)
    candidates = rng.random(200) < 0.8
    for k in (1, 10, 25):
        got = rank_topk(scores, k, exclude=exclude, candidates=candidates, batch_size=16)
        np.testing.assert_array_equal(got, _reference_topk(scores, k, exclude, candidates))


def test_rank_topk_exclusion_and_candidates():
    scores = np.array([[0.9, 0.8, 0.7, 0.6, 0.5], [0.9, 0.8, 0.7, 0.6, 0.5]])
    exclude = _csr([[0, 2], []], 5)
    np.testing.assert_array_equal(rank_topk(scores, 2, exclude=exclude), [[1, 3], [0, 1]])
    cand = np.array([True, False, True, True, True])
    np.testing.assert_array_equal(rank_topk(scores, 2, candidates=cand), [[0, 2], [0, 2]])
    np.testing.assert_array_equal(
        rank_topk(scores, 2, exclude=exclude, candidates=cand), [[3, 4], [0, 2]]
    )
    with pytest.raises(ValueError):
        rank_topk(scores, 2, candidates=np.array([1, 0, 1, 1, 1]))  # not boolean
    with pytest.raises(ValueError):
        rank_topk(scores, 2, exclude=_csr([[0]], 4))  # wrong shape


def test_rank_topk_pads_with_minus_one():
    scores = np.array([[0.3, 0.2, 0.1], [0.1, 0.2, 0.3]])
    exclude = _csr([[0, 1], []], 3)
    np.testing.assert_array_equal(rank_topk(scores, 3, exclude=exclude), [[2, -1, -1], [2, 1, 0]])
    # k larger than the catalogue
    np.testing.assert_array_equal(
        rank_topk(scores, 5, exclude=exclude), [[2, -1, -1, -1, -1], [2, 1, 0, -1, -1]]
    )
    # NaN and -inf scores are unrankable
    scores = np.array([[np.nan, 0.5, -np.inf, 0.1]])
    np.testing.assert_array_equal(rank_topk(scores, 3), [[1, 3, -1]])


def test_rank_topk_does_not_modify_input_unless_inplace():
    rng = np.random.default_rng(0)
    scores = rng.random((30, 40)).astype(np.float32)
    scores[0, 0] = np.nan
    before = scores.copy()
    exclude = sp.random(30, 40, density=0.3, format="csr", random_state=0)
    cand = rng.random(40) < 0.7
    expected = rank_topk(scores, 5, exclude=exclude, candidates=cand, batch_size=7)
    np.testing.assert_array_equal(scores, before)  # NaN-aware equality
    got = rank_topk(scores, 5, exclude=exclude, candidates=cand, inplace=True)
    np.testing.assert_array_equal(got, expected)
    assert np.isneginf(scores[exclude.nonzero()]).all()  # documented side effect
    assert np.isneginf(scores[:, ~cand]).all()
    np.testing.assert_array_equal(expected, _reference_topk(before, 5, exclude, cand))


def test_rank_topk_dtypes_and_batches_agree():
    rng = np.random.default_rng(1)
    scores = rng.random((50, 60))
    exclude = sp.random(50, 60, density=0.1, format="csr", random_state=2)
    ref = rank_topk(scores, 8, exclude=exclude)
    for bs in (1, 7, 1000):
        np.testing.assert_array_equal(rank_topk(scores, 8, exclude=exclude, batch_size=bs), ref)
    # integer scores are accepted (copied to float)
    ints = rng.integers(0, 5, size=(5, 9))
    np.testing.assert_array_equal(rank_topk(ints, 4), _reference_topk(ints.astype(float), 4))
    with pytest.raises(TypeError):
        rank_topk(ints, 4, inplace=True)


# ---------------------------------------------------------------------------
# cross-check against pytrec_eval
# ---------------------------------------------------------------------------


def test_cross_check_with_pytrec_eval():
    pytrec_eval = pytest.importorskip("pytrec_eval")
    rng = np.random.default_rng(42)
    n_users, n_items, ks = 200, 300, (10, 20)

    # distinct scores per user (a random permutation), so no ties anywhere
    scores = np.stack([rng.permutation(n_items) for _ in range(n_users)]).astype(np.float64)
    scores = scores / n_items + 0.5
    rel_rows, train_rows = [], []
    for _ in range(n_users):
        items = rng.permutation(n_items)
        n_rel = int(rng.integers(1, 31))
        rel_rows.append(items[:n_rel].tolist())
        train_rows.append(items[n_rel : n_rel + int(rng.integers(0, 40))].tolist())
    relevant, train = _csr(rel_rows, n_items), _csr(train_rows, n_items)

    ranked = rank_topk(scores, max(ks), exclude=train)
    ours = compute_metrics(ranked, relevant, ks=ks)

    qrels = {f"q{u}": {f"d{i}": 1 for i in rel_rows[u]} for u in range(n_users)}
    # the full run (excluded items removed): pytrec_eval ranks by score itself
    run = {
        f"q{u}": {
            f"d{i}": float(scores[u, i]) for i in range(n_items) if i not in set(train_rows[u])
        }
        for u in range(n_users)
    }
    measures = {"ndcg_cut.10,20", "recall.10,20", "P.10,20", "map_cut.10,20"}
    trec = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)

    n_rel = np.array([len(r) for r in rel_rows], dtype=np.float64)
    for k in ks:
        ref = {
            name: np.array([trec[f"q{u}"][f"{name}_{k}"] for u in range(n_users)])
            for name in ("ndcg_cut", "recall", "P", "map_cut")
        }
        np.testing.assert_allclose(ours[f"ndcg@{k}"], ref["ndcg_cut"], rtol=0, atol=1e-9)
        np.testing.assert_allclose(ours[f"recall@{k}"], ref["recall"], rtol=0, atol=1e-9)
        np.testing.assert_allclose(ours[f"precision@{k}"], ref["P"], rtol=0, atol=1e-9)
        # trec_eval's map_cut divides by |rel|, ours by min(k, |rel|)
        rescaled = ref["map_cut"] * n_rel / np.minimum(k, n_rel)
        np.testing.assert_allclose(ours[f"map@{k}"], rescaled, rtol=0, atol=1e-9)

        # reciprocal rank on the run truncated to the top k
        run_k = {
            f"q{u}": {f"d{i}": float(scores[u, i]) for i in ranked[u, :k] if i >= 0}
            for u in range(n_users)
        }
        rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(run_k)
        ref_rr = np.array([rr[f"q{u}"]["recip_rank"] for u in range(n_users)])
        np.testing.assert_allclose(ours[f"mrr@{k}"], ref_rr, rtol=0, atol=1e-9)
        # hr is "any hit", i.e. recall > 0
        np.testing.assert_array_equal(ours[f"hr@{k}"], (ref["recall"] > 0).astype(float))

    # the test must actually exercise hits and misses
    assert 0 < np.mean(ours["hr@20"]) < 1


# ---------------------------------------------------------------------------
# beyond-accuracy metrics
# ---------------------------------------------------------------------------


def test_item_coverage_hand_case():
    ranked = np.array([[0, 1, -1], [1, 2, 3]])
    # k=2: {0, 1} | {1, 2} = 3 distinct items out of 10
    assert item_coverage(ranked, 2, 10) == pytest.approx(0.3)
    # k=3: {0, 1} | {1, 2, 3} = 4 (the -1 ignored)
    assert item_coverage(ranked, 3, 10) == pytest.approx(0.4)
    assert item_coverage(np.full((2, 3), -1), 3, 10) == 0.0
    with pytest.raises(ValueError):
        item_coverage(ranked, 2, 0)


def test_novelty_hand_case():
    popularity = np.array([50, 25, 0, 100])
    n_users = 100
    # shares 0.5, 0.25, 1/100 (popularity 0 -> 1/n_users), 1.0
    # -log2: 1, 2, log2(100), 0
    ranked = np.array([[0, 1], [2, 3]])
    assert novelty(ranked, 2, popularity, n_users) == pytest.approx((1 + 2 + math.log2(100)) / 4)
    # -1 slots ignored: items 0, 1, 3 -> (1 + 2 + 0) / 3
    ranked = np.array([[0, -1], [1, 3]])
    assert novelty(ranked, 2, popularity, n_users) == pytest.approx(1.0)
    # only the top k count: k=1 -> items 0 and 1 -> (1 + 2) / 2
    assert novelty(ranked, 1, popularity, n_users) == pytest.approx(1.5)
    assert math.isnan(novelty(np.full((1, 2), -1), 2, popularity, n_users))


def test_intra_list_diversity_hand_cases():
    vecs = np.array(
        [
            [1.0, 0.0, 0.0],  # 0: e1
            [0.0, 1.0, 0.0],  # 1: e2
            [0.0, 0.0, 1.0],  # 2: e3
            [2.0, 2.0, 0.0],  # 3: same direction as 4
            [3.0, 3.0, 0.0],  # 4
            [5.0, 0.0, 0.0],  # 5: same direction as 0
            [0.0, 0.0, 0.0],  # 6: zero vector
        ]
    )
    # orthogonal vectors: every cosine 0 -> ILD 1
    assert intra_list_diversity(np.array([[0, 1, 2]]), 3, vecs) == pytest.approx(1.0)
    # identical directions: every cosine 1 -> ILD 0
    assert intra_list_diversity(np.array([[3, 4]]), 2, vecs) == pytest.approx(0.0, abs=1e-12)
    # e1, 5*e1, e2: cosines 1, 0, 0 -> mean 1/3 -> ILD 2/3
    assert intra_list_diversity(np.array([[0, 5, 1]]), 3, vecs) == pytest.approx(2 / 3)
    # zero vector has cosine 0 with anything: [e1, 0] -> ILD 1
    assert intra_list_diversity(np.array([[0, 6]]), 2, vecs) == pytest.approx(1.0)
    # averaging over users with >= 2 items (-1 ignored):
    #   k=3: u0 [e1, e2, e3] -> 1; u1 [3, 4] -> 0; u2 one item -> skipped;
    #        u3 [e3, e1] -> 1                      => (1 + 0 + 1) / 3
    #   k=2: u0 [e1, e2] -> 1; u1 [3, 4] -> 0; u2, u3 one item each -> skipped => 1/2
    ranked = np.array([[0, 1, 2], [3, 4, -1], [0, -1, -1], [2, -1, 0]])
    assert intra_list_diversity(ranked, 3, vecs) == pytest.approx((1 + 0 + 1) / 3)
    assert intra_list_diversity(ranked, 2, vecs) == pytest.approx((1 + 0) / 2)
    assert math.isnan(intra_list_diversity(np.array([[0, -1]]), 2, vecs))


def test_intra_list_diversity_matches_brute_force():
    rng = np.random.default_rng(7)
    vecs = rng.standard_normal((40, 8))
    vecs[3] = 0.0
    ranked = np.stack([rng.permutation(40)[:6] for _ in range(25)])
    ranked[rng.random(ranked.shape) < 0.2] = -1
    expected = []
    for row in ranked[:, :5]:
        items = row[row >= 0]
        if items.size < 2:
            continue
        v = vecs[items]
        n = np.linalg.norm(v, axis=1)
        v = np.divide(v, n[:, None], out=np.zeros_like(v), where=n[:, None] > 0)
        sims = [v[i] @ v[j] for i in range(len(v)) for j in range(i + 1, len(v))]
        expected.append(1 - np.mean(sims))
    got = intra_list_diversity(ranked, 5, vecs.astype(np.float32))
    assert got == pytest.approx(np.mean(expected), abs=1e-6)
