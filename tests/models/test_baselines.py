"""Hand-checked cases for the classical baselines and the content feature builders."""

from __future__ import annotations

import numpy as np
import pytest

from crossrec.data.catalog import Catalog
from crossrec.data.dataset import Features
from crossrec.data.interactions import Interactions
from crossrec.features import (
    binned_features,
    category_features,
    concat_features,
    default_content_features,
    numeric_features,
    tfidf_features,
)
from crossrec.models import TrainData, build_model


def train_from(rows: list[list[int]], n_items: int, **kwargs) -> TrainData:
    """TrainData from a list of item lists, one per user."""
    users = [u for u, items in enumerate(rows) for _ in items]
    items = [i for r in rows for i in r]
    return TrainData(Interactions(np.array(users, dtype=np.int64), np.array(items, np.int64)),
                     len(rows), n_items, **kwargs)


# -- popularity -------------------------------------------------------------------------------

def test_pop_scores_are_user_counts():
    train = train_from([[0, 1], [1], [1, 3], []], n_items=5)
    scores = build_model("pop").fit(train).score(np.array([0, 3]))
    np.testing.assert_array_equal(scores, [[1, 3, 0, 1, 0]] * 2)


# -- item kNN ---------------------------------------------------------------------------------
# 6 users x 3 items. Item users: n0 = 3, n1 = 4, n2 = 4; co-occurrences c01 = 2, c02 = 1,
# c12 = 2; cosine s_ij = c_ij / sqrt(n_i n_j): s01 = 2/sqrt(12), s02 = 1/sqrt(12), s12 = 2/4.
KNN_ROWS = [[0, 1], [0, 1], [0, 2], [1, 2], [1, 2], [2]]
S01, S02, S12 = 2 / np.sqrt(12), 1 / np.sqrt(12), 0.5


def test_itemknn_cosine_all_neighbours():
    model = build_model("itemknn", k=2).fit(train_from(KNN_ROWS, 3))
    expected_sim = [[0, S01, S02], [S01, 0, S12], [S02, S12, 0]]
    np.testing.assert_allclose(model.similarity_.toarray(), expected_sim, rtol=1e-6)
    # user 2 has items 0 and 2: score_j = s_0j + s_2j
    np.testing.assert_allclose(model.score(np.array([2]))[0], [S02, S01 + S12, S02], rtol=1e-6)


def test_itemknn_keeps_k_neighbours_per_item():
    model = build_model("itemknn", k=1).fit(train_from(KNN_ROWS, 3))
    # nearest neighbour: 0 -> 1 (s01 > s02), 1 -> 0 (s01 > s12), 2 -> 1 (s12 > s02)
    np.testing.assert_allclose(model.similarity_.toarray(),
                               [[0, S01, 0], [S01, 0, 0], [0, S12, 0]], rtol=1e-6)
    np.testing.assert_allclose(model.score(np.array([2]))[0], [0, S01 + S12, 0], rtol=1e-6)


def test_itemknn_shrinkage():
    model = build_model("itemknn", k=2, shrinkage=3.0).fit(train_from(KNN_ROWS, 3))
    # dot / (|i| |j| + shrinkage) on the binary matrix
    expected = [[0, 2 / (np.sqrt(12) + 3), 1 / (np.sqrt(12) + 3)],
                [2 / (np.sqrt(12) + 3), 0, 2 / (4 + 3)],
                [1 / (np.sqrt(12) + 3), 2 / (4 + 3), 0]]
    np.testing.assert_allclose(model.similarity_.toarray(), expected, rtol=1e-6)


def test_itemknn_rejects_unknown_similarity():
    with pytest.raises(ValueError, match="'jaccard'"):
        build_model("itemknn", similarity="jaccard").fit(train_from(KNN_ROWS, 3))


@pytest.mark.parametrize("similarity", ["bm25", "tfidf"])
def test_itemknn_other_weightings_rank_co_occurring_item_first(similarity):
    # 5 items, so that every user's IDF, log(n_items) - log(1 + |user's items|), is positive
    # (on KNN_ROWS' 3 items a user with 2 of them has IDF 0 and BM25 weighs them out)
    rows = [[0, 1], [0, 1], [0, 1], [2, 3], [3, 4], [2, 4], [1, 3], [0]]
    model = build_model("itemknn", k=2, similarity=similarity).fit(train_from(rows, 5))
    s = model.score(np.array([7]))[0]                 # the user who has only item 0
    assert s[1] > 0 and s[1] > np.delete(s, [0, 1]).max()


# -- ALS / BPR --------------------------------------------------------------------------------

def test_als_user_without_history_scores_zero():
    train = train_from([[0, 1], [1, 2], [], [0, 2]], n_items=3)
    model = build_model("als", factors=4, iterations=3).fit(train)
    np.testing.assert_array_equal(model.score(np.array([2])), np.zeros((1, 3), np.float32))


def test_bpr_factors_include_bias_column():
    train = train_from([[0, 1], [1, 2], [0, 2]], n_items=3)
    model = build_model("bpr", factors=4, iterations=2).fit(train)
    assert model.user_factors_.shape[1] == model.item_factors_.shape[1] >= 5
    np.testing.assert_array_equal(model.user_factors_[:, -1], 1.0)


@pytest.mark.parametrize("name", ["als", "bpr"])
def test_factor_models_depend_on_seed(name):
    train = train_from([[0, 1], [1, 2], [0, 2], [2, 3]], n_items=4)
    a = build_model(name, factors=4, iterations=3, seed=0).fit(train).score(np.arange(4))
    b = build_model(name, factors=4, iterations=3, seed=1).fit(train).score(np.arange(4))
    assert not np.array_equal(a, b)


# -- content ----------------------------------------------------------------------------------

def test_content_scores_are_cosines_to_mean_profile():
    raw = np.array([[3, 4], [1, 0], [0, 2], [5, 5]], dtype=np.float32)
    mask = np.array([True, True, True, False])
    features = {"content": Features(raw, mask, "content")}   # row 3 ignored
    train = train_from([[0, 1, 3], [3], []], n_items=4, item_features=features)
    scores = build_model("content").fit(train).score(np.array([0, 1, 2]))
    # user 0: item 3 has no feature, profile = mean([.6, .8], [1, 0]) = [.8, .4]
    profile = np.array([0.8, 0.4])
    expected = [profile @ v / (np.linalg.norm(profile) * np.linalg.norm(v)) for v in raw[:3]]
    np.testing.assert_allclose(scores[0], expected + [0.0], rtol=1e-6)
    np.testing.assert_array_equal(scores[1:], 0.0)       # no usable history
    assert scores.dtype == np.float32


def test_content_missing_feature_names_the_available_ones():
    train = train_from([[0]], n_items=2, item_features={
        "tfidf": Features(np.eye(2, dtype=np.float32), np.ones(2, bool))})
    with pytest.raises(ValueError, match=r"'posters'.*\['tfidf'\]"):
        build_model("content", feature="posters").fit(train)


# -- random -----------------------------------------------------------------------------------

def test_random_is_deterministic_per_seed_and_user():
    train = train_from([[0], [1], [2]], n_items=50)
    a = build_model("random", seed=3).fit(train)
    b = build_model("random", seed=3).fit(train)
    np.testing.assert_array_equal(a.score(np.array([0, 2])), b.score(np.array([0, 2])))
    np.testing.assert_array_equal(a.score(np.array([2]))[0], a.score(np.array([0, 2]))[1])
    c = build_model("random", seed=4).fit(train)
    assert not np.array_equal(a.score(np.array([0])), c.score(np.array([0])))
    assert not np.array_equal(a.score(np.array([0]))[0], a.score(np.array([1]))[0])


# -- features ---------------------------------------------------------------------------------

@pytest.fixture
def catalog() -> Catalog:
    return Catalog(
        ids=["a", "b", "c", "d"], medium="movie",
        text={"title": ["Space wars", "", "Love in Paris", "Space love"]},
        categories=[("scifi",), (), ("drama", "romance"), ("scifi", "romance")],
        attributes={"year": [1990.0, np.nan, 2000.0, 2010.0], "score": [1.0, 2.0, 3.0, 4.0]})


def test_binned_features_one_hot_per_attribute(catalog):
    feats = binned_features(catalog, ["year"], n_bins=2)     # median of 1990, 2000, 2010 = 2000
    np.testing.assert_array_equal(feats.matrix, [[1, 0], [0, 0], [0, 1], [0, 1]])
    np.testing.assert_array_equal(feats.mask, [True, False, True, True])


def test_tfidf_masks_empty_text(catalog):
    feats = tfidf_features(catalog, with_categories=False)
    assert feats.matrix.dtype == np.float32 and feats.matrix.shape[0] == 4
    np.testing.assert_array_equal(feats.mask, [True, False, True, True])
    np.testing.assert_array_equal(feats.matrix[1], 0.0)
    np.testing.assert_allclose(np.linalg.norm(feats.matrix[feats.mask], axis=1), 1.0, rtol=1e-6)
    # "space" is shared by a and d only
    sims = feats.matrix @ feats.matrix.T
    assert sims[0, 3] > 0 and sims[0, 2] == 0


def test_tfidf_respects_max_features_and_all_empty_text():
    cat = Catalog(ids=["a", "b"], medium="x", text={"t": ["one two three", "four five"]})
    assert tfidf_features(cat, max_features=2).matrix.shape == (2, 2)
    empty = tfidf_features(Catalog.empty(["a", "b"]))
    assert empty.matrix.shape == (2, 0) and not empty.mask.any()


def test_category_multi_hot(catalog):
    feats = category_features(catalog)            # vocabulary: drama, romance, scifi
    np.testing.assert_array_equal(feats.matrix, [[0, 0, 1], [0, 0, 0], [1, 1, 0], [0, 1, 1]])
    np.testing.assert_array_equal(feats.mask, [True, False, True, True])


def test_numeric_features_standardised_with_missing(catalog):
    feats = numeric_features(catalog, ["year"])
    np.testing.assert_allclose(feats.matrix[:, 0], [-np.sqrt(1.5), 0, 0, np.sqrt(1.5)],
                               rtol=1e-6)
    np.testing.assert_array_equal(feats.mask, [True, False, True, True])
    with pytest.raises(ValueError, match="'budget'"):
        numeric_features(catalog, ["budget"])


def test_concat_normalises_and_weights_each_part():
    a = Features(np.array([[3, 4], [0, 0], [1, 0]], np.float32), np.array([1, 0, 1], bool))
    b = Features(np.array([[2], [5], [0]], np.float32), np.array([1, 1, 0], bool))
    out = concat_features([a, b], weights=[1.0, 0.5], name="ab")
    np.testing.assert_allclose(out.matrix, [[0.6, 0.8, 0.5], [0, 0, 0.5], [1, 0, 0]], rtol=1e-6)
    np.testing.assert_array_equal(out.mask, [True, True, True])
    assert out.name == "ab"
    with pytest.raises(ValueError, match="weights"):
        concat_features([a, b], weights=[1.0])


def test_default_content_features(catalog):
    feats = default_content_features(catalog)
    assert set(feats) == {"tfidf", "categories", "attributes", "content"}
    n_text = feats["tfidf"].matrix.shape[1]
    n_bins = feats["attributes"].matrix.shape[1]
    assert feats["content"].matrix.shape == (4, n_text + 3 + n_bins)
    np.testing.assert_array_equal(feats["content"].mask, [True, True, True, True])
    np.testing.assert_array_equal(feats["attributes"].mask, [True, True, True, True])
    assert default_content_features(Catalog.empty(["a", "b"])) == {}
