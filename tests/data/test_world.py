"""The demo world: four media, each file decodes, themes recognisable, tastes span media."""

from __future__ import annotations

import json
import wave

import av
import numpy as np
from PIL import Image

from crossrec.data.datasets import load_dataset
from crossrec.data.world import MEDIA, THEMES, is_world, write_world


def test_world_is_deterministic_and_every_medium_decodes(tmp_path):
    a = write_world(tmp_path / "a", n_items=24, n_users=30, seed=2)
    b = write_world(tmp_path / "b", n_items=24, n_users=30, seed=2)
    assert (a / "interactions.csv").read_text() == (b / "interactions.csv").read_text()
    assert is_world(a, n_items=24, n_users=30, seed=2) and not is_world(a, n_items=24)
    assert not is_world(tmp_path / "nothing")
    items = [json.loads(line) for line in (a / "items.jsonl").read_text().splitlines()]
    assert [i["medium"] for i in items[:4]] == list(MEDIA) and items[0]["item_id"] == "article-0000"
    assert {i["categories"][0] for i in items} == set(THEMES)
    for item in items:
        theme = item["categories"][0]
        if item["medium"] == "picture":
            assert Image.open(a / item["image"]).size == (192, 192)
        if item["medium"] == "audio":
            with wave.open(str(a / item["audio"])) as w:
                assert w.getnframes() == 3 * 16000
        if item["medium"] == "video":
            with av.open(str(a / item["video"])) as c:
                frames = list(c.decode(video=0))
            with av.open(str(a / item["video"])) as c:
                sound = np.concatenate([f.to_ndarray().ravel() for f in c.decode(audio=0)])
            assert len(frames) == 24 and np.abs(sound).max() > 0.1
            assert theme in item["transcript"]
            assert (a / item["video"]).with_suffix(".txt").read_text().strip() == item["transcript"]
        if item["medium"] == "article":
            assert theme in item["description"]


def test_pictures_of_one_theme_look_alike(tmp_path):
    out = write_world(tmp_path, n_items=48, n_users=5, seed=0)
    items = [json.loads(line) for line in (out / "items.jsonl").read_text().splitlines()]
    means = {}
    for i in items:
        if i["medium"] == "picture":
            rgb = np.asarray(Image.open(out / i["image"]).convert("RGB"), float).mean((0, 1))
            means.setdefault(i["categories"][0], []).append(rgb)
    centre = {t: np.mean(v, 0) for t, v in means.items()}
    for t, v in means.items():          # every picture is nearest to its own theme's centre
        for rgb in v:
            assert min(centre, key=lambda c: np.linalg.norm(centre[c] - rgb)) == t


def test_world_loads_and_users_span_media(tmp_path):
    out = write_world(tmp_path, n_items=40, n_users=60, seed=1)
    ds = load_dataset("demo", out)
    assert ds.n_items == 40 and ds.n_users == 60
    assert set(ds.catalog.media) >= {"image", "audio", "video"}
    video = list(ds.catalog.medium).index("video")
    assert ds.catalog.media["video"][video].endswith(".mp4")
    assert ds.catalog.text["transcript"][video]
    media_per_user = [len({ds.catalog.medium[i] for i in ds.interactions.item[ds.interactions.user == u]})
                      for u in range(ds.n_users)]
    assert np.mean(np.array(media_per_user) >= 2) > 0.9
