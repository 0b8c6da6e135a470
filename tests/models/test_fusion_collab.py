"""The fusion model's collaborative channel (``collab``): a cb2cf-style ALS + content map (or,
on data of several media, the usersvd neighbourhood) whose score is added to the towers' with a
weight chosen on valid; the vectors stay one dot product, fold-in, new items and save/load keep
it."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from test_fusion import COLD_A, COLD_B, FAST, N_ITEMS, N_USERS, data  # noqa: F401

from crossrec.data.dataset import Features
from crossrec.data.interactions import Interactions
from crossrec.models import Recommender, TrainData
from crossrec.models.base import histories_from
from crossrec.models.cb2cf import CB2CFRecommender
from crossrec.models.fusion import COLLAB_WEIGHTS, FusionRecommender

QUICK = {**FAST, "epochs": 4, "collab": True, "collab_factors": 4,
         "collab_regularization": 1.0, "collab_ridge": 0.1}
COLD = np.r_[COLD_A, COLD_B]


def rows(train, items) -> dict[str, Features]:
    return {m: Features(f.matrix[items], f.mask[items], m) for m, f in train.item_features.items()}


@pytest.fixture(scope="module")
def fixed(data):  # noqa: F811
    return FusionRecommender(**QUICK, collab_weight=1.0).fit(data)


def test_the_score_is_the_towers_plus_the_weighted_channel(fixed, data):  # noqa: F811
    towers = FusionRecommender(**{**QUICK, "collab": False}).fit(data)
    cb = CB2CFRecommender(factors=4, regularization=1.0, ridge=0.1, pop_weight=0.03,
                          seed=0).fit(data)
    users = np.arange(N_USERS)
    w = fixed.collab_weight_ * fixed.collab_scale_
    np.testing.assert_allclose(fixed.score(users), towers.score(users) + w * cb.score(users),
                               rtol=1e-4, atol=1e-4)
    assert fixed.collab_weight_ == 1.0 and fixed.collab_scale_ > 0
    assert fixed.item_vectors().shape[1] == towers.item_vectors().shape[1] + 4 + 1


def cold_valid(seed: int) -> TrainData:
    """Valid: two more cold items of each user's block (only cold items are candidates)."""
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(N_USERS), 2)
    items = np.array([rng.choice(COLD_A if u < 36 else COLD_B) for u in users])
    return TrainData(Interactions(users, items, np.zeros(len(users))), N_USERS, N_ITEMS,
                     candidates=np.isin(np.arange(N_ITEMS), COLD))


def test_weight_is_chosen_on_valid_and_carried_to_the_refit(data):  # noqa: F811
    model = FusionRecommender(**QUICK).fit(data, cold_valid(1))
    assert set(model.collab_valid_) == {str(w) for w in COLLAB_WEIGHTS}
    best = max(model.collab_valid_, key=model.collab_valid_.get)
    assert model.collab_valid_[str(model.collab_weight_)] == model.collab_valid_[best]
    assert model.refit_params()["collab_weight"] == model.collab_weight_


def test_channel_settings_are_chosen_on_valid_like_cb2cf_and_carried_to_the_refit(data):  # noqa: F811
    valid = cold_valid(2)
    model = FusionRecommender(**QUICK, collab_weight=1.0).fit(data, valid)
    grid = CB2CFRecommender.param_grid
    assert len(model.collab_tuning_) == np.prod([len(v) for v in grid.values()])
    best = max(model.collab_tuning_, key=model.collab_tuning_.get)
    assert json.loads(best) == model.collab_settings_ and model.collab_settings_["kind"] == "als"
    settings = {k: v for k, v in model.collab_settings_.items() if k != "kind"}
    # the channel is cb2cf with the chosen settings
    cb = CB2CFRecommender(factors=4, seed=0, **settings).fit(data)
    W = model.tower_width_
    u = np.arange(N_USERS)
    channel = model.user_vectors_[u, W:] @ model.item_vectors_[:, W:].T
    np.testing.assert_allclose(channel, model.collab_weight_ * model.collab_scale_ * cb.score(u),
                               rtol=1e-4, atol=1e-4)
    refit = model.refit_params()
    assert refit["collab_tune"] is False
    assert {k: refit[f"collab_{k}"] for k in ("kind", "regularization", "ridge", "pop_weight")} \
        == model.collab_settings_
    again = FusionRecommender(**{**QUICK, **refit}).fit(data)
    assert again.collab_tuning_ == {} and again.collab_settings_ == model.collab_settings_
    untuned = FusionRecommender(**QUICK, collab_weight=1.0, collab_tune=False).fit(data, valid)
    assert untuned.collab_settings_ == {"kind": "als", "regularization": 1.0, "ridge": 0.1,
                                        "pop_weight": 0.03}


def test_collab_grid_widens_the_channel_tuning_and_the_refit_keeps_its_choice(data):  # noqa: F811
    wide = {"factors": [3, 5], "alpha": [1.0, 4.0]}
    model = FusionRecommender(**QUICK, collab_weight=1.0, collab_grid=wide).fit(
        data, cold_valid(2))
    n = np.prod([len(v) for v in {**CB2CFRecommender.param_grid, **wide}.values()])
    assert len(model.collab_tuning_) == n
    tried = [json.loads(k) for k in model.collab_tuning_]
    assert {(t["factors"], t["alpha"]) for t in tried} == {(3, 1.0), (3, 4.0), (5, 1.0),
                                                           (5, 4.0)}
    chosen = model.collab_settings_
    assert json.loads(max(model.collab_tuning_, key=model.collab_tuning_.get)) == chosen
    assert model.collab_factors_.shape[1] == chosen["factors"]        # the channel's width
    refit = model.refit_params()
    assert (refit["collab_factors"], refit["collab_alpha"]) == (chosen["factors"],
                                                                chosen["alpha"])
    again = FusionRecommender(**{**QUICK, **refit}).fit(data)
    assert again.collab_settings_.items() <= chosen.items()
    assert again.collab_factors_.shape[1] == chosen["factors"]
    assert (again._collab_model().factors, again._collab_model().alpha) == (chosen["factors"],
                                                                            chosen["alpha"])
    with pytest.raises(ValueError, match="collab_grid key 'lr'; expected some of"):
        FusionRecommender(**QUICK, collab_grid={"lr": [0.1]}).fit(data)
    with pytest.raises(ValueError, match=r"collab_grid\['alpha'\] must be a non-empty list"):
        FusionRecommender(**QUICK, collab_grid={"alpha": 4.0}).fit(data)


def test_fold_in_of_the_training_histories_gives_the_training_user_vectors(fixed, data):  # noqa: F811
    hist = histories_from(data.interactions, N_USERS)
    U, W = fixed.user_vectors(hist), fixed.tower_width_
    np.testing.assert_array_equal(U[:, :W], fixed.user_vectors_[:, :W])      # towers: exact
    # the channel: the exact least-squares fold-in of what ALS reached by conjugate gradient
    np.testing.assert_allclose(U[:, W:], fixed.user_vectors_[:, W:], atol=0.1)
    assert np.all(U[:, -1] == 1.0)                                  # the popularity column
    empty = fixed.user_vectors([np.zeros(0, np.int64)])
    assert np.all(empty[0, W:] == 0)                                # no history: no channel


def test_new_items_get_the_channel_from_their_content(fixed, data, tmp_path):  # noqa: F811
    V = fixed.new_item_vectors(rows(data, COLD))
    np.testing.assert_allclose(V, fixed.item_vectors()[COLD], rtol=1e-4, atol=1e-5)
    back = Recommender.load(fixed.save(tmp_path / "m"))
    np.testing.assert_array_equal(back.score(np.arange(5)), fixed.score(np.arange(5)))
    np.testing.assert_allclose(back.new_item_vectors(rows(data, COLD)), V, rtol=1e-6)


def test_cb2cf_places_new_items_with_its_ridge_map_and_says_when_it_cannot(data):  # noqa: F811
    cb = CB2CFRecommender(factors=4, regularization=1.0, ridge=0.1,
                          features=("genre", "text")).fit(data)
    assert cb.places_new_items
    np.testing.assert_allclose(cb.new_item_vectors(rows(data, COLD)), cb.item_vectors()[COLD],
                               rtol=1e-4, atol=1e-5)
    only_genre = {"genre": rows(data, COLD)["genre"]}            # text absent: still placed
    assert np.isfinite(cb.new_item_vectors(only_genre)).all()
    with pytest.raises(ValueError, match="at least one of the features"):
        cb.new_item_vectors({"audio": rows(data, COLD)["genre"]})
    with pytest.raises(ValueError, match=r"feature 'genre' has shape \(6, 3\)"):
        cb.new_item_vectors({"genre": Features(np.zeros((6, 3)), np.ones(6, bool))})
    mlp = CB2CFRecommender(factors=4, mapper="mlp", epochs=5, features=("genre",)).fit(data)
    assert not mlp.places_new_items
    with pytest.raises(ValueError, match="keeps no content map"):
        mlp.new_item_vectors(rows(data, COLD))


def test_a_negative_channel_weight_is_refused(data):  # noqa: F811
    with pytest.raises(ValueError, match="collab_weight must be >= 0"):
        FusionRecommender(**QUICK, collab_weight=-1.0).fit(data)


def test_without_content_the_channel_is_als_alone(data):  # noqa: F811
    from crossrec.models.als import ALSRecommender

    bare = TrainData(data.interactions, N_USERS, N_ITEMS)
    model = FusionRecommender(**QUICK, collab_weight=1.0).fit(bare)
    als = ALSRecommender(factors=4, regularization=1.0, seed=0).fit(bare)
    W = model.tower_width_
    np.testing.assert_allclose(model.item_vectors()[:, W:-1] / (model.collab_scale_),
                               als.item_factors_, rtol=1e-4, atol=1e-5)
    assert np.all(model.item_vectors()[:, -1] == 0)                # no popularity from content
    assert model.collab_map_ is None


def test_on_several_media_the_tuning_also_tries_the_usersvd_channel(tmp_path):
    from test_peers import _cross_media

    from crossrec.models.usersvd import UserSVDRecommender

    train = _cross_media()                        # books 0-9, music 10-19; users 40-43 books only
    rng = np.random.default_rng(3)
    users = np.repeat(np.arange(40, 44), 2)       # valid: their music, of their book side
    items = np.array([rng.choice(np.arange(10, 15) if u < 42 else np.arange(15, 20))
                      for u in users])
    valid = TrainData(Interactions(users, items, np.zeros(len(users))), 44, 20,
                      item_medium=train.item_medium)
    model = FusionRecommender(**{**QUICK, "collab_svd_factors": 3}).fit(train, valid)
    tried = [json.loads(k) for k in model.collab_tuning_]
    assert sorted({(t["kind"], t.get("source_medium")) for t in tried if t["kind"] == "usersvd"},
                  key=str) == [("usersvd", "book"), ("usersvd", "music"), ("usersvd", None)]
    assert {t["ridge_weight"] for t in tried if t["kind"] == "usersvd"} == {0.0, 0.1, 1.0}
    assert len([t for t in tried if t["kind"] == "als"]) == 2     # no content: regularisation
    best = max(model.collab_tuning_, key=model.collab_tuning_.get)
    assert json.loads(best) == model.collab_settings_
    # force the cross-media channel (with its ridge term): it is usersvd's score, folded in
    # like the training rows, and saved
    forced = FusionRecommender(**{**QUICK, "collab_svd_factors": 3, "collab_ridge": 2.0},
                               collab_kind="usersvd",
                               collab_source_medium="book", collab_pop_weight=0.1,
                               collab_ridge_weight=0.5,
                               collab_tune=False, collab_weight=1.0).fit(train)
    ref = UserSVDRecommender(factors=3, source_medium="book", pop_weight=0.1,
                             ridge_weight=0.5, ridge=2.0).fit(train)
    W, u = forced.tower_width_, np.arange(44)
    channel = forced.user_vectors_[u, W:] @ forced.item_vectors_[:, W:].T
    np.testing.assert_allclose(channel, forced.collab_scale_ * ref.score(u), rtol=1e-4,
                               atol=1e-5)
    hist = histories_from(train.interactions, 44)
    np.testing.assert_allclose(forced.user_vectors(hist)[:, W:], forced.user_vectors_[:, W:],
                               rtol=1e-4, atol=1e-5)
    back = Recommender.load(forced.save(tmp_path / "m"))
    np.testing.assert_array_equal(back.user_vectors(hist[40:]), forced.user_vectors(hist[40:]))
    assert forced.refit_params()["collab_kind"] == "usersvd"
    assert forced.refit_params()["collab_source_medium"] == "book"
    assert forced.refit_params()["collab_ridge_weight"] == 0.5
    with pytest.raises(ValueError, match="collab_kind"):
        FusionRecommender(**QUICK, collab_kind="knn").fit(train)
    with pytest.raises(ValueError, match="collab_svd_factors must be >= 1, got 0"):
        FusionRecommender(**QUICK, collab_svd_factors=0).fit(train)


def test_the_channel_is_chosen_on_valid_users_the_towers_did_not_stop_on(data):  # noqa: F811
    from crossrec.training import ndcg_callback

    valid = cold_valid(4)
    model = FusionRecommender(**QUICK, collab_tune=False).fit(data, valid)
    assert model.collab_valid_users_ == N_USERS // 2              # half of the 60 valid users
    stop_on, blend_on = model._valid_parts(valid)
    a, b = set(stop_on.interactions.user.tolist()), set(blend_on.interactions.user.tolist())
    assert not a & b and len(a | b) == N_USERS
    assert len(stop_on.interactions) + len(blend_on.interactions) == len(valid.interactions)
    # the weight's valid scores are the blend users' NDCG@20 (the towers, then + w * channel)
    W = model.tower_width_
    towers = model.user_vectors_[:, :W] @ model.item_vectors_[:, :W].T
    ndcg = ndcg_callback(lambda users: towers[users], data.matrix, blend_on.matrix,
                         candidates=valid.candidates)()
    assert model.collab_valid_["0.0"] == pytest.approx(ndcg, abs=1e-9)
    # the channel's own settings do not involve the towers: they are scored on every valid user
    tuned = FusionRecommender(**QUICK).fit(data, valid)
    assert len(tuned.collab_tuning_) > 1
    for key, score in tuned.collab_tuning_.items():
        fitted = tuned._channel(data, json.loads(key))
        alone = ndcg_callback(lambda users, f=fitted: f[1][users] @ f[0].T, data.matrix,
                              valid.matrix, candidates=valid.candidates)()
        assert score == pytest.approx(alone, abs=1e-9)
    everyone = FusionRecommender(**QUICK, collab_tune=False, collab_holdout=0.0).fit(data, valid)
    assert not hasattr(everyone, "collab_valid_users_")
    with pytest.raises(ValueError, match=r"collab_holdout must be in \[0, 1\)"):
        FusionRecommender(**QUICK, collab_holdout=1.0).fit(data, valid)
    one_user = replace(valid, interactions=valid.interactions.take(
        np.flatnonzero(valid.interactions.user == 0)))
    with pytest.raises(ValueError, match="collab_holdout=0.5 leaves no valid user"):
        FusionRecommender(**QUICK).fit(data, one_user)
