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
        # it has a content row (its text block only) for the explanations that name it
        loaded = app.state.service.loaded
        assert loaded.links.has_blocks(loaded.position("new-jazz")) == {"text": True,
                                                                        "image": False}
    # the artifact's model is what placed it: same item tower after loading from disk
    model = load_artifact(crossrec_artifact).model
    assert model.places_new_items and model.tower_width_ == QUICK["dim"] + 1
    # and the collaborative channel (the default) after the towers: ALS factors + popularity
    assert model.item_vectors().shape[1] == model.tower_width_ + model.collab_factors + 1


def test_crossrec_explanations_say_which_modality_links_the_items(crossrec_artifact, tmp_path):
    """The fusion model's vectors are not the content space, so the artifact keeps the items'
    content rows and an explanation names the block where the two items are most alike
    against the catalog (centred dot product over the block's spread across pairs); without
    those rows it can only say "collaborative"."""
    import shutil

    from crossrec.artifact import load_artifact
    from crossrec.recipe import ContentRecipe

    art = load_artifact(crossrec_artifact)
    recipe = ContentRecipe(**art.meta["config"]["content_recipe"])
    C = np.asarray(art.content_vectors, np.float32)
    assert C.shape == (len(art.items), recipe.dim) and art.item_vectors.shape[1] != recipe.dim

    def by_hand(a: str, b: str) -> str:
        i, j = art.items.get([a, b])
        best, name = 0.0, "collaborative"
        for block, sl in recipe.block_slices().items():
            has = np.abs(C[:, sl]).sum(1) > 0
            if not (has[i] and has[j]):
                continue
            X = C[has, sl] - C[has, sl].mean(0)                   # centred rows
            spread = np.linalg.norm(X @ X.T) / len(X)             # rms over all pairs
            mu = C[has, sl].mean(0)
            v = float((C[i, sl] - mu) @ (C[j, sl] - mu)) / spread
            if v > best:
                best, name = v, block
        return name

    def reasons(path, store):
        app = create_app(path, store_url=f"sqlite:///{tmp_path / store}")
        with TestClient(app) as client:
            out = []
            for user in ("u0001", "u0002", "u0003"):
                r = client.get(f"/v1/users/{user}/recommendations", params={"k": 10})
                assert r.status_code == 200, r.text
                out += [(i["item_id"], b) for i in r.json()["items"] for b in i["because"]
                        if b["reason"] == "history"]
            return out

    seen = reasons(crossrec_artifact, "a.db")
    assert seen and {b["modality"] for _, b in seen} & {"text", "image"}
    for item, b in seen:
        assert b["modality"] == by_hand(item, b["item_id"]), (item, b)
    bare = tmp_path / "bare"
    shutil.copytree(crossrec_artifact, bare)
    (bare / "content_vectors.npy").unlink()
    assert {b["modality"] for _, b in reasons(bare, "b.db")} == {"collaborative"}


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
