"""Protocols on hand-built datasets: which row lands in which part, exactly."""

import numpy as np
import pandas as pd
import pytest

from crossrec.data.catalog import Catalog
from crossrec.data.dataset import Dataset
from crossrec.data.split import read_split, write_split
from crossrec.evaluation.protocols import PROTOCOLS, make_split


def _frame(rows):
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])


def _part_pairs(split, part):
    ds = split.dataset
    p = split.parts[part]
    return sorted(zip(ds.users.ids[p.user], ds.items.ids[p.item]))


def test_p1_chronological_with_ties_and_floor():
    rows = []
    # user a: 12 interactions -> floor(1.2) = 1 test, 1 valid; i10 and i11 share a timestamp,
    # the file order (i11 before i10) decides: i10 is last.
    for j in range(10):
        rows.append(("a", f"i{j}", 5, 100 + j))
    rows += [("a", "i11", 4, 200), ("a", "i10", 3, 200)]
    # user b: 25 interactions, listed newest first -> 2 test, 2 valid by time
    rows += [("b", f"i{j}", 1, 1000 - j) for j in range(25)]
    # user c: 2 interactions: too few to hold anything out
    rows += [("c", "i0", 1, 5), ("c", "i1", 1, 6)]
    # a duplicate of (b, i3) later in time collapses to the earliest
    rows += [("b", "i3", 2, 5000)]
    split = make_split(Dataset.from_frame("toy", _frame(rows)), "p1")
    assert _part_pairs(split, "test") == [("a", "i10"), ("b", "i0"), ("b", "i1")]
    assert _part_pairs(split, "valid") == [("a", "i11"), ("b", "i2"), ("b", "i3")]
    assert ("c", "i0") in _part_pairs(split, "train") and len(split.parts["train"]) == 10 + 21 + 2
    assert split.info["duplicates_dropped"] == 1
    assert split.fit == {"valid": ["train"], "test": ["train"]}
    # fitted on train alone, P1's test reads each user's train and valid interactions
    assert split.history == {"valid": ["train"], "test": ["train", "valid"]}
    assert split.candidates["test"].sum() == 25


def test_p1b_permutation_is_reproducible_and_natural_ordered():
    rows = [(u, f"i{j}", 1, np.nan) for u in ("u10", "u2") for j in range(10)]
    ds = Dataset.from_frame("toy", _frame(rows))
    split = make_split(ds, "p1b")
    # users visited in natural order: u2 first, then u10, one shared rng
    rng = np.random.default_rng(0)
    expected = []
    for u in ("u2", "u10"):
        perm = rng.permutation(10)
        expected.append((u, f"i{perm[-1]}"))
    assert _part_pairs(split, "test") == sorted(expected)
    assert _part_pairs(make_split(ds, "p1b"), "test") == sorted(expected)


def test_p2_cold_items_counts_and_stages():
    rows = [(f"u{u}", f"m{i}", 1, u * 100 + i) for u in range(5) for i in range(1, 21)]
    ds = Dataset.from_frame("toy", _frame(rows))
    split = make_split(ds, "p2")
    names = sorted([f"m{i}" for i in range(1, 21)], key=lambda s: int(s[1:]))
    perm = np.random.default_rng(0).permutation(names)
    test_cold, valid_cold = set(perm[:4]), set(perm[4:6])
    assert set(ds.items.ids[split.candidates["test"]]) == test_cold
    assert set(ds.items.ids[split.candidates["valid"]]) == valid_cold
    assert set(ds.items.ids[split.parts["test"].item]) == test_cold
    assert len(split.parts["train"]) == 5 * 14
    assert split.fit["test"] == ["train", "valid"]
    all_split = make_split(ds, "p2-all")
    assert all_split.candidates["test"].sum() == 20
    assert _part_pairs(all_split, "test") == _part_pairs(split, "test")


def test_p2_tail_drops_the_most_interacted_fifth_of_each_stages_cold_items():
    # 20 items; item m<i> is seen by i users (so later ids are more popular), 25 users
    rows = [(f"u{u}", f"m{i}", 1, u) for i in range(1, 21) for u in range(i)]
    ds = Dataset.from_frame("toy", _frame(rows))
    p2, tail = make_split(ds, "p2"), make_split(ds, "p2-tail")
    assert tail.protocol == "p2-tail"
    for stage in ("valid", "test"):
        cold = ds.items.ids[p2.candidates[stage]]
        by_count = sorted(cold, key=lambda s: -int(s[1:]))        # count = the id's number
        head = set(by_count[:round(0.2 * len(cold))])
        assert set(ds.items.ids[tail.candidates[stage]]) == set(cold) - head
        # relevance follows the candidates: no head item is ever relevant
        rel = tail.relevant(stage)
        assert not set(ds.items.ids[rel.indices]) & head
    assert _part_pairs(tail, "test") == _part_pairs(p2, "test")     # same split, same fit
    assert tail.fit == p2.fit


def test_p3_holds_out_target_medium_of_shared_users():
    cat = Catalog(["book_1", "book_2", "music_1", "music_2"], ["book", "book", "music", "music"])
    rows = [(str(u), "book_1", 4, np.nan) for u in range(1, 11)]          # 10 shared users
    rows += [(str(u), "music_1", 4, np.nan) for u in range(1, 11)]
    rows += [("99", "music_2", 3, np.nan), ("98", "book_2", 3, np.nan)]   # single-medium users
    split = make_split(Dataset.from_frame("toy", _frame(rows), catalog=cat), "p3")
    order = np.random.default_rng(0).permutation(sorted(map(str, range(1, 11)), key=int))
    assert _part_pairs(split, "test") == sorted((u, "music_1") for u in order[:2])
    assert _part_pairs(split, "valid") == [(order[2], "music_1")]
    assert set(split.dataset.items.ids[split.candidates["test"]]) == {"music_1", "music_2"}
    train = _part_pairs(split, "train")
    assert ("99", "music_2") in train and ("98", "book_2") in train and len(train) == 22 - 3


def test_p5_leave_one_out():
    rows = [("a", f"i{j}", 1, j) for j in range(6)] + [("b", f"i{j}", 1, 10 - j) for j in range(4)]
    split = make_split(Dataset.from_frame("toy", _frame(rows)), "p5")
    assert _part_pairs(split, "test") == [("a", "i5"), ("b", "i0")]
    assert _part_pairs(split, "valid") == [("a", "i4"), ("b", "i1")]
    assert split.fit["test"] == ["train", "valid"]


def test_unknown_protocol_names_the_known_ones():
    ds = Dataset.from_frame("toy", _frame([("a", "i", 1, 1)]))
    with pytest.raises(ValueError, match="unknown protocol 'p9'.*p1"):
        make_split(ds, "p9")
    assert {"p1", "p1b", "p2", "p2-all", "p2-tail", "p3", "p4", "p4-cold", "p5"} <= set(PROTOCOLS)


def test_split_folder_round_trip(tmp_path):
    rows = [(f"u{u}", f"m{i}", float(i % 5 + 1), 1000 * u + i) for u in range(6)
            for i in range(12)]
    ds = Dataset.from_frame("toy", _frame(rows))
    split = make_split(ds, "p2")
    write_split(split, tmp_path / "s")
    back = read_split(tmp_path / "s", ds)
    for part in ("train", "valid", "test"):
        a, b = split.parts[part], back.parts[part]
        np.testing.assert_array_equal(a.user, b.user)
        np.testing.assert_array_equal(a.item, b.item)
        np.testing.assert_array_equal(a.timestamp, b.timestamp)
        np.testing.assert_array_equal(a.value, b.value)
    for stage in ("valid", "test"):
        np.testing.assert_array_equal(split.candidates[stage], back.candidates[stage])
    assert back.fit == split.fit and back.exclude == split.exclude and back.protocol == "p2"
    assert back.history == split.history == {"valid": ["train"], "test": ["train", "valid"]}
    header = (tmp_path / "s" / "train.tsv").read_text().splitlines()[0]
    assert header == "user_id\titem_id\trating\ttimestamp"


def test_split_folder_history_defaults_and_errors(tmp_path):
    """A folder written by another tool may lack "history": a stage then reads what it fits on
    and what it excludes; a history that names the stage itself is refused."""
    import json

    rows = [(f"u{u}", f"m{i}", 1.0, 1000 * u + i) for u in range(6) for i in range(12)]
    ds = Dataset.from_frame("toy", _frame(rows))
    write_split(make_split(ds, "p1"), tmp_path / "s")
    meta_file = tmp_path / "s" / "meta.json"
    meta = json.loads(meta_file.read_text())
    assert meta["history"] == {"valid": ["train"], "test": ["train", "valid"]}
    del meta["history"]
    meta_file.write_text(json.dumps(meta))
    assert read_split(tmp_path / "s", ds).history["test"] == ["train", "valid"]
    meta["fit"]["test"] = ["train", "valid"]           # fitted on both: the same histories
    meta_file.write_text(json.dumps(meta))
    assert read_split(tmp_path / "s", ds).history["test"] == ["train", "valid"]
    meta["history"] = {"valid": ["train"], "test": ["train"]}          # a tool may say less
    meta_file.write_text(json.dumps(meta))
    assert read_split(tmp_path / "s", ds).history["test"] == ["train"]
    meta["history"] = {"valid": ["train"], "test": ["train", "test"]}
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="stage 'test' cannot be fitted on or read as history"):
        read_split(tmp_path / "s", ds)
