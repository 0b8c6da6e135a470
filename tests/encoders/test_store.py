"""The feature store: content-hash caching, item order, failures, atomic writes, and the
catalog pipeline over it. A counting fake encoder shows exactly what gets encoded."""

import hashlib
import json
import os

import numpy as np
import pytest

from crossrec.data.catalog import Catalog
from crossrec.encoders import Encoder, EncoderConfig, EncodeResult
from crossrec.encoders.pipeline import catalog_inputs, encode_catalog
from crossrec.encoders.store import FeatureStore, content_key


class CountingEncoder(Encoder):
    """Deterministic 8-d vectors from a text's hash; records every input it encodes; fails on
    inputs that contain "BROKEN"."""

    kind = "test-counting"
    modality = "text"

    def __init__(self, version: str = "v1"):
        super().__init__(EncoderConfig(modality="text", batch_size=2))
        self.version = version
        self.seen: list[str] = []

    @property
    def dim(self):
        return 8

    @property
    def fingerprint(self):
        return f"counting:{self.version}"

    def _encode(self, inputs):
        self.seen += list(inputs)
        vecs = np.stack([vector(t) for t in inputs])
        errors = {i: "ValueError: broken text" for i, t in enumerate(inputs) if "BROKEN" in t}
        mask = np.array([i not in errors for i in range(len(inputs))])
        vecs[~mask] = 0
        return EncodeResult(vecs, mask, errors)


def vector(text: str) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
    return np.random.default_rng(seed).normal(size=8).astype(np.float32)


IDS = [f"i{k}" for k in range(6)]
TEXTS = [f"text number {k}" for k in range(6)]


@pytest.fixture(scope="module")
def minilm():
    """The default text encoder; the loaded model is shared process-wide with test_text.py."""
    from crossrec.encoders import build_encoder
    return build_encoder(EncoderConfig(modality="text"))


@pytest.fixture
def store(tmp_path):
    return FeatureStore(tmp_path / "store")


def test_first_run_encodes_all_second_run_none_with_identical_matrix(store):
    enc = CountingEncoder()
    feats, rep = store.encode(enc, IDS, TEXTS, progress=False)
    assert (rep.n_items, rep.n_encoded, rep.n_cached, rep.n_failed) == (6, 6, 0, 0)
    np.testing.assert_array_equal(feats.matrix, np.stack([vector(t) for t in TEXTS]))
    assert feats.mask.all() and feats.name == "test-counting-text"

    enc2 = CountingEncoder()
    feats2, rep2 = store.encode(enc2, IDS, TEXTS, progress=False)
    assert enc2.seen == [] and (rep2.n_encoded, rep2.n_cached) == (0, 6)
    np.testing.assert_array_equal(feats2.matrix, feats.matrix)
    assert rep2.items_per_second == 0.0 and rep2.peak_rss_mb > 0


def test_changed_text_reencodes_exactly_that_item(store):
    store.encode(CountingEncoder(), IDS, TEXTS, progress=False)
    texts = list(TEXTS)
    texts[3] = "a new synopsis"
    enc = CountingEncoder()
    feats, rep = store.encode(enc, IDS, texts, progress=False)
    assert enc.seen == ["a new synopsis"] and (rep.n_encoded, rep.n_cached) == (1, 5)
    np.testing.assert_array_equal(feats.matrix[3], vector("a new synopsis"))
    np.testing.assert_array_equal(feats.matrix[0], vector(TEXTS[0]))
    # and the store remembers the new content
    enc3 = CountingEncoder()
    assert store.encode(enc3, IDS, texts, progress=False)[1].n_encoded == 0 and not enc3.seen


def test_added_items_only_are_encoded_and_item_order_is_respected(store):
    store.encode(CountingEncoder(), IDS[:4], TEXTS[:4], progress=False)
    order = [5, 0, 4, 2, 1, 3]
    enc = CountingEncoder()
    feats, rep = store.encode(enc, [IDS[k] for k in order], [TEXTS[k] for k in order],
                              progress=False)
    assert sorted(enc.seen) == sorted(TEXTS[4:]) and (rep.n_encoded, rep.n_cached) == (2, 4)
    np.testing.assert_array_equal(feats.matrix, np.stack([vector(TEXTS[k]) for k in order]))
    loaded = store.load("counting:v1", "text", ["i3", "nope", "i0"])
    np.testing.assert_array_equal(loaded.matrix[[0, 2]], feats.matrix[[5, 1]])
    assert loaded.mask.tolist() == [True, False, True] and not loaded.matrix[1].any()


def test_same_content_under_another_id_is_not_encoded_again(store):
    store.encode(CountingEncoder(), ["a"], ["shared synopsis"], progress=False)
    enc = CountingEncoder()
    feats, rep = store.encode(enc, ["a", "b", "c"], ["shared synopsis"] * 2 + ["other"],
                              progress=False)
    assert enc.seen == ["other"] and (rep.n_encoded, rep.n_cached) == (1, 2)
    np.testing.assert_array_equal(feats.matrix[1], vector("shared synopsis"))


def test_failures_and_missing_inputs_are_masked_reported_and_retried(store):
    texts = ["fine", "", "BROKEN one", "also fine"]
    ids = ["a", "b", "c", "d"]
    feats, rep = store.encode(CountingEncoder(), ids, texts, progress=False)
    assert feats.mask.tolist() == [True, False, False, True]
    assert rep.failures == {"c": "ValueError: broken text"}
    assert (rep.n_encoded, rep.n_missing_input, rep.n_failed) == (2, 1, 1)
    assert rep.n_items == rep.n_encoded + rep.n_cached + rep.n_missing_input + rep.n_failed
    manifest = json.loads((store.folder("counting:v1", "text") / "manifest.json").read_text())
    assert manifest["errors"][manifest["ids"].index("c")] == "ValueError: broken text"

    enc = CountingEncoder()                        # rerun: only the failure is tried again
    _, rep2 = store.encode(enc, ids, texts, progress=False)
    assert enc.seen == ["BROKEN one"] and rep2.n_encoded == 0 and rep2.n_failed == 1
    texts[2] = "repaired"
    feats3, rep3 = store.encode(CountingEncoder(), ids, texts, progress=False)
    assert rep3.n_encoded == 1 and rep3.failures == {} and feats3.mask[2]


def test_another_fingerprint_gets_its_own_table(store):
    store.encode(CountingEncoder("v1"), IDS, TEXTS, progress=False)
    enc = CountingEncoder("v2")
    assert store.encode(enc, IDS, TEXTS, progress=False)[1].n_encoded == 6
    assert {e["fingerprint"] for e in store.entries()} == {"counting:v1", "counting:v2"}
    with pytest.raises(FileNotFoundError, match="counting:v3.*stored: \\['counting:v1'"):
        store.load("counting:v3", "text", IDS)


def test_manifest_has_the_documented_fields(store):
    store.encode(CountingEncoder(), IDS, TEXTS, progress=False)
    folder = store.folder("counting:v1", "text")
    m = json.loads((folder / "manifest.json").read_text())
    assert m["fingerprint"] == "counting:v1" and m["modality"] == "text" and m["dim"] == 8
    assert m["n_rows"] == 6 and m["ids"] == IDS and len(m["content"]) == 6
    assert m["content"][0] == content_key(TEXTS[0], "text") and m["created"] and m["updated"]
    assert np.load(folder / m["vectors"], mmap_mode="r").shape == (6, 8)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["manifest.json", m["vectors"], m["mask"]])


@pytest.mark.parametrize("crash", ["os.replace", "np.save"])
def test_a_crash_while_saving_leaves_the_previous_store_readable(store, monkeypatch, crash):
    first, _ = store.encode(CountingEncoder(), IDS, TEXTS, progress=False)

    def boom(*args, **kwargs):
        raise OSError("simulated crash")

    target = (os, "replace") if crash == "os.replace" else (np, "save")
    with monkeypatch.context() as m:
        m.setattr(*target, boom)
        with pytest.raises(OSError, match="simulated crash"):
            store.encode(CountingEncoder(), IDS + ["new"], ["changed"] * 6 + ["x"],
                         progress=False)
    after = store.load("counting:v1", "text", IDS + ["new"])
    np.testing.assert_array_equal(after.matrix[:6], first.matrix)
    assert after.mask.tolist() == [True] * 6 + [False]
    enc = CountingEncoder()                        # the next run works and cleans up
    _, rep = store.encode(enc, IDS, TEXTS, progress=False)
    assert rep.n_encoded == 0 and not enc.seen
    _, rep = store.encode(CountingEncoder(), ["new"], ["x"], progress=False)
    folder = store.folder("counting:v1", "text")
    assert rep.n_encoded == 1 and len(list(folder.iterdir())) == 3


def test_a_corrupt_store_is_a_clear_error(store):
    store.encode(CountingEncoder(), IDS, TEXTS, progress=False)
    (store.folder("counting:v1", "text") / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match="unreadable.*delete that folder"):
        store.encode(CountingEncoder(), IDS, TEXTS, progress=False)


def test_content_key_of_media_follows_the_file_bytes(tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.write_bytes(b"poster-1")
    b.write_bytes(b"poster-1")
    assert content_key(str(a), "image") == content_key(str(b), "image")   # same bytes
    b.write_bytes(b"poster-2")
    assert content_key(str(a), "image") != content_key(str(b), "image")
    assert content_key(str(tmp_path / "gone.png"), "image").startswith("missing:")
    assert content_key("https://x.org/p.jpg", "image").startswith("url:")
    assert content_key("", "image") == "" and content_key("hi", "text").startswith("text:")


def test_encode_catalog_text_and_a_modality_the_catalog_lacks(tmp_path, monkeypatch):
    cat = Catalog(ids=["a", "b"], medium="book", text={"title": ["Dune", ""]},
                  categories=[("sf",), ()])
    assert catalog_inputs(cat, "video") == ["", ""]
    assert catalog_inputs(cat, "text", "{title} ({categories})") == ["Dune (sf)", ""]
    enc = CountingEncoder()
    monkeypatch.setattr("crossrec.encoders.pipeline.build_encoder", lambda cfg: enc)
    feats, reps = encode_catalog(cat, ["text"], store_root=tmp_path, template="{title}",
                                 progress=False)
    assert enc.seen == ["Dune"] and feats["text"].mask.tolist() == [True, False]
    assert reps["text"].n_missing_input == 1


def test_all_inputs_missing_gives_a_masked_matrix_of_the_encoder_dim(store):
    feats, rep = store.encode(CountingEncoder(), ["a", "b"], ["", ""], progress=False)
    assert feats.matrix.shape == (2, 8) and not feats.mask.any() and rep.n_missing_input == 2


def test_store_with_the_real_minilm(tmp_path, minilm):
    texts = ["A novel of space and time.", "Jazz piano in a smoky club"]
    store = FeatureStore(tmp_path)
    feats, rep = store.encode(minilm, ["x", "y"], texts, progress=False)
    assert feats.matrix.shape == (2, 384) and rep.n_encoded == 2
    np.testing.assert_allclose(feats.matrix, minilm.encode(texts).vectors, atol=1e-5)
    again = store.load(minilm.fingerprint, "text", ["y", "x"])
    np.testing.assert_array_equal(again.matrix, feats.matrix[::-1])
