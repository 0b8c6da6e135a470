"""The strong peers on known cases: cb2cf places cold items from content, userknn and usersvd
carry a user's taste from one medium to another, EASE's recency weighting."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from crossrec.data.dataset import Features
from crossrec.data.interactions import Interactions
from crossrec.models import TrainData, build_model


def _blocks(rng, n_users=60, n_items=40, per_user=8, cold=()):
    """Users 0-29 like items 0-19 (block A), users 30-59 items 20-39 (block B); block A's
    first items are the most popular. Items in ``cold`` have no interactions."""
    cold = set(cold)
    users, items = [], []
    for u in range(n_users):
        block = [i for i in (range(20) if u < 30 else range(20, 40)) if i not in cold]
        p = np.linspace(2.0, 1.0, len(block))
        chosen = rng.choice(block, size=per_user, replace=False, p=p / p.sum())
        users += [u] * per_user
        items += chosen.tolist()
    block_of = (np.arange(n_items) >= 20).astype(int)
    genre = np.eye(2, dtype=np.float32)[block_of]
    text = genre @ rng.normal(size=(2, 8)).astype(np.float32) + 0.05 * rng.normal(
        size=(n_items, 8)).astype(np.float32)
    feats = {"categories": Features(genre, np.ones(n_items, bool), "categories"),
             "text": Features(text, np.ones(n_items, bool), "text")}
    return TrainData(Interactions(np.array(users), np.array(items)), n_users, n_items,
                     item_features=feats)


def test_cb2cf_ranks_cold_items_of_the_users_block_first():
    cold = [18, 19, 38, 39]
    train = _blocks(np.random.default_rng(0), cold=cold)
    model = build_model("cb2cf", factors=4, regularization=1.0, iterations=10, ridge=0.1,
                        pop_weight=0.0).fit(train)
    assert (train.item_popularity[cold] == 0).all()
    s = model.score(np.arange(60))[:, cold]                       # (60, 4)
    assert (s[:30, :2].min(axis=1) > s[:30, 2:].max(axis=1)).all()
    assert (s[30:, 2:].min(axis=1) > s[30:, :2].max(axis=1)).all()


def test_cb2cf_predicts_popularity_from_content():
    """Block A is seen by more users; a cold item with block-A content gets the higher
    predicted popularity, and pop_weight adds it to every user's scores."""
    rng = np.random.default_rng(1)
    train = _blocks(rng, cold=[19, 39])
    keep = ~((train.interactions.user >= 45) & (train.interactions.item >= 20))  # B thinner
    train = TrainData(train.interactions.take(keep), 60, 40, item_features=train.item_features)
    m0 = build_model("cb2cf", factors=4, iterations=10, ridge=0.1, pop_weight=0.0).fit(train)
    m1 = build_model("cb2cf", factors=4, iterations=10, ridge=0.1, pop_weight=1.0).fit(train)
    assert m0.pop_pred_[19] > m0.pop_pred_[39]
    diff = m1.score(np.arange(60)) - m0.score(np.arange(60))
    np.testing.assert_allclose(diff[:, 19] - diff[:, 39], m0.pop_pred_[19] - m0.pop_pred_[39],
                               rtol=1e-4)


def test_cb2cf_explains_missing_features():
    train = _blocks(np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"no item feature\(s\) \['image'\]"):
        build_model("cb2cf", features=("image",)).fit(train)
    with pytest.raises(ValueError, match="mapper must be"):
        build_model("cb2cf", mapper="forest").fit(train)


def test_cb2cf_mlp_mapper_also_places_cold_items():
    cold = [18, 19, 38, 39]
    train = _blocks(np.random.default_rng(0), cold=cold)
    model = build_model("cb2cf", factors=4, regularization=1.0, iterations=10, mapper="mlp",
                        hidden=16, epochs=300, ridge=0.0, pop_weight=0.0).fit(train)
    s = model.score(np.arange(60))[:, cold]
    assert (s[:30, :2].mean(axis=1) > s[:30, 2:].mean(axis=1)).mean() > 0.9
    assert (s[30:, 2:].mean(axis=1) > s[30:, :2].mean(axis=1)).mean() > 0.9


def _cross_media():
    """Books 0-9 and music 10-19. Readers of books 0-4 (users 0-19) listen to music 10-14;
    readers of books 5-9 (users 20-39) to music 15-19. Users 40-43 have only books."""
    rng = np.random.default_rng(0)
    users, items = [], []
    for u in range(44):
        side = 0 if (u < 20 or u in (40, 41)) else 1
        books = rng.choice(np.arange(5) + 5 * side, size=3, replace=False)
        users += [u] * 3
        items += books.tolist()
        if u < 40:
            music = rng.choice(np.arange(10, 15) + 5 * side, size=3, replace=False)
            users += [u] * 3
            items += music.tolist()
    medium = np.array(["book"] * 10 + ["music"] * 10, dtype=object)
    return TrainData(Interactions(np.array(users), np.array(items)), 44, 20, item_medium=medium)


@pytest.mark.parametrize("ridge_weight", [0.0, 0.5])
def test_userknn_carries_book_taste_to_music(ridge_weight):
    train = _cross_media()
    model = build_model("userknn", k=10, source_medium="book", pop_weight=0.0,
                        ridge_weight=ridge_weight, ridge=1.0).fit(train)
    s = model.score(np.array([40, 41, 42, 43]))[:, 10:]            # music only
    assert (s[:2, :5].min(axis=1) > s[:2, 5:].max(axis=1)).all()   # book side 0 -> music 10-14
    assert (s[2:, 5:].min(axis=1) > s[2:, :5].max(axis=1)).all()


def test_userknn_ridge_map_equals_the_primal_solution():
    train = _cross_media()
    model = build_model("userknn", source_medium="book", ridge_weight=1.0, ridge=3.0).fit(train)
    X = train.matrix.toarray().astype(np.float64)
    Xs, Xt = X[:, :10], X[:, 10:]
    W = np.linalg.solve(Xs.T @ Xs + 3.0 * np.eye(10), Xs.T @ Xt)    # (books, music)
    users = np.array([40, 43])
    primal = Xs[users] @ W
    dual = (sp.csr_matrix(Xs[users]) @ sp.csr_matrix(Xs).T).toarray() @ model.ridge_map_
    np.testing.assert_allclose(dual[:, 10:], primal, rtol=1e-4, atol=1e-5)
    assert not dual[:, :10].any()                                 # no book predicted by it


def test_userknn_explains_an_unknown_source_medium():
    with pytest.raises(ValueError, match="no items of medium 'video'"):
        build_model("userknn", source_medium="video").fit(_cross_media())


def test_userknn_grid_offers_each_medium_as_source():
    from crossrec.models import model_class
    grid = model_class("userknn").grid_for(_cross_media())
    assert grid["source_medium"] == [None, "book", "music"]


def test_ease_recency_weights_the_latest_items_most():
    """Steck's recency option: weight floor + exp(-steps_back / tau), latest step 0."""
    inter = Interactions(np.array([0, 0, 0]), np.array([2, 0, 1]),
                         timestamp=np.array([30.0, 10.0, 20.0]))
    train = TrainData(inter, 1, 3)
    model = build_model("ease", lam=1.0, recency_tau=1.0, recency_floor=0.5).fit(train)
    h = model.history_.toarray()[0]
    np.testing.assert_allclose(h, [0.5 + np.exp(-2), 0.5 + np.exp(-1), 1.5], rtol=1e-6)


def test_usersvd_carries_book_taste_to_music():
    train = _cross_media()
    model = build_model("usersvd", factors=4, source_medium="book", pop_weight=0.0).fit(train)
    s = model.score(np.array([40, 41, 42, 43]))[:, 10:]            # music only
    assert (s[:2, :5].min(axis=1) > s[:2, 5:].max(axis=1)).all()   # book side 0 -> music 10-14
    assert (s[2:, 5:].min(axis=1) > s[2:, :5].max(axis=1)).all()


def test_usersvd_at_full_rank_is_userknn_with_every_user_a_neighbour():
    train = _cross_media()
    model = build_model("usersvd", factors=50, source_medium="book", pop_weight=0.2).fit(train)
    X = train.matrix.toarray().astype(np.float64)
    df = X.sum(0)
    idf = np.where(np.arange(20) < 10, np.log(44 / np.maximum(df, 1)), 0.0)
    Q = X * idf
    Q /= np.linalg.norm(Q, axis=1, keepdims=True)
    votes = (Q @ Q.T) @ X                                         # every user votes, by cosine
    expected = votes / votes.max(1, keepdims=True) + 0.2 * df / df.max()
    np.testing.assert_allclose(model.score(np.arange(44)), expected, rtol=1e-4, atol=1e-5)
    # a history folded in gets the row its user has; no source item: popularity alone
    hist = [np.flatnonzero(X[u]) for u in (3, 40)] + [np.array([12, 13]), np.array([], int)]
    rows = model.user_vectors(hist)
    np.testing.assert_allclose(rows[:2], model.user_rows_[[3, 40]], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rows[2:] @ model.item_vectors().T,
                               np.tile(0.2 * df / df.max(), (2, 1)), rtol=1e-5, atol=1e-6)


def test_usersvd_ridge_term_at_full_rank_is_the_dual_ridge_map():
    """W = Qᵀ(QQᵀ + λI)⁻¹Xₜ from the book rows to the music items, each term normalised."""
    train = _cross_media()
    model = build_model("usersvd", factors=50, source_medium="book", pop_weight=0.0,
                        ridge_weight=0.5, ridge=2.0).fit(train)
    X = train.matrix.toarray().astype(np.float64)
    idf = np.where(np.arange(20) < 10, np.log(44 / np.maximum(X.sum(0), 1)), 0.0)
    Q = X * idf
    Q /= np.linalg.norm(Q, axis=1, keepdims=True)
    Xt = X * (np.arange(20) >= 10)                                # music columns only
    ridge = Q @ Q.T @ np.linalg.solve(Q @ Q.T + 2.0 * np.eye(44), Xt)
    votes = (Q @ Q.T) @ X
    expected = (votes / votes.max(1, keepdims=True)
                + 0.5 * ridge / ridge.max(1, keepdims=True))
    np.testing.assert_allclose(model.score(np.arange(44)), expected, rtol=1e-4, atol=1e-5)
    hist = [np.flatnonzero(X[u]) for u in (3, 40)]                 # fold-in: the same rows
    np.testing.assert_allclose(model.user_vectors(hist), model.user_rows_[[3, 40]],
                               rtol=1e-5, atol=1e-6)


def test_usersvd_explains_bad_settings():
    with pytest.raises(ValueError, match="no items of medium 'video'"):
        build_model("usersvd", source_medium="video").fit(_cross_media())
    with pytest.raises(ValueError, match="factors must be >= 1"):
        build_model("usersvd", factors=0).fit(_cross_media())
    with pytest.raises(ValueError, match="ridge > 0"):
        build_model("usersvd", ridge_weight=0.1, ridge=0.0).fit(_cross_media())
