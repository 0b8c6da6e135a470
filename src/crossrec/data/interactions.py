"""Interactions: a columnar log of (user, item, timestamp, value, event) on dense indices."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp


@dataclass(frozen=True)
class Interactions:
    """Id-aligned interaction arrays, one row per event, in source order.

    Attributes:
        user: (n,) int64 user indices (into the dataset's user ``IdMap``).
        item: (n,) int64 item indices (into the dataset's item ``IdMap``).
        timestamp: (n,) float64 seconds, NaN where unknown.
        value: (n,) float32 rating or weight, NaN where unknown.
        event: (n,) object event type ("rating", "play", "click", ...), or None for all.
    """

    user: np.ndarray
    item: np.ndarray
    timestamp: np.ndarray = None  # type: ignore[assignment]
    value: np.ndarray = None  # type: ignore[assignment]
    event: np.ndarray | None = field(default=None)

    def __post_init__(self):
        n = len(self.user)
        object.__setattr__(self, "user", np.asarray(self.user, dtype=np.int64))
        object.__setattr__(self, "item", np.asarray(self.item, dtype=np.int64))
        ts = np.full(n, np.nan) if self.timestamp is None else self.timestamp
        val = np.full(n, np.nan, dtype=np.float32) if self.value is None else self.value
        object.__setattr__(self, "timestamp", np.asarray(ts, dtype=np.float64))
        object.__setattr__(self, "value", np.asarray(val, dtype=np.float32))
        for name in ("item", "timestamp", "value") + (("event",) if self.event is not None else ()):
            if len(getattr(self, name)) != n:
                raise ValueError(f"Interactions.{name} has {len(getattr(self, name))} rows, "
                                 f"user has {n}")

    def __len__(self) -> int:
        return len(self.user)

    def take(self, rows: np.ndarray) -> Interactions:
        """Rows selected by an index array or boolean mask (order kept as given)."""
        rows = np.asarray(rows)
        return Interactions(self.user[rows], self.item[rows], self.timestamp[rows],
                            self.value[rows], None if self.event is None else self.event[rows])

    @staticmethod
    def concat(parts: list[Interactions]) -> Interactions:
        if not parts:
            return Interactions(np.zeros(0, np.int64), np.zeros(0, np.int64))
        events = None
        if any(p.event is not None for p in parts):
            events = np.concatenate([p.event if p.event is not None
                                     else np.full(len(p), None, dtype=object) for p in parts])
        return Interactions(np.concatenate([p.user for p in parts]),
                            np.concatenate([p.item for p in parts]),
                            np.concatenate([p.timestamp for p in parts]),
                            np.concatenate([p.value for p in parts]), events)

    def chronological_order(self) -> np.ndarray:
        """Stable order by (user, timestamp, source row); unknown timestamps keep row order."""
        ts = np.nan_to_num(self.timestamp, nan=-np.inf)
        return np.lexsort((np.arange(len(self)), ts, self.user))

    def first_occurrences(self) -> np.ndarray:
        """Boolean mask keeping the earliest row (by timestamp, then row) of each (user, item)."""
        ts = np.nan_to_num(self.timestamp, nan=np.inf)
        order = np.lexsort((np.arange(len(self)), ts, self.item, self.user))
        u, i = self.user[order], self.item[order]
        first = np.ones(len(order), dtype=bool)
        first[1:] = (u[1:] != u[:-1]) | (i[1:] != i[:-1])
        keep = np.zeros(len(self), dtype=bool)
        keep[order[first]] = True
        return keep

    def deduplicate(self) -> tuple[Interactions, int]:
        """Collapse duplicate (user, item) pairs to the earliest; returns (result, n_dropped)."""
        keep = self.first_occurrences()
        return self.take(keep), int(len(self) - keep.sum())

    def to_csr(self, n_users: int, n_items: int, binary: bool = True,
               dtype=np.float32) -> sp.csr_matrix:
        """(n_users, n_items) matrix; binary 1s by default, else summed values."""
        data = np.ones(len(self), dtype=dtype) if binary else np.nan_to_num(self.value).astype(dtype)
        m = sp.csr_matrix((data, (self.user, self.item)), shape=(n_users, n_items), dtype=dtype)
        m.sum_duplicates()
        if binary:
            m.data[:] = 1
        return m
