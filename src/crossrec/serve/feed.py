"""What the worker processes of one ``crossrec serve --workers N`` share, besides the store.

Every worker keeps its own copy of the model, the index and each user's feedback. A worker that
writes to the event store bumps the change counter of what it wrote (events, users or items)
after the commit; every worker compares the counters with the values it last caught up to
before it answers a request, and on a difference reads what is new of that kind from the store.
So a write acknowledged by one worker shows in the next request to any worker (one host; the
counters live in a shared memory-mapped file). Reading them costs a few hundred nanoseconds.

A second counter asks the workers to reload the artifact (SIGHUP to the supervising process,
or ``POST /v1/admin/reload`` to any worker): each worker watches it and swaps in the artifact
whose path the folder holds, in place, serving the old one until the new one is loaded.

Example:
    >>> feed = ChangeFeed.create()                         # in the supervising process
    >>> worker = ChangeFeed(feed.folder)                   # in each worker
    >>> worker.bump("events"); feed.changes()
    (1, 0, 0)
    >>> feed.request_reload(); worker.reloads()
    1
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
import tempfile
from pathlib import Path

_COUNTER = "changes"
_ARTIFACT = "artifact"
KINDS = ("events", "users", "items")
"""What a change counter counts, in the order of :meth:`ChangeFeed.changes`."""
_RELOADS = 8 * len(KINDS)                     # the offset of the reload-request counter


class ChangeFeed:
    """A change counter and the served artifact path, in a folder shared by the workers."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        path = self.folder / _COUNTER
        if not path.exists():
            raise FileNotFoundError(f"{self.folder} is not a change feed (no {_COUNTER} file)")
        self._fd = os.open(path, os.O_RDWR)
        self._map = mmap.mmap(self._fd, _RELOADS + 8)   # [events, users, items, reloads]

    @classmethod
    def create(cls, folder: str | os.PathLike | None = None) -> ChangeFeed:
        """A new feed with the counter at 0 (in a fresh temporary folder by default)."""
        folder = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="crossrec-feed-"))
        folder.mkdir(parents=True, exist_ok=True)
        (folder / _COUNTER).write_bytes(b"\0" * (_RELOADS + 8))
        return cls(folder)

    def changes(self) -> tuple[int, ...]:
        """The change counters of :data:`KINDS`."""
        return struct.unpack_from(f"<{len(KINDS)}Q", self._map, 0)

    def reloads(self) -> int:
        """The reload-request counter."""
        return struct.unpack_from("<Q", self._map, _RELOADS)[0]

    def bump(self, kind: str) -> int:
        """Count a change of ``kind`` (one of :data:`KINDS`; under an exclusive lock, so
        concurrent writers never lose one); returns the new count."""
        if kind not in KINDS:
            raise ValueError(f"unknown change kind {kind!r}; expected one of {KINDS}")
        return self._add(8 * KINDS.index(kind))

    def request_reload(self) -> int:
        """Ask every worker to reload the artifact."""
        return self._add(_RELOADS)

    def _add(self, offset: int) -> int:
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            n = struct.unpack_from("<Q", self._map, offset)[0] + 1
            struct.pack_into("<Q", self._map, offset, n)
            return n
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def artifact(self) -> Path | None:
        """The artifact path last set with :meth:`set_artifact` (None: the configured one)."""
        path = self.folder / _ARTIFACT
        return Path(path.read_text()) if path.exists() else None

    def set_artifact(self, artifact: str | os.PathLike) -> None:
        tmp = self.folder / f"{_ARTIFACT}.tmp"
        tmp.write_text(str(Path(artifact).resolve()))
        os.replace(tmp, self.folder / _ARTIFACT)

    def close(self) -> None:
        self._map.close()
        os.close(self._fd)


__all__ = ["KINDS", "ChangeFeed"]
