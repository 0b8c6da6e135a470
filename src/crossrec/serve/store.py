"""The service's event store: append-only feedback events plus the users and items that were
added while the service ran (SQLAlchemy 2 Core; SQLite by default, PostgreSQL by URL).

Tables:
    events   seq (autoincrement), event_id (the client's id, unique), user_id, item_id, type,
             value (rating, or play seconds), ts (client time, epoch seconds), received
    users    user_id, created, profile (JSON: e.g. the text a new user typed)
    items    item_id, medium, created, content (JSON: title, text fields, media paths,
             categories), features (npz bytes: modality -> encoded vector)

An event is acknowledged only after its transaction has committed. SQLite runs in WAL mode with
``synchronous=NORMAL`` by default: a committed transaction survives the process being killed
(SIGKILL); ``synchronous="FULL"`` also survives power loss, at a cost per commit. Inserting an
event whose ``event_id`` is already stored changes nothing and reports it as a duplicate, so
clients retry safely.

On PostgreSQL every write also sends a notification on
:data:`crossrec.serve.feed.CHANNEL` (``pg_notify``, in the write's transaction, so it is
delivered when the write commits, and not if it rolls back), saying what kind of row it wrote
and the ``origin`` the store was given: servers on other hosts catch up from it
(:class:`crossrec.serve.feed.StoreListener`). There the ``created`` time of users and items
is the database server's clock, not the writing host's, since servers catch up on them by that
time: hosts whose clocks disagree still see each other's writes.

Example:
    >>> store = EventStore("sqlite:///events.db")             # or postgresql+psycopg://...
    >>> store.add_events([{"event_id": "e1", "user_id": "u1", "item_id": "i9", "type": "like"}])
    [True]
    >>> [e.type for e in store.events(user_id="u1")]
    ['like']
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    select,
    text,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

EVENT_TYPES = ("view", "click", "like", "dislike", "skip", "play", "rating")
POSITIVE = ("click", "like", "play")
"""Event types that add the item to the user's history (a rating does when >= 4)."""
NEGATIVE = ("dislike", "skip")
"""Event types that push the item (and items like it) down for the user (a rating <= 2 too)."""

metadata = MetaData()
events_table = Table(
    "events", metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("event_id", String(128), nullable=False, unique=True),
    Column("user_id", String(256), nullable=False, index=True),
    Column("item_id", String(256), nullable=False),
    Column("type", String(16), nullable=False),
    Column("value", Float, nullable=True),
    Column("ts", Float, nullable=False),
    Column("received", Float, nullable=False),
)
users_table = Table(
    "users", metadata,
    Column("user_id", String(256), primary_key=True),
    Column("created", Float, nullable=False),
    Column("profile", Text, nullable=False, default="{}"),
)
items_table = Table(
    "items", metadata,
    Column("item_id", String(256), primary_key=True),
    Column("medium", String(64), nullable=False),
    Column("created", Float, nullable=False),
    Column("content", Text, nullable=False),
    Column("features", LargeBinary, nullable=False),
)


@dataclass(frozen=True)
class StoredEvent:
    seq: int
    event_id: str
    user_id: str
    item_id: str
    type: str
    value: float | None
    ts: float
    received: float

    @property
    def polarity(self) -> int:
        """+1 (adds to the history), -1 (pushes down) or 0 (only seen, e.g. a view)."""
        return event_polarity(self.type, self.value)


def event_polarity(kind: str, value: float | None) -> int:
    if kind in POSITIVE:
        return 1
    if kind in NEGATIVE:
        return -1
    if kind == "rating" and value is not None:
        return 1 if value >= 4 else (-1 if value <= 2 else 0)
    return 0


@dataclass(frozen=True)
class StoredItem:
    item_id: str
    medium: str
    created: float
    content: dict[str, Any]
    features: dict[str, np.ndarray]


def _pack(features: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v, np.float32) for k, v in features.items()})
    return buf.getvalue()


def _unpack(blob: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(blob), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


class EventStore:
    """Append-only events, run-time users and items, in one SQL database.

    Args:
        url: a SQLAlchemy URL: ``sqlite:///path.db`` (default ``sqlite:///crossrec-events.db``)
            or ``postgresql+psycopg://user@host:port/db``.
        synchronous: SQLite only, "NORMAL" (survives SIGKILL) or "FULL" (survives power loss).
        origin: PostgreSQL only, who writes, named in the write notifications (the token of
            the host's :class:`~crossrec.serve.feed.ChangeFeed`, whose listener skips them).
        notify: PostgreSQL only, send the notifications (False: no other host listens; on
            the serving benchmark they cost about 18% of the events/s).
    """

    def __init__(self, url: str = "sqlite:///crossrec-events.db", synchronous: str = "NORMAL",
                 origin: str = "", notify: bool = True):
        if synchronous.upper() not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous must be NORMAL or FULL, got {synchronous!r}")
        if " " in origin:
            raise ValueError(f"origin must not contain spaces, got {origin!r}")
        self.url, self.origin = url, origin
        self.dialect = url.split(":", 1)[0].split("+", 1)[0]
        self.notify = bool(notify) and self.dialect == "postgresql"
        if self.dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported store URL {url!r}: use sqlite:///FILE or "
                             f"postgresql+psycopg://...")
        kwargs: dict[str, Any] = {}
        if self.dialect == "sqlite":
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs.update(pool_size=8, max_overflow=16, pool_pre_ping=True)
        self.engine: Engine = create_engine(url, **kwargs)
        if self.dialect == "sqlite":
            sync = synchronous.upper()

            @event.listens_for(self.engine, "connect")
            def _pragmas(dbapi_conn, _record):                   # every new connection
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute(f"PRAGMA synchronous={sync}")
                cur.execute("PRAGMA busy_timeout=30000")
                cur.close()
        # Another process (a worker starting beside this one) may create a table or index
        # between create_all's check and its CREATE. Each such failure means one more object
        # exists, so at most one pass per object fails; any other error fails every pass.
        objects = sum(1 + len(t.indexes) for t in metadata.tables.values())
        for attempt in range(objects + 1):
            try:
                metadata.create_all(self.engine)
                break
            except DBAPIError:
                if attempt == objects:
                    raise

    def _notify(self, conn: Connection, kind: str) -> None:
        """Tell listening servers (on commit) that rows of ``kind`` were written."""
        if self.notify:
            from crossrec.serve.feed import CHANNEL

            conn.execute(text("SELECT pg_notify(:channel, :payload)"),
                         {"channel": CHANNEL, "payload": f"{kind} {self.origin}"})

    def _created(self):
        """The ``created`` value of a new user or item: the database server's clock on
        PostgreSQL (one clock for every host), this host's on SQLite (one host)."""
        if self.dialect == "postgresql":
            return func.extract("epoch", func.clock_timestamp())
        return time.time()

    def _insert(self, table: Table):
        if self.dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:
            from sqlalchemy.dialects.postgresql import insert
        return insert(table)

    # -- events -------------------------------------------------------------------------------
    def add_events(self, events: Sequence[dict[str, Any]]) -> list[bool]:
        """Store events in one transaction; per event True if new, False if its ``event_id``
        was already stored. Each event: event_id, user_id, item_id, type (one of
        :data:`EVENT_TYPES`), optional value and ts (default: now)."""
        return [seq is not None for seq in self.add_events_seq(events)]

    def add_events_seq(self, events: Sequence[dict[str, Any]]) -> list[int | None]:
        """:meth:`add_events`, saying per event its ``seq`` if new, None if a duplicate."""
        if not events:
            return []
        now = time.time()
        rows = []
        for e in events:
            if e["type"] not in EVENT_TYPES:
                raise ValueError(f"unknown event type {e['type']!r}; expected one of {EVENT_TYPES}")
            rows.append({"event_id": str(e["event_id"]), "user_id": str(e["user_id"]),
                         "item_id": str(e["item_id"]), "type": e["type"],
                         "value": None if e.get("value") is None else float(e["value"]),
                         "ts": float(e.get("ts") or now), "received": now})
        ids = [r["event_id"] for r in rows]
        if len(set(ids)) != len(ids):                  # repeated inside one batch: keep first
            seen: set[str] = set()
            rows = [r for r in rows if not (r["event_id"] in seen or seen.add(r["event_id"]))]
        stmt = self._insert(events_table).values(rows).on_conflict_do_nothing(
            index_elements=["event_id"]).returning(events_table.c.event_id, events_table.c.seq)
        with self.engine.begin() as conn:
            new = {r[0]: int(r[1]) for r in conn.execute(stmt)}
            if new:
                self._notify(conn, "events")
        out, claimed = [], set()
        for i in ids:
            out.append(new[i] if i in new and i not in claimed else None)
            claimed.add(i)
        return out

    def events(self, user_id: str | None = None, after_seq: int = 0,
               limit: int | None = None, seqs: Sequence[int] | None = None
               ) -> list[StoredEvent]:
        """Stored events in arrival order (``seq``), optionally of one user / after a seq /
        with one of the sequence numbers ``seqs``."""
        q = select(events_table).where(events_table.c.seq > after_seq).order_by(events_table.c.seq)
        if seqs is not None:
            q = q.where(events_table.c.seq.in_([int(x) for x in seqs]))
        if user_id is not None:
            q = q.where(events_table.c.user_id == str(user_id))
        if limit is not None:
            q = q.limit(limit)
        with self.engine.connect() as conn:
            return [StoredEvent(**r._mapping) for r in conn.execute(q)]

    def iter_events(self, batch: int = 10_000) -> Iterator[StoredEvent]:
        last = 0
        while True:
            chunk = self.events(after_seq=last, limit=batch)
            if not chunk:
                return
            yield from chunk
            last = chunk[-1].seq

    def count_events(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(events_table)).scalar_one())

    def event_ids(self) -> set[str]:
        with self.engine.connect() as conn:
            return {r[0] for r in conn.execute(select(events_table.c.event_id))}

    # -- users --------------------------------------------------------------------------------
    def add_user(self, user_id: str, profile: dict[str, Any] | None = None) -> bool:
        """Persist a user created at run time; False if the id was already stored."""
        stmt = self._insert(users_table).values(
            user_id=str(user_id), created=self._created(),
            profile=json.dumps(profile or {}, ensure_ascii=False)).on_conflict_do_nothing(
            index_elements=["user_id"]).returning(users_table.c.user_id)
        with self.engine.begin() as conn:
            added = conn.execute(stmt).first() is not None
            if added:
                self._notify(conn, "users")
            return added

    def users(self, since: float | None = None) -> list[tuple[str, dict[str, Any], float]]:
        """(user_id, profile, created) in creation order; with ``since``, those created at
        or after that time."""
        q = select(users_table).order_by(users_table.c.created)
        if since is not None:
            q = q.where(users_table.c.created >= float(since))
        with self.engine.connect() as conn:
            return [(r.user_id, json.loads(r.profile), r.created) for r in conn.execute(q)]

    # -- items --------------------------------------------------------------------------------
    def add_item(self, item_id: str, medium: str, content: dict[str, Any],
                 features: dict[str, np.ndarray]) -> bool:
        """Persist an item added at run time with its encoded features; False if it exists."""
        stmt = self._insert(items_table).values(
            item_id=str(item_id), medium=medium, created=self._created(),
            content=json.dumps(content, ensure_ascii=False), features=_pack(features)
        ).on_conflict_do_nothing(index_elements=["item_id"]).returning(items_table.c.item_id)
        with self.engine.begin() as conn:
            added = conn.execute(stmt).first() is not None
            if added:
                self._notify(conn, "items")
            return added

    def items(self, since: float | None = None) -> list[StoredItem]:
        """Items added at run time in creation order; with ``since``, those created at or
        after that time."""
        q = select(items_table).order_by(items_table.c.created)
        if since is not None:
            q = q.where(items_table.c.created >= float(since))
        with self.engine.connect() as conn:
            rows = conn.execute(q)
            return [StoredItem(r.item_id, r.medium, r.created, json.loads(r.content),
                               _unpack(r.features)) for r in rows]

    def close(self) -> None:
        self.engine.dispose()


__all__ = ["EVENT_TYPES", "NEGATIVE", "POSITIVE", "EventStore", "StoredEvent", "StoredItem",
           "event_polarity"]
