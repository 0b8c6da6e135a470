"""The evaluation loop: tuning looks at valid only; stages rank the right candidates."""

import numpy as np
import pandas as pd

from crossrec.data.dataset import Dataset
from crossrec.evaluation import runner
from crossrec.evaluation.protocols import make_split
from crossrec.models.base import Recommender


class Oracle(Recommender):
    """Scores one fixed item set high: 'A' or 'B'."""

    name = "oracle"
    param_grid = {"target": ["A", "B"]}

    def __init__(self, target: str = "A"):
        self.target = target

    def fit(self, train, valid=None):
        self.n_items_ = train.n_items
        self.n_users_ = train.n_users
        return self

    def score(self, users):
        # distinct scores, lower index higher, and the target set on top
        s = np.tile(-np.arange(self.n_items_, dtype=np.float32) / self.n_items_, (len(users), 1))
        s[:, self.items[self.target]] = 1.0
        return s


def _dataset():
    # every user: 8 train items, then a valid item from block A, then a test item from block B
    rows = [("z", f"c{j}", 1.0, j) for j in range(30)]     # 30 filler items, indexed first
    for u in range(6):
        rows += [(f"u{u}", f"t{j}", 1.0, j) for j in range(8)]
        rows += [(f"u{u}", "a1", 1.0, 100), (f"u{u}", "b1", 1.0, 200)]
    return Dataset.from_frame("toy", pd.DataFrame(rows, columns=["user_id", "item_id", "rating",
                                                                  "timestamp"]))


def test_tuning_uses_valid_not_test(monkeypatch):
    ds = _dataset()
    split = make_split(ds, "p5")
    Oracle.items = {"A": ds.items.index(["a1"]), "B": ds.items.index(["b1"])}
    monkeypatch.setattr(runner, "model_class", lambda name: Oracle)
    res = runner.evaluate(split, "oracle", progress=False)
    assert res.params == {"target": "A"}               # best on valid, although B wins test
    assert res.grid[0]["ndcg@20"] > 0.9 > 0.1 > res.grid[1]["ndcg@20"]
    assert res.summary["hr@20"]["mean"] < 0.2           # ... and misses on test (B would hit)
    assert [t["params"]["target"] for t in res.grid] == ["A", "B"]


def test_score_stage_excludes_and_restricts_to_candidates():
    ds = _dataset()
    split = make_split(ds, "p2")
    Oracle.items = {"A": np.arange(ds.n_items), "B": np.arange(ds.n_items)}
    model = Oracle().fit(runner.train_data(split, "test"))
    res = runner.score_stage(model, split, "test", depth=20)
    ranked = res.ranked[res.ranked >= 0]
    assert np.isin(ranked, np.flatnonzero(split.candidates["test"])).all()
    assert res.beyond["coverage@10"] == 1.0              # every candidate is recommended


def test_ties_are_broken_by_a_fixed_random_order_not_by_id():
    """A model that scores every item alike must not profit from id order (on MovieLens,
    low ids are the popular films)."""
    ds = _dataset()
    split = make_split(ds, "p5")
    Oracle.items = {"A": np.arange(ds.n_items), "B": np.arange(ds.n_items)}   # all tied
    model = Oracle().fit(runner.train_data(split, "test"))
    users = np.array([0])
    by_id, _ = model.recommend(users, k=5)
    order = runner.tiebreak_order(ds.n_items)
    ranked, _ = model.recommend(users, k=5, tiebreak=order)
    assert by_id[0].tolist() == [0, 1, 2, 3, 4]
    expected = [i for i in order if i < ds.n_items][:5]
    assert ranked[0].tolist() == expected
    assert not np.array_equal(ranked, by_id)


def test_p1_test_is_scored_from_train_and_valid_histories():
    """P1 fits on train alone; its test ranking reads each user's valid interactions too.
    Every user watched t0..t7 (train), then a1 (valid), then b1 (test), and the other users'
    a1 is always followed by b1: item-item models find b1 only from the valid history."""
    from crossrec.models import build_model

    rows = []
    for u in range(12):
        rows += [(f"u{u}", f"t{j}", 1.0, j) for j in range(8)]
        rows += [(f"u{u}", "a1", 1.0, 100), (f"u{u}", "b1", 1.0, 200)]
    for u in range(20):          # in train: a1 then b1, then 18 other items (held out last)
        rows += [(f"w{u}", "a1", 1.0, 0), (f"w{u}", "b1", 1.0, 1)]
        rows += [(f"w{u}", f"f{(u + j) % 40}", 1.0, 2 + j) for j in range(18)]
    ds = Dataset.from_frame("toy", pd.DataFrame(rows, columns=["user_id", "item_id", "rating",
                                                                "timestamp"]))
    split = make_split(ds, "p1")
    assert split.fit["test"] == ["train"] and split.history["test"] == ["train", "valid"]
    b1 = ds.items.index(["b1"])[0]
    model = build_model("itemknn", k=10).fit(runner.train_data(split, "test"))
    res = runner.score_stage(model, split, "test", depth=5)
    assert res.history == ["train", "valid"]
    testers = np.isin(res.users, ds.users.index([f"u{u}" for u in range(12)]))
    assert testers.sum() == 12 and (res.ranked[testers, 0] == b1).all()
    assert res.per_user["hr@10"][testers].min() == 1.0
    # the same model from train alone: t0..t7 say nothing of b1
    assert model.score(ds.users.index(["u0"]))[0, b1] == 0.0
    # a model that learned its users keeps its training histories, and says so
    bpr = build_model("bpr", factors=4, iterations=5).fit(runner.train_data(split, "test"))
    assert runner.score_stage(bpr, split, "test", depth=5).history == ["train"]
