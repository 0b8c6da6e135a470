"""The one training loop every torch model of crossrec goes through (no model-specific branches).

A model hands the loop a :class:`Task`: its ``torch.nn.Module`` plus two hooks,

- ``batches(epoch, rng)`` -> an iterable of batches (anything the model understands),
- ``loss(batch)`` -> (scalar loss tensor, {name: float} of its parts, for the log),

and optionally a ``validate()`` callback returning the early-stopping score (higher is better;
:func:`ndcg_callback` builds the usual valid NDCG@20 one). The loop does the rest: seeds, the
optimiser (AdamW, weight decay), gradient accumulation, gradient clipping, bf16 autocast where
the device supports it, FGM adversarial perturbation of named embedding weights, early stopping
(the best epoch's weights are restored at the end), checkpoints with resume, metrics as JSON
lines (and TensorBoard when installed and asked for), tqdm progress bars on a TTY.

Determinism: epoch ``e`` draws from ``numpy.random.default_rng([seed, e])`` and reseeds torch
with ``seed * 100_003 + e``, so a run resumed from a checkpoint after epoch ``e`` continues
exactly like an uninterrupted one.

Example:
    >>> task = Task(module, batches=my_batches, loss=my_loss)
    >>> result = fit(task, TrainConfig(epochs=20, lr=1e-3, patience=3),
    ...              validate=ndcg_callback(score_fn, train_matrix, valid_matrix))
    >>> result.best_epoch, result.best_score
"""

from __future__ import annotations

import copy
import json
import logging
import math
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Settings of :func:`fit`; every field has a documented default.

    Attributes:
        epochs: maximum number of passes over ``batches``.
        lr: AdamW learning rate.
        weight_decay: AdamW decoupled weight decay (0 = none).
        grad_clip: clip the global gradient norm to this (None = no clipping).
        accumulate: optimiser step every this many batches (gradient accumulation).
        patience: stop after this many validations without improvement (None = never stop
            early; the best validated epoch is still restored).
        min_delta: an improvement must exceed this.
        eval_every: validate every this many epochs.
        bf16: autocast the loss computation to bfloat16. None: only on a CUDA device that
            supports bf16 (on CPU it is slower and less exact, so off by default).
        fgm_epsilon: FGM adversarial training (Miyato et al. 2017): after the backward pass,
            move each weight named by ``Task.adversarial`` by epsilon * g / ||g||, add the loss
            at the moved point, and move back. 0 = off.
        threads: torch intra-op threads (at most 2 on the build machine).
        seed: the run's seed.
        checkpoint_dir: write ``last.pt`` (weights, optimiser, epoch, best so far) here after
            every epoch; None = no checkpoints.
        resume: continue from ``checkpoint_dir/last.pt`` when it exists.
        log_path: append one JSON line per epoch (losses, validation score, seconds) here.
        tensorboard_dir: also write scalars with ``torch.utils.tensorboard`` (it must be
            installed when this is set).
        progress: tqdm bars; None = only when stderr is a TTY.
        stop_after: end the run after this epoch (index) as if interrupted; for testing resume.
    """

    epochs: int = 20
    lr: float = 1e-3
    weight_decay: float = 0.0
    grad_clip: float | None = 5.0
    accumulate: int = 1
    patience: int | None = 3
    min_delta: float = 0.0
    eval_every: int = 1
    bf16: bool | None = None
    fgm_epsilon: float = 0.0
    threads: int = 2
    seed: int = 0
    checkpoint_dir: Path | None = None
    resume: bool = False
    log_path: Path | None = None
    tensorboard_dir: Path | None = None
    progress: bool | None = None
    stop_after: int | None = None

    def __post_init__(self):
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.accumulate < 1:
            raise ValueError(f"accumulate must be >= 1, got {self.accumulate}")
        if self.eval_every < 1:
            raise ValueError(f"eval_every must be >= 1, got {self.eval_every}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.resume and self.checkpoint_dir is None:
            raise ValueError("resume needs checkpoint_dir")


@dataclass
class Task:
    """What a model gives the loop.

    Attributes:
        module: the parameters to train (all of ``module.parameters()`` with requires_grad).
        batches: ``(epoch, rng) -> iterable of batches``.
        loss: ``batch -> (scalar loss, {part: float})``.
        adversarial: names of weights (``module.named_parameters()``) that FGM perturbs.
        no_decay: names of weights exempt from weight decay (biases, norms, embeddings...).
        lr_scale: name prefix -> learning-rate multiplier (e.g. a smaller one for a pretrained
            language model inside the module).
    """

    module: Any
    batches: Callable[[int, np.random.Generator], Iterable[Any]]
    loss: Callable[[Any], tuple[Any, dict[str, float]]]
    adversarial: tuple[str, ...] = ()
    no_decay: tuple[str, ...] = ()
    lr_scale: dict[str, float] = field(default_factory=dict)


@dataclass
class TrainResult:
    """Outcome of :func:`fit`.

    Attributes:
        best_epoch: index of the epoch whose weights were kept (the last one without validation).
        best_score: its validation score (NaN without validation).
        epochs_run: epochs trained in this call plus those restored from a checkpoint.
        seconds_to_best: wall seconds from the start until the best epoch ended.
        history: one dict per epoch (what the JSON lines hold).
    """

    best_epoch: int
    best_score: float
    epochs_run: int
    seconds_to_best: float
    history: list[dict] = field(default_factory=list)


def set_threads(n: int) -> None:
    """Use at most ``n`` torch intra-op threads (never more than the machine has)."""
    import os

    import torch

    torch.set_num_threads(max(1, min(int(n), os.cpu_count() or 1)))


def bf16_supported(device) -> bool:
    import torch

    return device.type == "cuda" and torch.cuda.is_bf16_supported()


def fit(task: Task, config: TrainConfig, validate: Callable[[], float] | None = None
        ) -> TrainResult:
    """Train ``task.module`` in place; with ``validate``, keep the best validated weights."""
    import torch
    from tqdm.auto import tqdm

    set_threads(config.threads)
    torch.manual_seed(config.seed)
    module = task.module
    device = next(module.parameters()).device
    use_bf16 = bf16_supported(device) if config.bf16 is None else bool(config.bf16)
    if use_bf16 and device.type == "cuda" and not bf16_supported(device):
        raise ValueError("bf16=True but this CUDA device does not support bfloat16")
    named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("the task's module has no trainable parameters")
    groups: dict[tuple[float, float], list] = {}       # (weight decay, lr) -> parameters
    for n, p in named:
        wd = 0.0 if _matches(n, task.no_decay) else config.weight_decay
        scale = next((s for prefix, s in task.lr_scale.items() if n.startswith(prefix)), 1.0)
        groups.setdefault((wd, config.lr * scale), []).append(p)
    optimizer = torch.optim.AdamW([{"params": ps, "weight_decay": wd, "lr": lr}
                                   for (wd, lr), ps in groups.items()], lr=config.lr)
    adversarial = [(n, p) for n, p in named if n in task.adversarial]
    missing = set(task.adversarial) - {n for n, _ in adversarial}
    if config.fgm_epsilon > 0 and missing:
        raise ValueError(f"FGM: no trainable weight named {sorted(missing)}")

    state = {"epoch": -1, "best_epoch": -1, "best_score": -math.inf, "bad": 0,
             "best_weights": None, "elapsed": 0.0, "to_best": 0.0, "history": []}
    ckpt = Path(config.checkpoint_dir) / "last.pt" if config.checkpoint_dir else None
    if config.resume and ckpt is not None and ckpt.exists():
        saved = torch.load(ckpt, map_location=device, weights_only=False)
        module.load_state_dict(saved["module"])
        optimizer.load_state_dict(saved["optimizer"])
        state = saved["loop"]
        log.info("resumed from %s after epoch %d", ckpt, state["epoch"])

    writer = None
    if config.tensorboard_dir is not None:
        from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package
        writer = SummaryWriter(str(config.tensorboard_dir))
    show = sys.stderr.isatty() if config.progress is None else config.progress
    t_start = time.perf_counter() - state["elapsed"]
    interrupted = False
    for epoch in range(state["epoch"] + 1, config.epochs):
        rng = np.random.default_rng([config.seed, epoch])
        torch.manual_seed(config.seed * 100_003 + epoch)
        module.train()
        sums: dict[str, float] = {}
        n_batches = 0
        optimizer.zero_grad(set_to_none=True)
        bar = tqdm(task.batches(epoch, rng), desc=f"epoch {epoch}", leave=False,
                   disable=not show)
        for step, batch in enumerate(bar):
            loss, parts = _forward(task, batch, device, use_bf16)
            (loss / config.accumulate).backward()
            if config.fgm_epsilon > 0:
                backups = _fgm_perturb(adversarial, config.fgm_epsilon)
                adv_loss, _ = _forward(task, batch, device, use_bf16)
                (adv_loss / config.accumulate).backward()
                for (_, p), b in zip(adversarial, backups):
                    p.data.copy_(b)
                parts = {**parts, "adversarial": float(adv_loss.detach())}
            if (step + 1) % config.accumulate == 0:
                _step(optimizer, module, config.grad_clip)
            for k, v in {"loss": float(loss.detach()), **parts}.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            n_batches += 1
            if show and step % 10 == 0:
                bar.set_postfix(loss=f"{sums['loss'] / n_batches:.4f}")
        if n_batches % config.accumulate:
            _step(optimizer, module, config.grad_clip)          # the last partial group
        if n_batches == 0:
            raise ValueError(f"epoch {epoch}: batches() yielded no batch")
        row = {"epoch": epoch, **{k: v / n_batches for k, v in sums.items()},
               "batches": n_batches}
        if validate is not None and (epoch + 1) % config.eval_every == 0:
            module.eval()
            with torch.no_grad():
                score = float(validate())
            row["valid"] = score
            if score > state["best_score"] + config.min_delta:
                state.update(best_epoch=epoch, best_score=score, bad=0,
                             best_weights=copy.deepcopy(module.state_dict()),
                             to_best=time.perf_counter() - t_start)
            else:
                state["bad"] += 1
        elif validate is None:
            state.update(best_epoch=epoch, to_best=time.perf_counter() - t_start)
        row["seconds"] = time.perf_counter() - t_start
        state["epoch"], state["elapsed"] = epoch, row["seconds"]
        state["history"].append(row)
        _log_row(row, config, writer)
        if ckpt is not None:
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            tmp = ckpt.with_suffix(".tmp")
            torch.save({"module": module.state_dict(), "optimizer": optimizer.state_dict(),
                        "loop": state, "config": asdict(config)}, tmp)
            tmp.replace(ckpt)
        if config.patience is not None and validate is not None and \
                state["bad"] >= config.patience:
            break
        if config.stop_after is not None and epoch >= config.stop_after:
            interrupted = True
            break
    if writer is not None:
        writer.close()
    if state["best_weights"] is not None and not interrupted:
        module.load_state_dict(state["best_weights"])
    module.eval()
    return TrainResult(state["best_epoch"], state["best_score"] if validate else math.nan,
                       state["epoch"] + 1, state["to_best"], state["history"])


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(p in name for p in patterns)


def _forward(task: Task, batch, device, use_bf16: bool):
    import torch

    if use_bf16:
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            loss, parts = task.loss(batch)
        return loss.float(), parts
    return task.loss(batch)


def _step(optimizer, module, grad_clip: float | None) -> None:
    import torch

    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(module.parameters(), grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def _fgm_perturb(params, epsilon: float):
    """Move each weight along its normalised gradient; return the originals."""
    import torch

    backups = []
    for _, p in params:
        backups.append(p.data.clone())
        if p.grad is not None:
            norm = torch.linalg.vector_norm(p.grad)
            if norm > 0 and torch.isfinite(norm):
                p.data.add_(epsilon * p.grad / norm)
    return backups


def _log_row(row: dict, config: TrainConfig, writer) -> None:
    log.debug("epoch %s", json.dumps(row))
    if config.log_path is not None:
        path = Path(config.log_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
    if writer is not None:
        for k, v in row.items():
            if k != "epoch" and isinstance(v, (int, float)):
                writer.add_scalar(k, v, row["epoch"])


def ndcg_callback(score_fn: Callable[[np.ndarray], np.ndarray], exclude: sp.csr_matrix,
                  relevant: sp.csr_matrix, candidates: np.ndarray | None = None, k: int = 20,
                  batch_size: int = 1024) -> Callable[[], float]:
    """A ``validate`` callback: mean NDCG@k of ``score_fn(users) -> (n, n_items)`` over the
    users with a relevant item, ranking without the items of ``exclude`` (e.g. train) and,
    when given, only among ``candidates`` ((n_items,) bool)."""
    from crossrec.evaluation import metrics as M

    relevant = sp.csr_matrix(relevant)
    users = np.flatnonzero(np.diff(relevant.indptr) > 0)
    if len(users) == 0:
        raise ValueError("ndcg_callback: no user has a relevant item")

    def validate() -> float:
        values = []
        for start in range(0, len(users), batch_size):
            batch = users[start:start + batch_size]
            scores = np.array(score_fn(batch), dtype=np.float32)       # (n, n_items) copy
            top = M.rank_topk(scores, k, exclude=exclude[batch], candidates=candidates,
                              inplace=True)
            values.append(M.ndcg_at_k(top, relevant[batch], k))
        return float(M.mean_over_users(np.concatenate(values)))

    return validate


__all__ = ["Task", "TrainConfig", "TrainResult", "bf16_supported", "fit", "ndcg_callback",
           "set_threads"]


class EarlyStoppedRefit:
    """Mixin for models that early-stop on valid through :func:`fit` and keep the chosen epoch
    as ``best_epoch_``: a refit on more data without valid trains that many epochs."""

    def refit_params(self) -> dict[str, Any]:
        self._check_fitted()
        return {"epochs": self.best_epoch_ + 1}
