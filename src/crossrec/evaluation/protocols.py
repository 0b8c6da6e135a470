"""The fixed evaluation protocols of PROTOCOL.md (P1 to P5), as functions Dataset -> Split.

Every protocol first collapses duplicate (user, item) pairs to the earliest interaction
(by timestamp, then source row). Random choices use ``numpy.random.default_rng(0)``.

Example:
    >>> split = make_split(load_dataset("ml-1m", data_dir), "p1")
    >>> split.stats()["test"]["interactions"]
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

import numpy as np

from crossrec.data.dataset import Dataset
from crossrec.data.idmap import natural_order
from crossrec.data.interactions import Interactions
from crossrec.data.split import Split

log = logging.getLogger(__name__)

PROTOCOLS: dict[str, Callable[..., Split]] = {}


def protocol(name: str):
    def deco(fn):
        PROTOCOLS[name] = fn
        return fn
    return deco


def make_split(dataset: Dataset, name: str, seed: int = 0) -> Split:
    """Build the split of protocol ``name`` (p1, p1b, p2, p2-all, p3, p4, p4-cold, p5)."""
    try:
        fn = PROTOCOLS[name]
    except KeyError:
        raise ValueError(f"unknown protocol {name!r}; known: {', '.join(PROTOCOLS)}") from None
    inter, dropped = dataset.interactions.deduplicate()
    if dropped:
        log.info("%s: collapsed %d duplicate (user, item) interactions", dataset.name, dropped)
    split = fn(dataset, inter, seed)
    split.info.setdefault("seed", seed)
    split.info["duplicates_dropped"] = dropped
    return split


def _interacted(dataset: Dataset, inter: Interactions) -> np.ndarray:
    mask = np.zeros(dataset.n_items, dtype=bool)
    mask[inter.item] = True
    return mask


def _holdout_counts(n: np.ndarray) -> np.ndarray:
    """n_test = n_valid = max(1, floor(0.1 n)); users too small to keep a train row get 0."""
    k = np.maximum(1, np.floor(0.1 * n).astype(np.int64))
    return np.where(n - 2 * k >= 1, k, 0)


def _tail_split(dataset: Dataset, inter: Interactions, order: np.ndarray, name: str,
                n_test_fn=_holdout_counts) -> Split:
    """Split rows given per user in ``order`` (grouped by user): the last n_test of each user's
    rows go to test, the n_valid before them to valid, the rest to train."""
    users = inter.user[order]
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    sizes = np.diff(np.r_[starts, len(order)])
    k = n_test_fn(sizes)
    pos = np.arange(len(order)) - np.repeat(starts, sizes)          # position within user
    from_end = np.repeat(sizes, sizes) - pos                         # 1 = the user's last row
    kk = np.repeat(k, sizes)
    label = np.where(from_end <= kk, 2, np.where(from_end <= 2 * kk, 1, 0))
    parts = {}
    for code, part in enumerate(("train", "valid", "test")):
        rows = np.sort(order[label == code])                         # back to source order
        parts[part] = inter.take(rows)
    cand = _interacted(dataset, inter)
    return Split(name, dataset, parts, {"valid": cand, "test": cand})


@protocol("p1")
def p1(dataset: Dataset, inter: Interactions, seed: int = 0) -> Split:
    """Per-user chronological 80/10/10; train only for both stages; rank every interacted item."""
    return _tail_split(dataset, inter, inter.chronological_order(), "p1")


def _random_user_order(dataset: Dataset, inter: Interactions, seed: int) -> np.ndarray:
    """Users in natural-sorted id order; each user's rows (file order) permuted with one shared
    ``default_rng(seed)``, ``rng.permutation(n)`` per user."""
    rng = np.random.default_rng(seed)
    by_user = np.argsort(inter.user, kind="stable")
    users_sorted = inter.user[by_user]
    starts = np.flatnonzero(np.r_[True, users_sorted[1:] != users_sorted[:-1]])
    bounds = dict(zip(users_sorted[starts].tolist(),
                      zip(starts.tolist(), np.r_[starts[1:], len(by_user)].tolist())))
    present = np.array(sorted(bounds), dtype=np.int64)
    ids = dataset.users.ids[present]
    chunks = []
    for u in present[natural_order(list(ids))]:
        a, b = bounds[int(u)]
        rows = by_user[a:b]
        chunks.append(rows[rng.permutation(b - a)])
    return np.concatenate(chunks) if chunks else np.zeros(0, np.int64)


@protocol("p1b")
def p1b(dataset: Dataset, inter: Interactions, seed: int = 0) -> Split:
    """As P1 with each user's order a random permutation (users in natural id order)."""
    return _tail_split(dataset, inter, _random_user_order(dataset, inter, seed), "p1b")


@protocol("p4")
def p4(dataset: Dataset, inter: Interactions, seed: int = 0) -> Split:
    """Per-user random 80/10/10 (as P1b), full ranking over every interacted item."""
    return _tail_split(dataset, inter, _random_user_order(dataset, inter, seed), "p4")


@protocol("p5")
def p5(dataset: Dataset, inter: Interactions, seed: int = 0) -> Split:
    """Leave-one-out: each user's last interaction is test, the one before valid."""
    split = _tail_split(dataset, inter, inter.chronological_order(), "p5",
                        n_test_fn=lambda n: np.where(n >= 3, 1, 0))
    return dataclasses.replace(split, fit={"valid": ["train"], "test": ["train", "valid"]},
                               history=None)


def _cold_item_split(dataset: Dataset, inter: Interactions, pool: np.ndarray, name: str,
                     seed: int, rank_all: bool) -> Split:
    """Items of ``pool`` in natural id order, permuted with default_rng(seed): the first
    round(0.2 n) are test-cold, the next round(0.1 n) valid-cold."""
    ids = dataset.items.ids[pool]
    ordered = pool[natural_order(list(ids))]
    perm = np.random.default_rng(seed).permutation(ordered)
    n_test, n_valid = int(round(0.2 * len(pool))), int(round(0.1 * len(pool)))
    test_cold = np.zeros(dataset.n_items, dtype=bool)
    valid_cold = np.zeros(dataset.n_items, dtype=bool)
    test_cold[perm[:n_test]] = True
    valid_cold[perm[n_test:n_test + n_valid]] = True
    is_test, is_valid = test_cold[inter.item], valid_cold[inter.item]
    parts = {"train": inter.take(~is_test & ~is_valid), "valid": inter.take(is_valid),
             "test": inter.take(is_test)}
    everything = _interacted(dataset, inter)
    cands = ({"valid": everything, "test": everything} if rank_all
             else {"valid": valid_cold, "test": test_cold})
    return Split(name, dataset, parts, cands,
                 fit={"valid": ["train"], "test": ["train", "valid"]},
                 info={"cold_items": {"valid": int(n_valid), "test": int(n_test)}})


@protocol("p2")
def p2(dataset: Dataset, inter: Interactions, seed: int = 0) -> Split:
    """Cold items: 20% test-cold, 10% valid-cold; rank among that stage's cold items."""
    return _cold_item_split(dataset, inter, np.flatnonzero(_interacted(dataset, inter)), "p2",
                            seed, rank_all=False)


@protocol("p2-all")
def p2_all(dataset: Dataset, inter: Interactions, seed: int = 0) -> Split:
    """The P2 split, ranking over all interacted items."""
    return _cold_item_split(dataset, inter, np.flatnonzero(_interacted(dataset, inter)),
                            "p2-all", seed, rank_all=True)


@protocol("p2-tail")
def p2_tail(dataset: Dataset, inter: Interactions, seed: int = 0) -> Split:
    """The P2 split on the long tail: each stage's cold items minus the 20% with the most
    interactions in that stage (relevance and candidates restricted to the rest)."""
    split = p2(dataset, inter, seed)
    split.protocol = "p2-tail"
    for stage in ("valid", "test"):
        split.candidates[stage] = _without_head(dataset, split.parts[stage],
                                                split.candidates[stage], share=0.2)
    return split


def _without_head(dataset: Dataset, part: Interactions, cand: np.ndarray,
                  share: float) -> np.ndarray:
    """``cand`` minus its round(share · n) items with the most interactions in ``part``
    (ties: natural id order)."""
    pool = np.flatnonzero(cand)
    pool = pool[natural_order(list(dataset.items.ids[pool]))]
    counts = np.bincount(part.item, minlength=dataset.n_items)[pool]
    head = pool[np.argsort(-counts, kind="stable")[:int(round(share * len(pool)))]]
    out = cand.copy()
    out[head] = False
    return out


@protocol("p4-cold")
def p4_cold(dataset: Dataset, inter: Interactions, seed: int = 0,
            feature: str | None = None) -> Split:
    """Cold artists as in P2, drawn from the interacted items that have content features
    (every stored feature present, e.g. Last.fm's audio embeddings)."""
    if not dataset.features:
        raise ValueError(f"p4-cold needs item features; dataset {dataset.name!r} has none")
    has = np.logical_and.reduce([f.mask for f in dataset.features.values()])
    pool = np.flatnonzero(has & _interacted(dataset, inter))
    return _cold_item_split(dataset, inter, pool, "p4-cold", seed, rank_all=False)


@protocol("p3")
def p3(dataset: Dataset, inter: Interactions, seed: int = 0, source: str = "book",
       target: str = "music") -> Split:
    """Cross-media: shared users' target-medium interactions held out (20% test, 10% valid
    users); everything else trains; rank all target-medium items."""
    medium = dataset.catalog.medium
    for m in (source, target):
        if not (medium == m).any():
            raise ValueError(f"p3 needs items of medium {m!r}; dataset {dataset.name!r} has "
                             f"{sorted(set(medium))}")
    is_target = medium[inter.item] == target
    has_src = np.zeros(dataset.n_users, dtype=bool)
    has_tgt = np.zeros(dataset.n_users, dtype=bool)
    has_src[inter.user[~is_target & (medium[inter.item] == source)]] = True
    has_tgt[inter.user[is_target]] = True
    shared = np.flatnonzero(has_src & has_tgt)
    ordered = shared[natural_order(list(dataset.users.ids[shared]))]
    perm = np.random.default_rng(seed).permutation(ordered)
    n_test, n_valid = int(round(0.2 * len(shared))), int(round(0.1 * len(shared)))
    test_users = np.zeros(dataset.n_users, dtype=bool)
    valid_users = np.zeros(dataset.n_users, dtype=bool)
    test_users[perm[:n_test]] = True
    valid_users[perm[n_test:n_test + n_valid]] = True
    to_test = is_target & test_users[inter.user]
    to_valid = is_target & valid_users[inter.user]
    parts = {"train": inter.take(~to_test & ~to_valid), "valid": inter.take(to_valid),
             "test": inter.take(to_test)}
    cand = (medium == target) & _interacted(dataset, inter)
    return Split("p3", dataset, parts, {"valid": cand, "test": cand},
                 fit={"valid": ["train"], "test": ["train", "valid"]},
                 info={"shared_users": int(len(shared)), "source": source, "target": target})
