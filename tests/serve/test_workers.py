"""Several worker processes: a write acknowledged by one worker is served by every worker at
once (the change feed plus the store), and SIGHUP or the admin route reloads every worker
with no failed request."""

from __future__ import annotations

import http.client
import json
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from fastapi.testclient import TestClient

from crossrec.serve.app import create_app
from crossrec.serve.feed import ChangeFeed

KEY = "test-key-123"


def _bump_many(folder, n):
    feed = ChangeFeed(folder)
    for _ in range(n):
        feed.bump("events")


def test_change_feed_is_shared_and_never_loses_a_bump(tmp_path):
    feed = ChangeFeed.create(tmp_path / "feed")
    other = ChangeFeed(feed.folder)
    assert feed.changes() == (0, 0, 0)
    assert other.bump("events") == 1 and other.bump("items") == 1
    assert feed.changes() == (1, 0, 1)
    with pytest.raises(ValueError, match="unknown change kind"):
        feed.bump("ratings")
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_bump_many, args=(str(feed.folder), 300)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert feed.changes() == (1 + 900, 0, 1)
    assert feed.request_reload() == 1 and other.reloads() == 1
    assert feed.artifact() is None
    other.set_artifact(tmp_path / "art")
    assert feed.artifact() == (tmp_path / "art").resolve()
    with pytest.raises(FileNotFoundError, match="not a change feed"):
        ChangeFeed(tmp_path)


@pytest.fixture
def two_workers(content_artifact, demo_dir, store_url, tmp_path):
    """Two apps over one store and one feed, as two worker processes would be."""
    feed = ChangeFeed.create(tmp_path / "feed")
    apps = [create_app(content_artifact, store_url=store_url, media_root=demo_dir,
                       api_keys=[KEY], feed_dir=str(feed.folder)) for _ in range(2)]
    with TestClient(apps[0]) as a, TestClient(apps[1]) as b:
        yield a, b


def _ids(resp):
    assert resp.status_code == 200, resp.text
    return [i["item_id"] for i in resp.json()["items"]]


def _events(client, user):
    return client.app.state.service.feedback[user].events


def test_an_event_on_one_worker_changes_the_next_list_on_the_other(two_workers):
    a, b = two_workers
    url = "/v1/users/u0003/recommendations?k=10"
    before = _ids(b.get(url))
    assert before == _ids(a.get(url))
    top = before[0]
    r = a.post("/v1/events", json={"events": [{"event_id": "e1", "user_id": "u0003",
                                               "item_id": top, "type": "like"}]})
    assert r.json()["stored"] == 1
    after_b = _ids(b.get(url))
    assert top not in after_b and after_b != before            # seen now, and the taste moved
    assert after_b == _ids(a.get(url))
    # applied once on each worker, also when the same event is sent again to the other one
    r = b.post("/v1/events", json={"events": [{"event_id": "e1", "user_id": "u0003",
                                               "item_id": top, "type": "like"}]})
    assert r.json()["duplicates"] == 1
    b.get(url)
    assert _events(a, "u0003") == _events(b, "u0003") == [(top, 1)]


def test_users_and_items_added_on_one_worker_are_served_by_the_other(two_workers):
    a, b = two_workers
    r = a.post("/v1/users", json={"user_id": "newbie", "likes": "jazz saxophone"})
    assert r.status_code == 201, r.text
    assert b.get("/v1/users/newbie/recommendations?k=3").status_code == 200
    r = b.post("/v1/users", json={"user_id": "newbie", "likes": "ocean"})
    assert r.status_code == 409 and "exists" in r.json()["error"]
    form = {"item_id": "new-jazz", "medium": "article", "title": "Bebop saxophone nights",
            "description": "Trumpet and saxophone improvisation in a jazz club"}
    assert a.post("/v1/items", data=form, headers={"X-API-Key": KEY}).status_code == 201
    got = b.get("/v1/items/new-jazz")
    assert got.status_code == 200 and got.json()["live"]
    assert "new-jazz" in _ids(b.get("/v1/search", params={"q": "bebop saxophone", "k": 5}))
    assert b.post("/v1/items", data=form, headers={"X-API-Key": KEY}).status_code == 409


def test_an_event_committed_late_below_the_highest_seq_is_still_applied(two_workers):
    """On PostgreSQL a transaction can commit after one with a higher sequence number."""
    from crossrec.serve.store import events_table

    a, b = two_workers
    svc = b.app.state.service
    now = time.time()

    def commit(seq, item):
        with svc.store.engine.begin() as conn:
            conn.execute(events_table.insert().values(
                seq=seq, event_id=f"late-{seq}", user_id="u0004", item_id=item, type="like",
                value=None, ts=now, received=now))
        svc.feed.bump("events")

    commit(1000, "article-0001")
    assert svc.sync() and _events(b, "u0004") == [("article-0001", 1)]
    commit(998, "article-0002")                          # lands after 1000
    assert svc.sync()
    assert _events(b, "u0004") == [("article-0001", 1), ("article-0002", 1)]
    a.app.state.service.sync()
    assert sorted(_events(a, "u0004")) == sorted(_events(b, "u0004"))
    svc.feed.bump("events")
    assert svc.sync() and len(_events(b, "u0004")) == 2  # nothing applied twice


# -- the real thing: `crossrec serve --workers 2` ----------------------------------------------

def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _on_one_connection(port, paths):
    """GET each path on one keep-alive connection (so one worker answers them all)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        out = []
        for path in paths:
            conn.request("GET", path)
            resp = conn.getresponse()
            out.append((resp.status, json.loads(resp.read() or b"null")))
        return out
    finally:
        conn.close()


def _per_worker(port, path, within_s=60.0):
    """{worker pid: the response to path} once two workers have answered (a worker still
    loading accepts no connection)."""
    seen, deadline = {}, time.time() + within_s
    while time.time() < deadline:
        (s1, ready), (s2, body) = _on_one_connection(port, ["/readyz", path])
        assert s1 == 200 and s2 == 200, body
        seen[ready["worker"]] = body
        if len(seen) == 2:
            return seen
        time.sleep(0.05)
    raise AssertionError(f"only workers {sorted(seen)} answered in {within_s:.0f} s")


def _metrics_per_worker(port, within_s=60.0):
    """[(worker pid, /metrics text)] from two different workers."""
    seen, deadline = {}, time.time() + within_s
    while len(seen) < 2 and time.time() < deadline:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("GET", "/readyz")
            pid = json.loads(conn.getresponse().read())["worker"]
            conn.request("GET", "/metrics")
            seen[pid] = conn.getresponse().read().decode()
        finally:
            conn.close()
    return list(seen.items())


def _recommendation_count(text: str) -> float:
    """The scraped count of answered recommendation requests (status 200)."""
    for line in text.splitlines():
        if line.startswith("crossrec_request_seconds_count{") and \
                'route="/v1/users/{user_id}/recommendations"' in line and 'status="200"' in line:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError("no recommendations count in /metrics")


def _reload_to(port, model, failures, deadline_s=90):
    """Wait until every worker serves ``model``; no request may fail meanwhile."""
    deadline = time.time() + deadline_s
    while True:
        models = {r["model"] for r in _per_worker(port, "/readyz").values()}
        if models == {model}:
            return
        assert time.time() < deadline, f"workers still serve {models}; failures {failures}"
        time.sleep(0.3)


def _serve_two_workers(artifact, store_url, port):
    """`crossrec serve --workers 2` in its own process, once it answers."""
    proc = subprocess.Popen([sys.executable, "-m", "crossrec.cli", "serve", str(artifact),
                             "--port", str(port), "--store", store_url,
                             "--workers", "2", "--lazy-encoders"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "CROSSREC_API_KEYS": "k"})
    deadline = time.time() + 90
    while True:
        try:
            _on_one_connection(port, ["/readyz"])
            return proc
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                raise AssertionError(proc.stdout.read() if proc.poll() is not None
                                     else "no readiness") from None
            time.sleep(0.3)


@pytest.mark.slow
def test_serve_with_two_workers_shares_writes_and_reloads_without_failures(
        als_artifact, content_artifact, tmp_path):
    served = tmp_path / "served"
    shutil.copytree(als_artifact, served)
    port = _free_port()
    proc = _serve_two_workers(served, f"sqlite:///{tmp_path / 'ev.db'}", port)
    try:
        url = "/v1/users/u0002/recommendations?k=10"
        before = _per_worker(port, url)
        first = {tuple(i["item_id"] for i in b["items"]) for b in before.values()}
        assert len(first) == 1                                 # the same model in both
        top = next(iter(first))[0]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/v1/events", body=json.dumps({"events": [
            {"event_id": "w1", "user_id": "u0002", "item_id": top, "type": "like"}]}),
            headers={"Content-Type": "application/json"})
        assert json.loads(conn.getresponse().read())["stored"] == 1
        conn.close()
        for body in _per_worker(port, url).values():           # both workers, at once
            assert top not in [i["item_id"] for i in body["items"]]

        # /metrics from either worker counts the requests both answered
        for _ in range(30):
            assert _on_one_connection(port, [url])[0][0] == 200
        for _ in range(20):          # a worker records a request just after answering it
            counts = {pid: _recommendation_count(text)
                      for pid, text in _metrics_per_worker(port)}
            if len(set(counts.values())) == 1:
                break
            time.sleep(0.1)
        assert len(counts) == 2 and len(set(counts.values())) == 1, counts
        assert next(iter(counts.values())) >= 30 + 4

        # reloads while requests keep coming: SIGHUP to the supervisor, then the admin route
        failures, done, stop = [], [0], threading.Event()

        def load():
            while not stop.is_set():
                try:
                    [(status, _)] = _on_one_connection(port, [url])
                    if status != 200:
                        failures.append(status)
                    done[0] += 1
                except OSError as e:
                    failures.append(repr(e))

        t = threading.Thread(target=load)
        t.start()
        try:
            nxt = tmp_path / "next"
            shutil.copytree(content_artifact, nxt)
            shutil.rmtree(served)
            os.replace(nxt, served)
            proc.send_signal(signal.SIGHUP)
            _reload_to(port, "content", failures)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("POST", "/v1/admin/reload", body=json.dumps({"path": str(als_artifact)}),
                         headers={"Content-Type": "application/json", "X-API-Key": "k"})
            resp = conn.getresponse()
            assert resp.status == 200, resp.read()
            conn.close()
            _reload_to(port, "als", failures)
        finally:
            stop.set()
            t.join(30)
        assert failures == [] and done[0] > 0
        for body in _per_worker(port, url).values():           # feedback kept across reloads
            assert top not in [i["item_id"] for i in body["items"]]
        for _, text in _metrics_per_worker(port):                # both reloaded: als served
            info = {line.split("{")[1].split("}")[0]: float(line.rsplit(" ", 1)[1])
                    for line in text.splitlines() if line.startswith("crossrec_model_info{")}
            assert sorted(info.values()) == [0.0, 1.0] or sorted(info.values()) == [1.0], info
            assert [k for k, v in info.items() if v == 1.0][0].startswith('model="als"')
    finally:
        proc.terminate()
        proc.wait(20)


# -- several hosts over one PostgreSQL store ---------------------------------------------------

def _until(check, timeout=10.0):
    """Poll ``check`` until it is truthy (its value) or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def two_hosts(content_artifact, demo_dir, pg_url):
    """Two single-process servers over one PostgreSQL store and no shared feed, as on two
    machines."""
    apps = [create_app(content_artifact, store_url=pg_url, media_root=demo_dir,
                       api_keys=[KEY]) for _ in range(2)]
    with TestClient(apps[0]) as a, TestClient(apps[1]) as b:
        for c in (a, b):
            assert c.app.state.listener.connected.wait(10)
        yield a, b


def test_a_write_on_one_host_changes_the_next_list_on_another(two_hosts):
    a, b = two_hosts
    assert a.app.state.service.feed.folder != b.app.state.service.feed.folder
    url = "/v1/users/u0005/recommendations?k=10"
    before = _ids(b.get(url))
    top = before[0]
    r = a.post("/v1/events", json={"events": [{"event_id": "h1", "user_id": "u0005",
                                               "item_id": top, "type": "like"}]})
    assert r.json()["stored"] == 1
    after = _until(lambda: (ids := _ids(b.get(url))) != before and ids)
    assert top not in after and after == _ids(a.get(url))
    assert _events(b, "u0005") == [(top, 1)] == _events(a, "u0005")
    r = b.post("/v1/users", json={"user_id": "far-away", "likes": "jazz saxophone"})
    assert r.status_code == 201, r.text
    _until(lambda: a.get("/v1/users/far-away/recommendations?k=3").status_code == 200)
    # each host heard the other's write only: its own came through its own feed
    assert a.app.state.listener.received == 1 and b.app.state.listener.received == 1


def test_users_and_items_of_a_host_whose_clock_is_behind_reach_the_other_host(two_hosts,
                                                                                monkeypatch):
    """Servers catch up on users and items by their creation time: on PostgreSQL it is the
    database's clock, so a writer whose own clock is an hour behind is not missed."""
    a, b = two_hosts
    form = {"item_id": "on-time-sea", "medium": "article", "title": "Waves on the open ocean",
            "description": "Sailing across the sea"}
    assert b.post("/v1/users", json={"user_id": "on-time", "likes": "ocean"}).status_code == 201
    assert b.post("/v1/items", data=form, headers={"X-API-Key": KEY}).status_code == 201
    _until(lambda: a.get("/v1/users/on-time/recommendations?k=3").status_code == 200)
    _until(lambda: a.get("/v1/items/on-time-sea").status_code == 200)
    real = time.time
    form = {"item_id": "late-jazz", "medium": "article", "title": "Bebop saxophone nights",
            "description": "Trumpet and saxophone improvisation in a jazz club"}
    with monkeypatch.context() as m:                # host a's clock, an hour behind
        m.setattr(time, "time", lambda: real() - 3600)
        r = a.post("/v1/users", json={"user_id": "late", "likes": "jazz saxophone"})
        assert r.status_code == 201, r.text
        assert a.post("/v1/items", data=form, headers={"X-API-Key": KEY}).status_code == 201
    _until(lambda: b.get("/v1/users/late/recommendations?k=3").status_code == 200)
    _until(lambda: b.get("/v1/items/late-jazz").status_code == 200)
    created = {u: c for u, _, c in b.app.state.service.store.users()}
    assert abs(created["late"] - real()) < 60 and created["late"] >= created["on-time"]


def test_the_store_listener_skips_its_own_host_reconnects_and_catches_up(pg_url, tmp_path):
    from sqlalchemy import create_engine, text

    from crossrec.serve.feed import APPLICATION_NAME, StoreListener
    from crossrec.serve.store import EventStore

    feed = ChangeFeed.create(tmp_path / "feed")
    listener = StoreListener(pg_url, feed, retry_s=0.2).start()
    own, other = EventStore(pg_url, origin=feed.token), EventStore(pg_url, origin="elsewhere")
    try:
        assert listener.connected.wait(10)
        start = feed.changes()
        assert start == (1, 1, 1)                       # the catch-up bump on connecting

        def event(store, n):
            assert store.add_events([{"event_id": f"x{n}", "user_id": "u", "item_id": "i",
                                      "type": "like"}]) == [True]

        event(own, 1)                                   # this host's: skipped
        event(other, 2)                                 # another's: counted, in commit order
        _until(lambda: feed.changes()[0] == 2)
        assert own.add_events([{"event_id": "x2", "user_id": "u", "item_id": "i",
                                "type": "like"}]) == [False]       # a duplicate: no notice
        assert other.add_user("someone") and feed.changes()[0] == 2
        _until(lambda: feed.changes() == (2, 2, 1))
        assert listener.received == 2
        engine = create_engine(pg_url)                  # its connection drops ...
        with engine.begin() as conn:
            killed = conn.execute(text("SELECT count(pg_terminate_backend(pid)) FROM "
                                       "pg_stat_activity WHERE application_name = :n"),
                                  {"n": APPLICATION_NAME}).scalar_one()
        engine.dispose()
        assert killed == 1
        event(other, 3)                                 # ... a write it cannot hear ...
        _until(lambda: feed.changes() == (3, 3, 2))     # ... is caught up on reconnecting
        assert listener.connected.wait(10)
    finally:
        listener.stop()
        own.close()
        other.close()
        feed.close()
    with pytest.raises(ValueError, match="need a PostgreSQL store"):
        StoreListener(f"sqlite:///{tmp_path / 'x.db'}", feed)


def test_one_process_on_sqlite_keeps_no_feed(content_artifact, demo_dir, tmp_path):
    app = create_app(content_artifact, store_url=f"sqlite:///{tmp_path / 'e.db'}",
                     media_root=demo_dir)
    with TestClient(app) as c:
        assert c.app.state.service.feed is None and c.app.state.listener is None


def test_a_single_host_on_postgresql_sends_no_notifications(content_artifact, demo_dir, pg_url):
    from sqlalchemy import text

    app = create_app(content_artifact, store_url=pg_url, media_root=demo_dir, listen=False)
    with TestClient(app) as c:
        svc = c.app.state.service
        assert svc.feed is None and c.app.state.listener is None and not svc.store.notify
        with svc.store.engine.connect() as conn:         # a listener of our own hears nothing
            conn.execute(text("LISTEN crossrec_changes"))
            conn.commit()
            r = c.post("/v1/events", json={"events": [{"event_id": "s1", "user_id": "u0001",
                                                       "item_id": "article-0000",
                                                       "type": "like"}]})
            assert r.status_code == 200 and r.json()["stored"] == 1, r.text
            conn.execute(text("SELECT 1"))
            assert list(conn.connection.dbapi_connection.notifies(timeout=0.5)) == []


@pytest.mark.slow
def test_two_workers_on_one_host_serve_a_write_made_on_another(content_artifact, demo_dir,
                                                               pg_url):
    """`crossrec serve --workers 2` (its supervisor listens) beside a server on "another
    host" (an app in this process with its own feed) over one PostgreSQL store."""
    port = _free_port()
    proc = _serve_two_workers(content_artifact, pg_url, port)
    try:
        url = "/v1/users/u0006/recommendations?k=10"
        before = {tuple(i["item_id"] for i in b["items"]) for b in _per_worker(port, url).values()}
        assert len(before) == 1
        top = next(iter(before))[0]
        with TestClient(create_app(content_artifact, store_url=pg_url,
                                   media_root=demo_dir)) as other:
            r = other.post("/v1/events", json={"events": [{
                "event_id": "w1", "user_id": "u0006", "item_id": top, "type": "like"}]})
            assert r.json()["stored"] == 1

        def moved():
            lists = [[i["item_id"] for i in b["items"]] for b in _per_worker(port, url).values()]
            return all(top not in ids for ids in lists) and lists
        lists = _until(moved)
        assert lists[0] == lists[1]
    finally:
        proc.terminate()
        proc.wait(20)
