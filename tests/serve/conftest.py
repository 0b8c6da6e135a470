"""Service fixtures: an event-store URL for each backend (SQLite always; PostgreSQL when
CROSSREC_TEST_PG_URL names a server, as .ci/run sets it)."""

from __future__ import annotations

import os

import pytest

PG_URL = os.environ.get("CROSSREC_TEST_PG_URL")


def _fresh_pg(url: str) -> str:
    from sqlalchemy import create_engine

    from crossrec.serve.store import metadata

    engine = create_engine(url)
    metadata.drop_all(engine)
    engine.dispose()
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """A URL of an empty event store on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'events.db'}"
    if not PG_URL:
        pytest.skip("PostgreSQL tests need CROSSREC_TEST_PG_URL=postgresql+psycopg://... "
                    "(.ci/run starts a server and sets it)")
    return _fresh_pg(PG_URL)


@pytest.fixture
def pg_url():
    """The URL of an empty PostgreSQL store (skips without a server)."""
    if not PG_URL:
        pytest.skip("PostgreSQL tests need CROSSREC_TEST_PG_URL=postgresql+psycopg://... "
                    "(.ci/run starts a server and sets it)")
    return _fresh_pg(PG_URL)


# -- a tiny content artifact with fast, deterministic test encoders ---------------------------

import hashlib  # noqa: E402
import re  # noqa: E402

import numpy as np  # noqa: E402

from crossrec.encoders.base import Encoder, EncodeResult, register_encoder  # noqa: E402


@register_encoder
class HashTextEncoder(Encoder):
    """Bag of words hashed into 64 dims (unit length): words shared means similar."""

    kind = "test-hash-text"
    modality = "text"

    @property
    def dim(self):
        return 64

    @property
    def fingerprint(self):
        return "test-hash-text-64"

    def _encode(self, inputs):
        out = np.zeros((len(inputs), 64), np.float32)
        for r, text in enumerate(inputs):
            for w in re.findall(r"[a-z]+", text.lower()):
                out[r, int(hashlib.md5(w.encode()).hexdigest(), 16) % 64] += 1
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)
        return EncodeResult(out, np.ones(len(inputs), bool))


@register_encoder
class MeanColourEncoder(Encoder):
    """An image's mean RGB and its spread (6 dims): enough to tell the demo's themes apart."""

    kind = "test-mean-colour"
    modality = "image"

    @property
    def dim(self):
        return 6

    @property
    def fingerprint(self):
        return "test-mean-colour"

    def _encode(self, inputs):
        from PIL import Image

        out = np.zeros((len(inputs), 6), np.float32)
        mask = np.zeros(len(inputs), bool)
        errors = {}
        for r, path in enumerate(inputs):
            try:
                a = np.asarray(Image.open(path).convert("RGB"), np.float32) / 255
                out[r] = np.concatenate([a.mean((0, 1)), a.std((0, 1))])
                mask[r] = True
            except Exception as e:  # noqa: BLE001
                errors[r] = f"{type(e).__name__}: {e}"
        return EncodeResult(out, mask, errors)


def build_test_artifact(out, demo_dir, model="content", recipe=True, params=None):
    """A fitted model on the demo data, saved as an artifact (content: hashed text + mean
    colour through a ContentRecipe, whose rows are kept as the artifact's content vectors, as
    ``fit_artifact`` keeps them); ``params`` for the model (ALS: small defaults)."""
    from crossrec.artifact import save_artifact
    from crossrec.data.dataset import Features
    from crossrec.data.datasets import load_dataset
    from crossrec.encoders import EncoderConfig, build_encoder
    from crossrec.encoders.pipeline import catalog_inputs
    from crossrec.encoders.text import compose_texts
    from crossrec.models import build_model
    from crossrec.models.base import TrainData
    from crossrec.recipe import ContentRecipe

    ds = load_dataset("demo", demo_dir)
    encoders = {"text": build_encoder(EncoderConfig(modality="text", kind="test-hash-text")),
                "image": build_encoder(EncoderConfig(modality="image", kind="test-mean-colour"))}
    rec = ContentRecipe.for_encoders(encoders, weights={"text": 1.0, "image": 0.3})
    encoded = {}
    for m, enc in encoders.items():
        res = enc.encode(catalog_inputs(ds.catalog, m, rec.template))
        encoded[m] = Features(res.vectors, res.mask, m)
    feats = rec.combine(encoded)
    data = TrainData(ds.interactions, ds.n_users, ds.n_items, item_features=feats,
                     item_categories=ds.catalog.categories, item_medium=ds.catalog.medium,
                     item_text=compose_texts(ds.catalog))
    if params is None:
        params = {"factors": 16, "iterations": 5} if model == "als" else {}
    fitted = build_model(model, **params).fit(data)
    config = {"content_recipe": rec.model_dump()} if recipe else {}
    return save_artifact(out, fitted, ds, ds.interactions, config=config,
                         content_vectors=rec.content_rows(feats) if recipe else None)


@pytest.fixture(scope="session")
def content_artifact(demo_dir, tmp_path_factory):
    return build_test_artifact(tmp_path_factory.mktemp("art") / "content", demo_dir)


@pytest.fixture(scope="session")
def als_artifact(demo_dir, tmp_path_factory):
    return build_test_artifact(tmp_path_factory.mktemp("art") / "als", demo_dir, model="als",
                               recipe=False)


@pytest.fixture(scope="session")
def artifact_builder():
    """``artifact_builder(out, data_dir, model="content", params=None)`` -> a test artifact's
    path."""
    return build_test_artifact
