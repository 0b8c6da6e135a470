"""The fusion model places new items from their content (live cold start, text search): the
saved item tower, run on a new item's features, gives exactly what a catalog item without
interactions gets from ``item_vectors()``, also after save/load, with an ensemble and with a
tuned language model (saved with the model, reading the new items' texts)."""

from __future__ import annotations

import numpy as np
import pytest
from test_fusion import COLD_A, COLD_B, FAST, N_ITEMS, N_USERS, data  # noqa: F401

from crossrec.data.dataset import Features
from crossrec.models import Recommender
from crossrec.models.fusion import FusionRecommender, _feature_rows, _reduce

QUICK = {**FAST, "epochs": 4}
COLD = np.r_[COLD_A, COLD_B]                   # items without training interactions


def rows(train, items, names=None) -> dict[str, Features]:
    """The training features of ``items`` (all names, or ``names``)."""
    return {m: Features(f.matrix[items], f.mask[items], m) for m, f in train.item_features.items()
            if names is None or m in names}


@pytest.fixture(scope="module")
def one(data):  # noqa: F811
    return FusionRecommender(**QUICK).fit(data)


@pytest.fixture(scope="module")
def two_svd(data):  # noqa: F811
    # input_dim 4 < the text feature's 8 columns: text goes through the SVD projection
    return FusionRecommender(**{**QUICK, "ensemble": 2, "input_dim": 4}).fit(data)


@pytest.mark.parametrize("name", ["one", "two_svd"])
def test_new_item_vectors_of_never_seen_items_equal_their_item_vectors(name, data, request):  # noqa: F811
    model = request.getfixturevalue(name)
    assert model.places_new_items
    V = model.new_item_vectors(rows(data, COLD))
    assert V.dtype == np.float32 and V.shape == (len(COLD), model.item_vectors().shape[1])
    np.testing.assert_allclose(V, model.item_vectors()[COLD], rtol=1e-5, atol=1e-6)
    # a warm item placed from content alone lacks its id embedding: not its trained row
    warm = model.new_item_vectors(rows(data, np.array([0])))
    assert not np.allclose(warm, model.item_vectors()[[0]], atol=1e-3)


def test_the_svd_projection_maps_training_and_new_rows_alike(data):  # noqa: F811
    x = data.item_features["text"].matrix
    Vt = _reduce(x, 4, seed=0)
    assert Vt.shape == (4, x.shape[1]) and _reduce(x, 8, seed=0) is None
    np.testing.assert_allclose(_feature_rows(x[COLD], Vt), _feature_rows(x, Vt)[COLD],
                               rtol=1e-6, atol=1e-7)


def test_save_load_keeps_the_item_tower(two_svd, data, tmp_path):  # noqa: F811
    two_svd.save(tmp_path / "m")
    assert (tmp_path / "m" / "item_tower_1.npz").exists()
    loaded = Recommender.load(tmp_path / "m")
    assert isinstance(loaded, FusionRecommender) and loaded.places_new_items
    users = np.arange(N_USERS)
    np.testing.assert_array_equal(loaded.score(users), two_svd.score(users))
    feats = rows(data, COLD)
    np.testing.assert_array_equal(loaded.new_item_vectors(feats), two_svd.new_item_vectors(feats))
    np.testing.assert_allclose(loaded.new_item_vectors(feats), loaded.item_vectors()[COLD],
                               rtol=1e-5, atol=1e-6)


def test_text_only_items_and_missing_modalities_are_masked_as_in_training(one, data):  # noqa: F811
    text_only = one.new_item_vectors(rows(data, COLD, names={"text"}))
    assert np.isfinite(text_only).all()
    # a trained-on feature not given is the same as that feature absent for every row
    absent_genre = rows(data, COLD)
    g = absent_genre["genre"]
    absent_genre["genre"] = Features(np.full_like(g.matrix, 7.0), np.zeros(len(COLD), bool),
                                     "genre")          # whatever sits in an absent row: unused
    np.testing.assert_allclose(text_only, one.new_item_vectors(absent_genre), rtol=1e-6,
                               atol=1e-7)
    # item 41 has no text in training: with text absent its row is its genre's alone
    assert not data.item_features["text"].mask[41]
    np.testing.assert_allclose(one.new_item_vectors(rows(data, np.array([41]), {"genre"})),
                               one.item_vectors()[[41]], rtol=1e-5, atol=1e-6)
    # no feature present at all: the content vector is 0 (the bias is the heads' at 0)
    none = one.new_item_vectors({"text": Features(np.zeros((2, 8), np.float32),
                                                  np.zeros(2, bool), "text")})
    np.testing.assert_array_equal(none[:, :-1], 0.0)
    assert np.isfinite(none).all() and none[0, -1] == none[1, -1]
    # zero rows in, zero rows out
    assert one.new_item_vectors(rows(data, np.zeros(0, np.int64))).shape == (0, QUICK["dim"] + 1)


def test_bad_new_item_input_fails_clearly(one, data):  # noqa: F811
    with pytest.raises(ValueError, match="at least one of the features"):
        one.new_item_vectors({})
    with pytest.raises(ValueError, match="at least one of the features"):
        one.new_item_vectors({"audio": Features(np.ones((1, 3), np.float32), np.ones(1, bool))})
    with pytest.raises(ValueError, match="trained on dim 8"):
        one.new_item_vectors({"text": Features(np.ones((1, 5), np.float32), np.ones(1, bool))})
    with pytest.raises(ValueError, match="rows"):
        one.new_item_vectors({"text": Features(np.ones((2, 8), np.float32), np.ones(2, bool)),
                              "genre": Features(np.ones((3, 2), np.float32), np.ones(3, bool))})
    with pytest.raises(RuntimeError, match="not fitted"):
        FusionRecommender(**QUICK).new_item_vectors(rows(data, COLD))


TUNED = {**FAST, "epochs": 2, "lm_batch": 4, "lm_max_length": 16, "lm_lr": 1e-2}


@pytest.mark.parametrize("mode", ["lora", "full"])
def test_a_tuned_language_model_is_saved_and_places_new_items_from_their_text(mode, data,  # noqa: F811
                                                                           tmp_path):
    model = FusionRecommender(**{**TUNED, "lm": mode}).fit(data)
    assert model.reads_text and model.places_new_items
    texts = [data.item_text[i] for i in COLD]
    # the frozen text rows are not what the tuned model read: ignored, whatever they hold
    scrambled = rows(data, COLD)
    scrambled["text"] = Features(np.ones_like(scrambled["text"].matrix),
                                 scrambled["text"].mask, "text")
    V = model.new_item_vectors(scrambled, texts=texts)
    np.testing.assert_allclose(V, model.item_vectors()[COLD], rtol=1e-4, atol=1e-5)
    # the tuned language model, not the base one: without its text the rows differ
    assert not np.allclose(model.new_item_vectors(rows(data, COLD)), V, atol=1e-3)

    model.save(tmp_path / "m")
    saved = (tmp_path / "m" / "text_lm_0.npz").stat().st_size
    assert saved < 1_000_000 if mode == "lora" else saved > 50_000_000   # adapters vs all
    loaded = Recommender.load(tmp_path / "m")
    assert loaded.reads_text and loaded.places_new_items
    users = np.arange(N_USERS)
    np.testing.assert_array_equal(loaded.score(users), model.score(users))
    np.testing.assert_array_equal(loaded.new_item_vectors(rows(data, COLD), texts=texts), V)
    # a text query alone: text is its only present feature
    query = loaded.new_item_vectors({}, texts=[texts[0]])
    assert query.shape == (1, V.shape[1]) and np.isfinite(query).all()
    with pytest.raises(ValueError, match="texts for features"):
        loaded.new_item_vectors(rows(data, COLD), texts=texts[:1])


def test_a_tuned_language_model_must_come_back_as_it_was_tuned(data, tmp_path):  # noqa: F811
    import json

    model = FusionRecommender(**{**TUNED, "lm": "lora", "epochs": 1}).fit(data)
    model.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    meta["state"]["text_lm_config_"]["base"] = "0123456789ab"     # another base revision
    (tmp_path / "m" / "model.json").write_text(json.dumps(meta))
    other = Recommender.load(tmp_path / "m")
    with pytest.raises(ValueError, match="tuned from MiniLM revision 0123456789ab"):
        other.new_item_vectors({}, texts=["a text"])
    del meta["state"]["text_lm_config_"]                          # as saved before LMs were kept
    (tmp_path / "m" / "model.json").write_text(json.dumps(meta))
    old = Recommender.load(tmp_path / "m")
    assert not old.places_new_items
    with pytest.raises(ValueError, match="saved without its tuned language model"):
        old.new_item_vectors({}, texts=["a text"])


def test_a_model_saved_without_an_item_tower_says_it_cannot_place(one, tmp_path):
    import json

    one.save(tmp_path / "old")
    meta = json.loads((tmp_path / "old" / "model.json").read_text())
    del meta["state"]["item_tower_config_"]                # as written before item towers
    (tmp_path / "old" / "model.json").write_text(json.dumps(meta))
    old = Recommender.load(tmp_path / "old")
    assert not old.places_new_items
    with pytest.raises(ValueError, match="no item tower"):
        old.new_item_vectors({})
    assert N_ITEMS == old.item_vectors().shape[0]
