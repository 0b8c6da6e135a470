"""EASE against its closed form computed directly, and the recency weights by hand."""

import numpy as np
import pandas as pd
import pytest

from crossrec.data.dataset import Dataset
from crossrec.models import TrainData, build_model


def _train(rows):
    ds = Dataset.from_frame("t", pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]))
    return TrainData(ds.interactions, ds.n_users, ds.n_items)


def test_ease_matches_closed_form():
    rng = np.random.default_rng(0)
    rows = [(f"u{u}", f"i{i}", float(i)) for u in range(30) for i in range(12)
            if rng.random() < 0.4]
    train = _train(rows)
    X = train.matrix.toarray().astype(np.float64)
    lam = 5.0
    P = np.linalg.inv(X.T @ X + lam * np.eye(X.shape[1]))
    B = -P / np.diag(P)[None, :]
    np.fill_diagonal(B, 0.0)
    model = build_model("ease", lam=lam).fit(train)
    np.testing.assert_allclose(model.B_, B, atol=1e-4)
    np.testing.assert_allclose(model.score(np.arange(train.n_users)), X @ B, atol=1e-4)


def test_recency_weights_by_hand():
    # one user: items a, b, c at times 3, 1, 2 -> order b, c, a; steps back 2, 1, 0
    train = _train([("u", "a", 3.0), ("u", "b", 1.0), ("u", "c", 2.0)])
    model = build_model("ease", lam=1.0, recency_tau=2.0, recency_floor=0.5).fit(train)
    h = model.history_.toarray()[0]
    np.testing.assert_allclose(h, [0.5 + 1.0, 0.5 + np.exp(-1.0), 0.5 + np.exp(-0.5)],
                               rtol=1e-6)


def test_memory_limit_is_checked_before_allocating():
    train = _train([("u", f"i{i}", 0.0) for i in range(50)])
    with pytest.raises(MemoryError, match="50 items need about .* max_memory_mb=0.001"):
        build_model("ease", max_memory_mb=0.001).fit(train)
