"""The one place where external ids become dense indices.

Example:
    >>> m = IdMap(["u7", "u3"])
    >>> m.index(["u3", "u7"]).tolist()
    [1, 0]
    >>> m.ids[1]
    'u3'
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np

_DIGITS = re.compile(r"(\d+)")


def natural_key(value: str) -> tuple:
    """Sort key that orders digit runs numerically ("2" before "10", "u2" before "u10")."""
    parts = _DIGITS.split(str(value))
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts if p != "")


def natural_order(values: Sequence[str]) -> np.ndarray:
    """Indices that sort ``values`` in natural order (stable)."""
    return np.array(sorted(range(len(values)), key=lambda i: natural_key(values[i])), dtype=np.int64)


class IdMap:
    """A bijection between external string ids and indices ``0..n-1`` (in insertion order)."""

    def __init__(self, ids: Iterable[str] = ()):
        self._ids: list[str] = []
        self._index: dict[str, int] = {}
        self.extend(ids, unique=True)

    @classmethod
    def from_values(cls, values: Iterable[str]) -> IdMap:
        """Ids in order of first appearance; repeated values are allowed."""
        return cls(dict.fromkeys(str(v) for v in values))

    def extend(self, ids: Iterable[str], unique: bool = False) -> np.ndarray:
        """Append ids not yet present; return the indices of all given ids.

        With ``unique=True`` a repeated id (in ``ids`` or already present) is an error.
        """
        out = []
        for raw in ids:
            key = str(raw)
            idx = self._index.get(key)
            if idx is None:
                idx = len(self._ids)
                self._index[key] = idx
                self._ids.append(key)
            elif unique:
                raise ValueError(f"duplicate id {key!r}")
            out.append(idx)
        self._cache = None
        return np.asarray(out, dtype=np.int64)

    @property
    def ids(self) -> np.ndarray:
        """(n,) object array of the external ids, position = index."""
        if getattr(self, "_cache", None) is None:
            self._cache = np.asarray(self._ids, dtype=object)
        return self._cache

    def index(self, ids: Iterable[str]) -> np.ndarray:
        """Indices of ``ids``; unknown ids raise ``KeyError`` naming (up to 5 of) them."""
        ids = [str(i) for i in ids]
        out = np.fromiter((self._index.get(i, -1) for i in ids), dtype=np.int64, count=len(ids))
        if (out < 0).any():
            missing = [ids[j] for j in np.flatnonzero(out < 0)[:5]]
            raise KeyError(f"{int((out < 0).sum())} unknown id(s), e.g. {missing}")
        return out

    def get(self, ids: Iterable[str], default: int = -1) -> np.ndarray:
        """Like :meth:`index` but unknown ids map to ``default``."""
        ids = list(ids)
        return np.fromiter((self._index.get(str(i), default) for i in ids), dtype=np.int64,
                           count=len(ids))

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, key: object) -> bool:
        return str(key) in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdMap) and self._ids == other._ids

    def __repr__(self) -> str:
        head = ", ".join(repr(i) for i in self._ids[:3])
        return f"IdMap(n={len(self)}: {head}{', ...' if len(self) > 3 else ''})"
