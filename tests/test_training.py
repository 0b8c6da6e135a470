"""The one training loop: seeds, early stopping, checkpoints and resume, accumulation, logs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from crossrec.training import Task, TrainConfig, bf16_supported, fit, ndcg_callback

X = np.random.default_rng(0).normal(size=(64, 5)).astype(np.float32)
Y = (X @ np.arange(1, 6, dtype=np.float32) + 0.1).astype(np.float32)


def regression_task(batch_size: int = 16, dropout: float = 0.1) -> Task:
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Dropout(dropout), torch.nn.Linear(5, 1))

    def batches(epoch, rng):
        order = rng.permutation(len(X))
        for s in range(0, len(X), batch_size):
            rows = order[s:s + batch_size]
            yield torch.from_numpy(X[rows]), torch.from_numpy(Y[rows])

    def loss(batch):
        x, y = batch
        out = torch.nn.functional.mse_loss(module(x).squeeze(-1), y)
        return out, {"mse": float(out.detach())}

    return Task(module, batches, loss)


def weights(task: Task) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in task.module.state_dict().items()}


def test_same_seed_same_weights_other_seed_differs():
    cfg = TrainConfig(epochs=3, lr=0.05, threads=1, progress=False)
    a, b = regression_task(), regression_task()
    fit(a, cfg)
    fit(b, cfg)
    for k, v in weights(a).items():
        np.testing.assert_array_equal(v, weights(b)[k])
    c = regression_task()
    fit(c, TrainConfig(epochs=3, lr=0.05, threads=1, progress=False, seed=1))
    assert not np.array_equal(weights(a)["1.weight"], weights(c)["1.weight"])


def test_resume_from_checkpoint_equals_uninterrupted_run(tmp_path):
    whole = regression_task()
    fit(whole, TrainConfig(epochs=5, lr=0.05, threads=1, progress=False))

    first = regression_task()
    cfg = TrainConfig(epochs=5, lr=0.05, threads=1, progress=False, checkpoint_dir=tmp_path,
                      resume=True, stop_after=1)          # "killed" after epoch 1
    partial = fit(first, cfg)
    assert partial.epochs_run == 2 and (tmp_path / "last.pt").exists()
    resumed = regression_task()                           # a fresh process: new weights
    out = fit(resumed, TrainConfig(epochs=5, lr=0.05, threads=1, progress=False,
                                   checkpoint_dir=tmp_path, resume=True))
    assert out.epochs_run == 5 and len(out.history) == 5
    for k, v in weights(whole).items():
        np.testing.assert_array_equal(v, weights(resumed)[k])


def test_early_stopping_restores_the_best_epoch():
    task = regression_task()
    scores = iter([0.1, 0.5, 0.3, 0.2, 0.9, 0.9])
    snapshots = []

    def validate():
        snapshots.append(weights(task))
        return next(scores)

    result = fit(task, TrainConfig(epochs=6, lr=0.05, patience=2, threads=1, progress=False),
                 validate)
    assert result.best_epoch == 1 and result.best_score == 0.5
    assert result.epochs_run == 4                         # epochs 2 and 3 did not improve
    for k, v in snapshots[1].items():
        np.testing.assert_array_equal(weights(task)[k], v)


def test_gradient_accumulation_matches_the_full_batch():
    full, halves = regression_task(batch_size=64, dropout=0.0), \
        regression_task(batch_size=32, dropout=0.0)
    fit(full, TrainConfig(epochs=1, lr=0.05, grad_clip=None, threads=1, progress=False))
    fit(halves, TrainConfig(epochs=1, lr=0.05, grad_clip=None, accumulate=2, threads=1,
                            progress=False))
    for k, v in weights(full).items():
        np.testing.assert_allclose(weights(halves)[k], v, rtol=1e-5, atol=1e-6)


def test_metrics_are_logged_as_json_lines(tmp_path):
    log = tmp_path / "train.jsonl"
    fit(regression_task(), TrainConfig(epochs=3, lr=0.05, threads=1, progress=False,
                                       log_path=log), lambda: 0.5)
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1, 2]
    assert {"loss", "mse", "valid", "seconds", "batches"} <= set(rows[0])
    assert rows[-1]["loss"] < rows[0]["loss"]


def test_fgm_and_weight_decay_run_and_leave_no_perturbation():
    task = regression_task()
    task.adversarial = ("1.weight",)
    out = fit(task, TrainConfig(epochs=2, lr=0.05, fgm_epsilon=0.1, weight_decay=0.01,
                                threads=1, progress=False))
    assert "adversarial" in out.history[0]
    with pytest.raises(ValueError, match="FGM"):
        bad = regression_task()
        bad.adversarial = ("no.such.weight",)
        fit(bad, TrainConfig(epochs=1, fgm_epsilon=0.1, threads=1, progress=False))


def test_bf16_is_off_on_cpu_and_bad_settings_fail():
    assert not bf16_supported(torch.device("cpu"))
    with pytest.raises(ValueError, match="accumulate"):
        TrainConfig(accumulate=0)
    with pytest.raises(ValueError, match="checkpoint_dir"):
        TrainConfig(resume=True)


def test_ndcg_callback_on_a_known_ranking():
    # 2 users, 4 items; user 0 saw item 0 in train, its valid item is 1
    exclude = sp.csr_matrix(np.array([[1, 0, 0, 0], [0, 0, 0, 0]], np.float32))
    relevant = sp.csr_matrix(np.array([[0, 1, 0, 0], [0, 0, 0, 1]], np.float32))
    scores = np.array([[9.0, 1.0, 2.0, 0.0], [3.0, 2.0, 1.0, 4.0]], np.float32)
    value = ndcg_callback(lambda users: scores[users], exclude, relevant, k=2)()
    # user 0: item 0 excluded, ranking [2, 1] -> hit at rank 2 -> 1/log2(3); user 1: rank 1
    assert value == pytest.approx((1 / np.log2(3) + 1.0) / 2)
    cand = np.array([False, True, False, True])
    assert ndcg_callback(lambda users: scores[users], exclude, relevant, cand, k=2)() == 1.0
