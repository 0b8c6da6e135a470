"""MobileNetV2 image encoder: shipped weights load strictly, torchvision's eval transform by
hand, good images encoded, bad ones masked with Pillow's reason, file:// URLs, options."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from crossrec.encoders import EncoderConfig, EncoderConfigError, build_encoder
from crossrec.encoders.image import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    MobileNetV2Encoder,
    default_mobilenet_weights,
    imagenet_eval_crop,
    imagenet_normalise,
    load_state_dict_file,
)
from crossrec.encoders.mobilenet_v2 import MobileNetV2


def _noise(w, h, seed, mode="RGB"):
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    arr = rng.integers(0, 256, (h, w, channels), dtype=np.uint8)
    return Image.fromarray(arr[..., 0] if mode == "L" else arr, mode)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("images")
    paths = {
        "rgb_jpg": d / "rgb.jpg", "rgb_png": d / "rgb.png", "grey_jpg": d / "grey.jpg",
        "grey_png": d / "grey.png", "rgba_png": d / "rgba.png", "wide_jpg": d / "wide.jpg",
    }
    _noise(120, 90, 0).save(paths["rgb_jpg"], quality=90)
    _noise(64, 80, 1).save(paths["rgb_png"])
    _noise(70, 70, 2, "L").save(paths["grey_jpg"])
    _noise(50, 90, 3, "L").save(paths["grey_png"])
    _noise(80, 60, 4, "RGBA").save(paths["rgba_png"])
    _noise(400, 100, 5).save(paths["wide_jpg"])
    data = paths["rgb_jpg"].read_bytes()
    (d / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (d / "empty.jpg").write_bytes(b"")
    (d / "text.jpg").write_text("this is not an image\n")
    paths.update(truncated=d / "truncated.jpg", empty=d / "empty.jpg", text=d / "text.jpg",
                 missing=d / "missing.jpg")
    return {k: str(v) for k, v in paths.items()}


@pytest.fixture(scope="module")
def encoder():
    return build_encoder(EncoderConfig(modality="image", batch_size=4))


SMALL = {"resize": 64, "crop": 64}        # same network, 12x less work: keeps the tests fast


@pytest.fixture(scope="module")
def small():
    return build_encoder(EncoderConfig(modality="image", batch_size=4, options=SMALL))


def test_default_kind_is_mobilenet(encoder):
    assert isinstance(encoder, MobileNetV2Encoder)
    assert encoder.dim == 1280


def test_shipped_weights_load_strictly():
    sd = load_state_dict_file(default_mobilenet_weights())
    net = MobileNetV2()
    ours = net.state_dict()
    assert set(ours) == set(sd)
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in sd.items()}
    result = net.load_state_dict(sd, strict=True)
    assert result.missing_keys == [] and result.unexpected_keys == []


def test_good_images_encoded_bad_ones_masked(encoder, images):
    good = ["rgb_jpg", "rgb_png", "grey_jpg", "grey_png", "rgba_png", "wide_jpg"]
    bad = ["truncated", "empty", "text", "missing"]
    inputs = [images[k] for k in good] + [images[k] for k in bad] + [""]
    out = encoder.encode(inputs)                                   # must not raise
    assert out.vectors.shape == (len(inputs), 1280) and out.vectors.dtype == np.float32
    assert out.mask.tolist() == [True] * len(good) + [False] * (len(bad) + 1)
    np.testing.assert_allclose(np.linalg.norm(out.vectors[: len(good)], axis=1), 1.0, atol=1e-5)
    assert not out.vectors[len(good):].any()
    errors = {bad[i - len(good)]: why for i, why in out.errors.items()}
    assert set(errors) == set(bad)                                 # "" has no error, just no input
    assert "truncated" in errors["truncated"]
    assert "cannot identify image file" in errors["empty"]
    assert "cannot identify image file" in errors["text"]
    assert "No such file" in errors["missing"]
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    # different pictures give different vectors
    assert np.abs(out.vectors[0] - out.vectors[1]).max() > 1e-3


def test_file_url_gives_same_vector_as_path(small, images):
    path = images["rgb_png"]
    out = small.encode([path, Path(path).as_uri(), "s3://bucket/key.jpg"])
    assert out.mask.tolist() == [True, True, False]
    np.testing.assert_array_equal(out.vectors[0], out.vectors[1])
    assert "unsupported URL scheme" in out.errors[2]


def test_http_url_is_downloaded(small, images):
    import functools
    import http.server
    import threading

    folder = str(Path(images["rgb_png"]).parent)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=folder)
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        out = small.encode([f"{base}/rgb.png", f"{base}/nothing.png", images["rgb_png"]])
    finally:
        server.shutdown()
        server.server_close()
    assert out.mask.tolist() == [True, False, True]
    assert "404" in out.errors[1]
    np.testing.assert_array_equal(out.vectors[0], out.vectors[2])

def test_batching_and_workers_do_not_change_vectors(small, images):
    inputs = [images[k] for k in ("rgb_jpg", "grey_png", "truncated", "rgba_png", "wide_jpg")]
    ref = small.encode(inputs)
    for options, batch in [({"num_workers": 0}, 32), ({"num_workers": 2, "prefetch_batches": 0}, 2)]:
        other = build_encoder(EncoderConfig(modality="image", batch_size=batch,
                                            options={**SMALL, **options}))
        out = other.encode(inputs)
        assert out.mask.tolist() == ref.mask.tolist() and out.errors == ref.errors
        np.testing.assert_allclose(out.vectors, ref.vectors, atol=1e-5)


def test_classifier_probabilities(small, images):
    out = small.classify([images["rgb_jpg"], "", images["empty"], images["grey_png"]])
    assert out.vectors.shape == (4, 1000)
    assert out.mask.tolist() == [True, False, False, True]
    np.testing.assert_allclose(out.vectors[out.mask].sum(axis=1), 1.0, atol=1e-5)
    assert (out.vectors >= 0).all() and not out.vectors[~out.mask].any()
    probs = build_encoder(EncoderConfig(modality="image", options={**SMALL, "output": "probabilities"}))
    assert probs.dim == 1000
    np.testing.assert_allclose(probs.encode([images["rgb_jpg"]]).vectors[0], out.vectors[0], atol=1e-6)


def test_eval_transform_matches_torchvision_geometry():
    img = _noise(185, 278, 7)                       # an ML-1M poster's size
    got = imagenet_eval_crop(img)
    # Resize(256): shorter side 256, longer int(256 * 278 / 185) = 384; CenterCrop(224):
    # top = round((384 - 224) / 2) = 80, left = round((256 - 224) / 2) = 16
    want = np.asarray(img.resize((256, 384), Image.BILINEAR).crop((16, 80, 240, 304)))
    assert got.shape == (224, 224, 3) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, want)
    wide = imagenet_eval_crop(_noise(301, 200, 8), resize=100, crop=99)
    want = np.asarray(_noise(301, 200, 8).resize((150, 100), Image.BILINEAR).crop((26, 0, 125, 99)))
    np.testing.assert_array_equal(wide, want)


def test_normalisation_is_totensor_then_normalize():
    batch = np.zeros((1, 2, 2, 3), np.uint8)
    batch[0, 0, 0] = 255
    x = imagenet_normalise(batch).numpy()
    assert x.shape == (1, 3, 2, 2)
    for c in range(3):
        assert x[0, c, 0, 0] == pytest.approx((1.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c], abs=1e-6)
        assert x[0, c, 1, 1] == pytest.approx(-IMAGENET_MEAN[c] / IMAGENET_STD[c], abs=1e-6)


def test_fingerprint_names_weights_and_preprocessing(encoder):
    fp = encoder.fingerprint
    assert fp == "mobilenet-v2@b03531047ffa|resize=256|crop=224|norm=imagenet|l2=true"
    other = build_encoder(EncoderConfig(modality="image", options={"crop": 192}))
    assert other.fingerprint != fp and "crop=192" in other.fingerprint
    raw = build_encoder(EncoderConfig(modality="image", options={"normalize": False}))
    assert raw.fingerprint.endswith("l2=false")


def test_weights_path_and_bad_configs(tmp_path):
    with pytest.raises(EncoderConfigError, match="not found"):
        build_encoder(EncoderConfig(modality="image", model=str(tmp_path / "nope.pth")))
    with pytest.raises(EncoderConfigError, match="unknown option"):
        build_encoder(EncoderConfig(modality="image", options={"crop_size": 200}))
    with pytest.raises(EncoderConfigError, match="crop <= resize"):
        build_encoder(EncoderConfig(modality="image", options={"crop": 300}))
    with pytest.raises(EncoderConfigError, match="must be one of"):
        build_encoder(EncoderConfig(modality="image", options={"output": "logits"}))
    with pytest.raises(EncoderConfigError, match="must be like"):
        build_encoder(EncoderConfig(modality="image", options={"num_workers": "2"}))


def test_local_safetensors_weights(tmp_path, images, small):
    from safetensors.torch import save_file

    sd = load_state_dict_file(default_mobilenet_weights())
    path = tmp_path / "mnv2.safetensors"
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    enc = build_encoder(EncoderConfig(modality="image", model=str(path), options=SMALL))
    np.testing.assert_allclose(enc.encode([images["rgb_jpg"]]).vectors,
                               small.encode([images["rgb_jpg"]]).vectors, atol=1e-6)
    bad = tmp_path / "bad.safetensors"
    save_file({"w": sd["features.0.0.weight"]}, str(bad))
    with pytest.raises(EncoderConfigError, match="not a torchvision MobileNetV2"):
        build_encoder(EncoderConfig(modality="image", model=str(bad))).encode([images["rgb_jpg"]])


@pytest.mark.shared_data
def test_real_poster_is_encoded_deterministically(encoder, dataset_dir):
    poster = dataset_dir("ml-1m") / "posters" / "1.jpg"
    if not poster.is_file():
        pytest.skip(f"{poster} missing")
    a = encoder.encode([str(poster)])
    b = encoder.encode([str(poster)])
    assert a.mask.tolist() == [True]
    np.testing.assert_array_equal(a.vectors, b.vectors)
    from crossrec.encoders.bridge import imagenet_class_names

    probs = encoder.classify([str(poster)]).vectors[0]
    top5 = [imagenet_class_names()[i] for i in np.argsort(-probs)[:5]]
    assert "comic book" in top5                        # Toy Story's poster: a cartoon
