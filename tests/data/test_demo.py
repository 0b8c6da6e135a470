"""The generated demo data: deterministic, multi-media, and read back without loss."""

import json

from crossrec.data.datasets import load_dataset
from crossrec.data.demo import MEDIA, write_demo


def test_demo_is_deterministic_and_multimedia(tmp_path):
    a = write_demo(tmp_path / "a", n_users=40, n_items=60, seed=3)
    b = write_demo(tmp_path / "b", n_users=40, n_items=60, seed=3)
    assert (a / "interactions.csv").read_text() == (b / "interactions.csv").read_text()
    items = [json.loads(line) for line in (a / "items.jsonl").read_text().splitlines()]
    assert {i["medium"] for i in items} == set(MEDIA)
    for item in items:
        for kind in ("image", "audio"):
            if kind in item:
                assert (a / item[kind]).stat().st_size > 0


def test_demo_loads_as_a_folder_dataset(demo_dir):
    ds = load_dataset("demo", demo_dir)
    lines = (demo_dir / "interactions.csv").read_text().splitlines()
    items = [json.loads(line) for line in (demo_dir / "items.jsonl").read_text().splitlines()]
    assert len(ds.interactions) == len(lines) - 1
    assert ds.n_items == len(items) and ds.catalog.ids.tolist() == [i["item_id"] for i in items]
    first = items[0]
    assert ds.catalog.text["title"][0] == first["title"]
    assert ds.catalog.categories[0] == tuple(first["categories"])
    assert ds.catalog.medium[0] == first["medium"]
    with_image = next(k for k, i in enumerate(items) if "image" in i)
    assert ds.catalog.media["image"][with_image] == str(demo_dir / items[with_image]["image"])
