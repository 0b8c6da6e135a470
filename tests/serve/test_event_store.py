"""Event store: idempotent append-only events, run-time users and items, and no acknowledged
event lost when the writing process is killed with SIGKILL, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from crossrec.serve.store import EventStore, event_polarity


def _ev(i, user="u1", item="i1", kind="like", value=None):
    return {"event_id": f"e{i}", "user_id": user, "item_id": item, "type": kind, "value": value}


def test_events_are_idempotent_and_ordered(store_url):
    store = EventStore(store_url)
    assert store.add_events([_ev(1), _ev(2, item="i2", kind="play", value=31.5)]) == [True, True]
    # a retry of e1 with e3: e1 is a duplicate and changes nothing
    assert store.add_events([_ev(1, kind="dislike"), _ev(3, user="u2")]) == [False, True]
    assert store.add_events([_ev(4), _ev(4)]) == [True, False]      # repeated in one batch
    evs = store.events(user_id="u1")
    assert [(e.event_id, e.type, e.value) for e in evs] == [("e1", "like", None),
                                                            ("e2", "play", 31.5), ("e4", "like", None)]
    assert store.count_events() == 4
    assert [e.event_id for e in store.iter_events(batch=2)] == ["e1", "e2", "e3", "e4"]
    assert store.event_ids() == {"e1", "e2", "e3", "e4"}
    with pytest.raises(ValueError, match="unknown event type 'wink'"):
        store.add_events([_ev(9, kind="wink")])
    store.close()


def test_users_and_items_persist_across_reopen(store_url):
    store = EventStore(store_url)
    assert store.add_user("newbie", {"likes": "jazz and the ocean"})
    assert not store.add_user("newbie")
    vec = np.arange(5, dtype=np.float32)
    assert store.add_item("new-1", "article", {"title": "Tides"}, {"text": vec})
    assert not store.add_item("new-1", "article", {}, {})
    store.close()
    again = EventStore(store_url)
    assert [(u, p) for u, p, _ in again.users()] == [("newbie", {"likes": "jazz and the ocean"})]
    [item] = again.items()
    assert (item.item_id, item.medium, item.content) == ("new-1", "article", {"title": "Tides"})
    np.testing.assert_array_equal(item.features["text"], vec)
    again.close()


def test_polarity_of_event_types():
    assert [event_polarity(k, None) for k in ("like", "click", "play", "view", "dislike", "skip")] \
        == [1, 1, 1, 0, -1, -1]
    assert [event_polarity("rating", v) for v in (5, 4, 3, 2, 1)] == [1, 1, 0, -1, -1]


def test_unsupported_url_is_a_clear_error():
    with pytest.raises(ValueError, match="unsupported store URL"):
        EventStore("mysql://x")


WRITER = r"""
import sys
from crossrec.serve.store import EventStore
store = EventStore(sys.argv[1])
i = 0
while True:
    batch = [{"event_id": f"k{i + j}", "user_id": "u", "item_id": "x", "type": "view"}
             for j in range(5)]
    store.add_events(batch)
    for e in batch:
        print(e["event_id"], flush=True)                 # acknowledged only after commit
    i += 5
"""


def test_no_acknowledged_event_is_lost_on_sigkill(store_url, tmp_path):
    EventStore(store_url).close()                        # tables exist before the writer starts
    proc = subprocess.Popen([sys.executable, "-c", WRITER, store_url], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    acked = []
    deadline = time.time() + 60
    while len(acked) < 300 and time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        acked.append(line.strip())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    acked += [line.strip() for line in proc.stdout.read().splitlines() if line.strip()]
    assert len(acked) >= 300
    stored = EventStore(store_url).event_ids()
    assert set(acked) <= stored, f"{len(set(acked) - stored)} acknowledged events lost"


def test_add_events_seq_gives_the_sequence_number_of_each_new_event(store_url):
    store = EventStore(store_url)
    e = {"user_id": "u", "item_id": "i", "type": "like"}
    first = store.add_events_seq([{**e, "event_id": "a"}, {**e, "event_id": "b"}])
    again = store.add_events_seq([{**e, "event_id": "b"}, {**e, "event_id": "c"},
                                  {**e, "event_id": "c"}])
    assert first[0] < first[1] and again[0] is None and again[2] is None
    assert again[1] > first[1]
    assert [x.seq for x in store.events()] == [first[0], first[1], again[1]]
    store.close()


OPEN_AT = """
import sys, time
from crossrec.serve.store import EventStore
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
EventStore(sys.argv[1]).close()
"""


def test_processes_creating_a_new_store_at_once_all_start(store_url, tmp_path):
    # `crossrec serve --workers N` on a fresh store: every worker creates the schema at once
    from conftest import _fresh_pg

    for attempt in range(3):
        url = (f"sqlite:///{tmp_path / f'race-{attempt}.db'}" if store_url.startswith("sqlite")
               else _fresh_pg(store_url))
        at = time.time() + 3.0                         # after the imports, all together
        procs = [subprocess.Popen([sys.executable, "-c", OPEN_AT, url, str(at)],
                                  stderr=subprocess.PIPE, text=True) for _ in range(4)]
        errors = [p.communicate(timeout=120)[1] for p in procs]
        assert [p.returncode for p in procs] == [0] * 4, "\n".join(errors)
        store = EventStore(url)
        assert store.add_events([{"event_id": "e", "user_id": "u", "item_id": "i",
                                  "type": "like"}]) == [True]
        store.close()
