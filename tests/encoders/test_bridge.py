"""The label bridge: hand-computed cases, top-k, the ImageNet names, and the bridge object
with a stub classifier, a plain-callable text encoder and the real MobileNetV2."""

import numpy as np
import pytest
from PIL import Image

from crossrec.encoders import EncoderConfig, EncodeResult, build_encoder
from crossrec.encoders.bridge import (
    ImageLabelBridge,
    bridge_vectors,
    embed_texts,
    imagenet_class_names,
    label_bridge,
)

S = np.sqrt(0.5)


def test_label_bridge_hand_computed():
    # orthogonal label vectors (any length): one-hot -> that label; 50/50 -> the diagonal
    got = label_bridge([[1.0, 0.0], [0.5, 0.5], [0.0, 0.0]], [[2.0, 0.0], [0.0, 3.0]])
    np.testing.assert_allclose(got, [[1.0, 0.0], [S, S], [0.0, 0.0]], atol=1e-6)
    assert got.dtype == np.float32
    # non-orthogonal labels: 0.5 * (1, 0) + 0.5 * (0.6, 0.8) = (0.8, 0.4) -> normalised
    got = label_bridge([[0.5, 0.5]], [[1.0, 0.0], [3.0, 4.0]])
    np.testing.assert_allclose(got, [[0.8 / np.hypot(0.8, 0.4), 0.4 / np.hypot(0.8, 0.4)]], atol=1e-6)


def test_label_bridge_top_k():
    probs = [[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]]
    labels = np.eye(3)
    np.testing.assert_allclose(label_bridge(probs, labels, top_k=1), [[0, 1, 0], [1, 0, 0]], atol=1e-6)
    # top 2 of row 0: 0.5 and 0.3 -> renormalised (0.625, 0.375) -> L2 direction
    want = np.array([0.0, 0.5, 0.3]) / np.hypot(0.5, 0.3)
    np.testing.assert_allclose(label_bridge(probs, labels, top_k=2)[0], want, atol=1e-6)
    np.testing.assert_allclose(label_bridge(probs, labels, top_k=3), label_bridge(probs, labels), atol=1e-6)
    with pytest.raises(ValueError, match="top_k"):
        label_bridge(probs, labels, top_k=0)
    with pytest.raises(ValueError, match="do not align"):
        label_bridge(probs, np.eye(4))


def test_imagenet_class_names():
    names = imagenet_class_names()
    assert len(names) == 1000
    assert names[0] == "tench" and names[1] == "goldfish" and names[2] == "great white shark"
    assert names[281] == "tabby cat" and names[285] == "Egyptian Mau"
    assert names[409] == "analog clock" and names[817] == "sports car"
    assert names[954] == "banana" and names[999] == "toilet paper"


class StubClassifier:
    fingerprint = "stub"

    def classify(self, paths):
        probs = {"cat.jpg": [0.9, 0.1, 0.0], "car.jpg": [0.0, 0.2, 0.8], "bad.jpg": [0, 0, 0]}
        return EncodeResult(np.array([probs[p] for p in paths]), [p != "bad.jpg" for p in paths],
                            {i: "OSError: broken" for i, p in enumerate(paths) if p == "bad.jpg"})


def fake_text_encoder(texts):
    """Label 'x' -> a fixed unit vector; the template is ignored."""
    table = {"cat": [1.0, 0.0], "dog": [0.0, 1.0], "car": [-1.0, 0.0]}
    return np.array([table[t.split()[-1].rstrip(".")] for t in texts])


def test_bridge_with_stub_classifier_and_callable_text_encoder():
    bridge = ImageLabelBridge(StubClassifier(), fake_text_encoder, labels=["cat", "dog", "car"],
                              template="a photo of a {}.")
    out = bridge.encode(["cat.jpg", "bad.jpg", "car.jpg"])
    assert bridge.dim == 2
    assert out.mask.tolist() == [True, False, True] and out.errors == {1: "OSError: broken"}
    cat = np.array([0.9, 0.1]) / np.hypot(0.9, 0.1)
    car = np.array([-0.8, 0.2]) / np.hypot(0.8, 0.2)
    np.testing.assert_allclose(out.vectors, [cat, [0, 0], car], atol=1e-6)
    vectors, mask = bridge_vectors(StubClassifier(), ["car.jpg"], fake_text_encoder,
                                   labels=["cat", "dog", "car"], top_k=1)
    np.testing.assert_allclose(vectors, [[-1.0, 0.0]], atol=1e-6)
    assert "stub" in bridge.fingerprint and "top_k=None" in bridge.fingerprint


def test_embed_texts_accepts_encoders_arrays_and_callables():
    class CrossrecLike:
        def encode(self, texts):
            return EncodeResult(np.ones((len(texts), 3)), [t != "" for t in texts])

    class ArrayLike:                                   # e.g. a SentenceTransformer
        def encode(self, texts):
            return np.ones((len(texts), 3))

    v, m = embed_texts(CrossrecLike(), ["a", ""])
    assert v.shape == (2, 3) and m.tolist() == [True, False]
    v, m = embed_texts(ArrayLike(), ["a", "b"])
    assert v.dtype == np.float32 and m.all()
    with pytest.raises(ValueError, match="gave"):
        embed_texts(lambda texts: np.ones(3), ["a", "b"])


def test_bridge_with_real_mobilenet(tmp_path):
    path = tmp_path / "img.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(path)
    image_encoder = build_encoder(EncoderConfig(modality="image", options={"resize": 64, "crop": 64}))
    rng = np.random.default_rng(1)
    label_vectors = rng.normal(size=(1000, 5))
    vectors, mask = bridge_vectors(image_encoder, [str(path), str(tmp_path / "none.jpg")],
                                   lambda texts: label_vectors[: len(texts)])
    assert vectors.shape == (2, 5) and mask.tolist() == [True, False]
    probs = image_encoder.classify([str(path)]).vectors
    unit = label_vectors / np.linalg.norm(label_vectors, axis=1, keepdims=True)
    want = probs @ unit
    np.testing.assert_allclose(vectors[0], want[0] / np.linalg.norm(want[0]), atol=1e-5)
    assert not vectors[1].any()
