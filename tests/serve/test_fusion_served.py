"""The service serves the fusion model `crossrec` with live cold start and text search: a new
item is placed by the model's item tower from its encoded content, as the demo serves it."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from crossrec.serve.app import create_app

KEY = "test-key-123"
QUICK = {"dim": 16, "max_len": 10, "layers": 1, "lr": 0.01, "epochs": 3, "threads": 1,
         "progress": False}


@pytest.fixture(scope="module")
def crossrec_artifact(artifact_builder, demo_dir, tmp_path_factory):
    """A small crossrec fitted on the hashed-text + mean-colour recipe of the serve tests."""
    return artifact_builder(tmp_path_factory.mktemp("art") / "crossrec", demo_dir,
                            model="crossrec", params=QUICK)


def test_crossrec_places_new_items_and_text_queries_in_the_service(crossrec_artifact, demo_dir,
                                                                    tmp_path):
    from crossrec.artifact import load_artifact

    app = create_app(crossrec_artifact, store_url=f"sqlite:///{tmp_path / 'ev.db'}",
                     media_root=demo_dir, api_keys=[KEY])
    with TestClient(app) as client:
        assert client.get("/readyz").json()["model"] == "crossrec"
        search = client.get("/v1/search", params={"q": "saxophone jazz", "k": 5})
        assert search.status_code == 200, search.text
        assert len(search.json()["items"]) == 5
        form = {"item_id": "new-jazz", "medium": "article", "title": "Bebop saxophone nights",
                "description": "Trumpet and saxophone improvisation in a jazz club",
                "categories": "jazz"}
        r = client.post("/v1/items", data=form, headers={"X-API-Key": KEY})
        assert r.status_code == 201, r.text
        assert r.json()["live"]
        similar = client.get("/v1/items/new-jazz/similar", params={"k": 5})
        assert similar.status_code == 200 and len(similar.json()["items"]) == 5
        # the live item is searchable (among all articles: k covers them)
        found = client.get("/v1/search", params={"q": "bebop saxophone",
                                                  "media": "article", "k": 100}).json()["items"]
        assert "new-jazz" in [i["item_id"] for i in found]
        scores = [i["score"] for i in found]
        assert np.isfinite(scores).all()
    # the artifact's model is what placed it: same item tower after loading from disk
    model = load_artifact(crossrec_artifact).model
    assert model.places_new_items and model.tower_width_ == QUICK["dim"] + 1
    # and the collaborative channel (the default) after the towers: ALS factors + popularity
    assert model.item_vectors().shape[1] == model.tower_width_ + model.collab_factors + 1


def test_a_lora_tuned_crossrec_places_new_items_and_queries_through_its_own_language_model(
        artifact_builder, demo_dir, tmp_path):
    from crossrec.data.catalog import Catalog
    from crossrec.data.dataset import Features
    from crossrec.encoders.text import compose_texts

    tuned = {**QUICK, "epochs": 1, "lm": "lora", "lm_batch": 4, "lm_max_length": 16}
    art = artifact_builder(tmp_path / "lora", demo_dir, model="crossrec", params=tuned)
    assert (art / "model" / "text_lm_0.npz").stat().st_size < 1_000_000     # the adapters
    app = create_app(art, store_url=f"sqlite:///{tmp_path / 'ev.db'}", media_root=demo_dir,
                     api_keys=[KEY])
    form = {"item_id": "new-jazz", "medium": "article", "title": "Bebop saxophone nights",
            "description": "Trumpet and saxophone improvisation in a jazz club",
            "categories": "jazz"}
    with TestClient(app) as client:
        assert client.post("/v1/items", data=form, headers={"X-API-Key": KEY}).status_code == 201
        search = client.get("/v1/search", params={"q": "saxophone jazz", "k": 5})
        assert search.status_code == 200 and len(search.json()["items"]) == 5
        loaded = app.state.service.loaded
        live = loaded.vector(loaded.item_pos["new-jazz"])
        model, recipe = loaded.model, loaded.recipe
        # the live vector is the model's for the item's composed text, read by the tuned LM
        row = Catalog(ids=["new-jazz"], medium=["article"],
                      text={f: [form.get(f, "")] for f in loaded.text_fields},
                      categories=[("jazz",)])
        text = compose_texts(row)[0]
        assert "Bebop saxophone nights" in text and "jazz" in text
        feats = {m: Features(v[None], np.ones(1, bool))
                 for m, v in loaded.live[0].features.items()}
        np.testing.assert_allclose(live, model.new_item_vectors(recipe.combine(feats),
                                                                texts=[text])[0], rtol=1e-5)
        assert not np.allclose(live, model.new_item_vectors(recipe.combine(feats),
                                                            texts=[""])[0], atol=1e-4)
