"""Artifacts: a trained model, its catalog, ids and history in one folder, loaded exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest

from crossrec.artifact import catalog_from_table, catalog_to_table, load_artifact, save_artifact
from crossrec.data.datasets import load_dataset
from crossrec.evaluation.protocols import make_split
from crossrec.evaluation.runner import train_data
from crossrec.features import default_content_features
from crossrec.models import build_model


@pytest.fixture(scope="module")
def demo(demo_dir):
    return load_dataset("demo", demo_dir)


def test_catalog_round_trip_loses_nothing(demo):
    back = catalog_from_table(catalog_to_table(demo.catalog))
    cat = demo.catalog
    assert back.ids.tolist() == cat.ids.tolist()
    assert back.medium.tolist() == cat.medium.tolist()
    assert back.categories == cat.categories and back.tags == cat.tags
    assert set(back.text) == set(cat.text) and set(back.media) == set(cat.media)
    for k in cat.text:
        assert back.text[k].tolist() == cat.text[k].tolist()
    for k in cat.media:
        assert back.media[k].tolist() == cat.media[k].tolist()
    for k in cat.attributes:
        np.testing.assert_array_equal(back.attributes[k], cat.attributes[k])


@pytest.mark.parametrize("name", ["als", "content", "pop"])
def test_saved_artifact_loads_with_identical_recommendations(name, demo, tmp_path):
    split = make_split(demo, "p1")
    feats = default_content_features(demo.catalog)
    data = train_data(split, "test", feats)
    model = build_model(name, **({"factors": 16} if name == "als" else {})).fit(data)
    path = save_artifact(tmp_path / "art", model, demo, data.interactions,
                         metrics={"ndcg@20": 0.5}, config={"protocol": "p1"})
    art = load_artifact(path)
    assert art.meta["model"] == name and art.meta["metrics"] == {"ndcg@20": 0.5}
    assert art.users.ids.tolist() == demo.users.ids.tolist()
    assert art.items.ids.tolist() == demo.items.ids.tolist()
    assert len(art.history) == len(data.interactions)
    users = np.arange(demo.n_users)
    a, _ = model.recommend(users, k=10, exclude=data.matrix)
    b, _ = art.model.recommend(users, k=10, exclude=data.matrix)
    np.testing.assert_array_equal(a, b)
    if name in ("als", "content"):
        np.testing.assert_array_equal(art.item_vectors, model.item_vectors())
        assert art.meta["vector_dim"] == art.item_vectors.shape[1]
        assert len(art.histories()) == demo.n_users
    else:
        assert art.item_vectors is None


def test_content_vectors_round_trip_where_the_model_has_another_space(demo, tmp_path):
    split = make_split(demo, "p1")
    feats = default_content_features(demo.catalog)
    data = train_data(split, "test", feats)
    rng = np.random.default_rng(0)
    content = rng.normal(size=(demo.n_items, 24)).astype(np.float32)
    als = build_model("als", factors=16).fit(data)
    path = save_artifact(tmp_path / "als", als, demo, data.interactions, content_vectors=content)
    back = load_artifact(path).content_vectors
    assert back.dtype == np.float16 and back.shape == content.shape
    np.testing.assert_array_equal(back, content.astype(np.float16))
    # a model whose vectors have that width is taken to be that space: nothing more is kept
    same = np.asarray(als.item_vectors())
    path = save_artifact(tmp_path / "same", als, demo, data.interactions, content_vectors=same)
    assert not (path / "content_vectors.npy").exists()
    assert load_artifact(path).content_vectors is None
    with pytest.raises(ValueError, match=r"content_vectors has shape \(3, 24\); expected"):
        save_artifact(tmp_path / "bad", als, demo, data.interactions, content_vectors=content[:3])


def test_overwrite_is_atomic_and_refusable(demo, tmp_path):
    split = make_split(demo, "p1")
    data = train_data(split, "test")
    model = build_model("pop").fit(data)
    path = save_artifact(tmp_path / "art", model, demo, data.interactions)
    first = json.loads((path / "artifact.json").read_text())["created"]
    with pytest.raises(FileExistsError, match="exists"):
        save_artifact(path, model, demo, data.interactions, overwrite=False)
    save_artifact(path, model, demo, data.interactions)
    assert json.loads((path / "artifact.json").read_text())["created"] >= first
    assert [p.name for p in tmp_path.iterdir()] == ["art"]          # no temporary left


def test_not_an_artifact_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a crossrec artifact"):
        load_artifact(tmp_path)
