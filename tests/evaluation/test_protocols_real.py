"""Protocols on the real datasets, checked against a separate pandas reading of PROTOCOL.md."""

import numpy as np
import pandas as pd
import pytest

from crossrec.data.datasets import load_dataset
from crossrec.evaluation.protocols import make_split

pytestmark = pytest.mark.shared_data


def test_p1_ml1m_matches_a_pandas_reimplementation(dataset_dir):
    folder = dataset_dir("ml-1m")
    raw = pd.read_csv(folder / "ml-1m.inter", sep="\t", dtype=str)
    raw.columns = ["user", "item", "rating", "ts"]
    raw["ts"] = raw["ts"].astype(float)
    raw["row"] = np.arange(len(raw))
    raw = raw.sort_values(["user", "ts", "row"], kind="stable")
    n = raw.groupby("user")["item"].transform("size")
    k = np.maximum(1, np.floor(0.1 * n)).astype(int)
    pos_from_end = n - raw.groupby("user").cumcount()          # 1 = the user's last
    test = raw[pos_from_end <= k]
    valid = raw[(pos_from_end > k) & (pos_from_end <= 2 * k)]
    split = make_split(load_dataset("ml-1m", folder), "p1")
    stats = split.stats()
    assert stats["test"] == {"users": 6040, "items": test["item"].nunique(),
                             "interactions": len(test)}
    assert stats["valid"]["interactions"] == len(valid) == 97383
    assert stats["train"]["interactions"] == 1000209 - 2 * 97383
    assert stats["candidates_test"] == 3706
    ds = split.dataset
    ours = set(zip(ds.users.ids[split.parts["test"].user], ds.items.ids[split.parts["test"].item]))
    assert ours == set(zip(test["user"], test["item"]))


def test_p3_douban_counts(dataset_dir):
    split = make_split(load_dataset("douban", dataset_dir("douban")), "p3")
    assert split.info["shared_users"] == 1566
    stats = split.stats()
    assert stats["test"]["users"] == round(0.2 * 1566) == 313
    assert stats["valid"]["users"] == round(0.1 * 1566) == 157
    total = stats["train"]["interactions"] + stats["valid"]["interactions"] \
        + stats["test"]["interactions"]
    assert total == 96041 + 69709
    assert stats["candidates_test"] == 5567                     # all music items
    medium = split.dataset.catalog.medium
    assert (medium[split.parts["test"].item] == "music").all()


def test_p2_ml100k_cold_item_counts(dataset_dir):
    split = make_split(load_dataset("ml-100k", dataset_dir("ml-100k")), "p2")
    assert split.candidates["test"].sum() == round(0.2 * 1682) == 336
    assert split.candidates["valid"].sum() == round(0.1 * 1682) == 168
    train_items = np.unique(split.parts["train"].item)
    assert not np.isin(train_items, np.flatnonzero(split.candidates["test"])).any()
    assert len(split.parts["train"]) + len(split.parts["valid"]) + len(split.parts["test"]) \
        == 100000
