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

Across hosts (a PostgreSQL store shared by servers on several machines) the counters are
bumped by a :class:`StoreListener`, one per host: every write to a PostgreSQL store sends a
notification (``NOTIFY`` on :data:`CHANNEL`, delivered when the write commits) naming the kind
and the feed of the host that wrote it, and the listener bumps its host's counter for every
other host's write. The workers then catch up as they do for a local write, from the store.

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
import logging
import mmap
import os
import secrets
import struct
import tempfile
import threading
from pathlib import Path

log = logging.getLogger("crossrec.serve")

_COUNTER = "changes"
_ARTIFACT = "artifact"
_TOKEN = "token"
CHANNEL = "crossrec_changes"
"""The PostgreSQL notification channel of store writes (payload: ``"<kind> <feed token>"``)."""
APPLICATION_NAME = "crossrec-listener"
"""The listener's connection in ``pg_stat_activity``."""
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
        token = self.folder / _TOKEN
        # names this feed (one host's workers) in the store's notifications
        self.token = token.read_text() if token.exists() else ""

    @classmethod
    def create(cls, folder: str | os.PathLike | None = None) -> ChangeFeed:
        """A new feed with the counter at 0 (in a fresh temporary folder by default)."""
        folder = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="crossrec-feed-"))
        folder.mkdir(parents=True, exist_ok=True)
        (folder / _TOKEN).write_text(secrets.token_hex(8))
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


def libpq_url(url: str) -> str:
    """A SQLAlchemy PostgreSQL URL (``postgresql+psycopg://...``) as libpq takes it."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class StoreListener:
    """Bumps ``feed`` for every write another host makes to the PostgreSQL store at ``url``
    (a daemon thread on its own connection, ``LISTEN`` on :data:`CHANNEL`).

    When its connection drops it reconnects every ``retry_s`` seconds; on every (re)connection
    it bumps every kind once, so that what was written while it was not listening is read.
    ``connected`` is set while it listens.
    """

    def __init__(self, url: str, feed: ChangeFeed, retry_s: float = 1.0):
        if not url.startswith("postgresql"):
            raise ValueError(f"store notifications need a PostgreSQL store, not {url!r}")
        self.conninfo, self.feed, self.retry_s = libpq_url(url), feed, float(retry_s)
        self.connected = threading.Event()
        self.received = 0                         # notifications from other hosts
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="crossrec-store-listener",
                                        daemon=True)

    def start(self) -> StoreListener:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        import psycopg

        while not self._stop.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True, connect_timeout=10,
                                     application_name=APPLICATION_NAME) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    for kind in KINDS:               # what was written before we listened
                        self.feed.bump(kind)
                    self.connected.set()
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=0.5):
                            kind, _, origin = note.payload.partition(" ")
                            if kind in KINDS and origin != self.feed.token:
                                self.received += 1
                                self.feed.bump(kind)
            except psycopg.Error as e:
                self.connected.clear()
                log.warning("store notifications: %s; reconnecting in %.0f s",
                            str(e).strip() or type(e).__name__, self.retry_s)
                self._stop.wait(self.retry_s)
        self.connected.clear()


__all__ = ["CHANNEL", "KINDS", "ChangeFeed", "StoreListener", "libpq_url"]
