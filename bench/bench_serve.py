"""Serving benchmark: a separate load-generating process against `crossrec serve` on loopback.

    .venv/bin/python bench/bench_serve.py --sizes 10000,100000,1000000 --duration 30 \
        --pg-url postgresql+psycopg://postgres@127.0.0.1:5432/bench

1. Recommendations: synthetic artifacts of N items (clustered 64-d vectors in four media, an
   ALS-shaped model, 10k users with 20 items each); `crossrec serve` in its own process (the
   index is prebuilt into the artifact: exact up to 50k items, ``--index`` above, IVF by
   default); 50 concurrent
   keep-alive clients (asyncio, in this process) ask for k=10 for random users for
   ``--duration`` seconds after a warm-up. Client-side p50 / p99 latency, throughput, errors,
   and the recall@10 of the approximate index against exact search on 200 queries.
   With ``latency``, the same with one client (no queueing: the time a request takes).
   With ``open``, open-loop load: 50 clients together send ``--rate`` requests/s on a fixed
   schedule, latency counted from each request's scheduled time (so a server that falls behind
   is charged for the wait: no coordinated omission).
   With ``workers``, the closed and the open loop each with 1 and with 2 worker processes
   (``crossrec serve --workers 2``), one after the other per size; ``--event-workers 1,2`` does
   the same for event ingestion (part 2).
   With ``--generator c`` the closed loops take their load from Debian's ``wrk`` (C, one
   thread, 50 keep-alive connections, random users from a Lua script) instead of this
   process's asyncio clients, which cost the two shared cores more; the open loop stays the
   asyncio scheduler above (h2load's ``--rps`` was tried: its 50 connections fire in phase,
   bursts of 50 requests every 50 ms, not a steady rate). Files with wrk's closed loops get a
   ``-c`` suffix.
2. Events: 50 clients POST one event each per request to SQLite (WAL) and, with --pg-url,
   PostgreSQL; events/s sustained.
   With ``recall``, recall@10 and query time per beam width (HNSW efSearch) or per number of
   lists probed (IVF nprobe).
3. Kill -9: under event load the server is killed with SIGKILL; every event acknowledged with
   HTTP 200 "stored" is looked up in the store.

Results: one JSON file per part in bench/results/serve/.
"""

# ruff: noqa: B023  (the closures below run within their loop iteration)
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "serve"
MEDIA = np.array(["article", "picture", "audio", "video"], dtype=object)
HNSW_OPTIONS = {"hnsw_m": 32, "ef_construction": 80, "ef_search": 128}   # the service's defaults
ALL_MEDIA = False
BIG_INDEX = "ivf"                     # the kind above 50k items (the service's "auto": IVF)
IVF_CODES = "sq8"                     # how IVF lists store vectors (the service's default)
SINGLE_HOST = False                   # `crossrec serve --single-host`: no store notifications


# -- synthetic artifacts ----------------------------------------------------------------------

def make_artifact(path: Path, n_items: int, n_users: int = 10_000, dim: int = 64,
                  history: int = 20, seed: int = 0) -> dict:
    from crossrec.artifact import save_artifact
    from crossrec.data.catalog import Catalog
    from crossrec.data.dataset import Dataset
    from crossrec.data.idmap import IdMap
    from crossrec.data.interactions import Interactions
    from crossrec.index import build_index
    from crossrec.models.als import ALSRecommender

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(256, dim)).astype(np.float32)
    vectors = centres[rng.integers(256, size=n_items)] + 0.6 * rng.normal(
        size=(n_items, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = np.array([f"i{i}" for i in range(n_items)], dtype=object)
    medium = MEDIA[rng.integers(4, size=n_items)]
    catalog = Catalog(ids, medium, text={"title": np.array([f"Item {i}" for i in range(n_items)],
                                                          dtype=object)})
    users = IdMap([f"u{u}" for u in range(n_users)])
    user = np.repeat(np.arange(n_users), history)
    item = rng.integers(n_items, size=n_users * history)
    inter = Interactions(user, item, np.arange(len(user), dtype=np.float64))
    model = ALSRecommender(factors=dim)
    model.item_factors_ = vectors
    model.user_factors_ = rng.normal(size=(n_users, dim)).astype(np.float32)
    ds = Dataset("synthetic", inter, users, IdMap(ids), catalog)
    t0 = time.perf_counter()
    save_artifact(path, model, ds, inter)
    kind = "exact" if n_items <= 50_000 else BIG_INDEX
    opts = dict(HNSW_OPTIONS) if kind == "hnsw" else \
        {"all_media": True, "nprobe": 32, "codes": IVF_CODES} if kind == "ivf" else {}  # "auto"
    t1 = time.perf_counter()
    index = build_index(vectors, medium, kind=kind, **opts, **(
        {"all_media": True} if ALL_MEDIA and kind == "hnsw" else {}))
    build_s = time.perf_counter() - t1
    index.save(path / "index")
    recall = None
    if kind in ("hnsw", "ivf"):
        exact = build_index(vectors, medium, kind="exact")
        q = vectors[rng.integers(n_items, size=200)] + 0.3 * rng.normal(size=(200, dim)).astype(
            np.float32)
        a, _ = index.search(q, 10)
        b, _ = exact.search(q, 10)
        recall = float(np.mean([len(set(x) & set(y)) / 10 for x, y in zip(a, b)]))
    return {"n_items": n_items, "n_users": n_users, "dim": dim, "index": kind,
            "index_options": {**opts, **({"all_media": True} if ALL_MEDIA and kind == "hnsw"
                                         else {})}, "index_build_s": round(build_s, 1),
            "artifact_write_s": round(t1 - t0, 1), "recall@10": recall}


def artifact_dir(work: Path, n: int) -> Path:
    """The synthetic artifact of n items (one per index kind, and IVF codes, above 50k items)."""
    if n <= 50_000:
        return work / f"art-{n}"
    codes = f"-{IVF_CODES}" if BIG_INDEX == "ivf" and IVF_CODES != "flat" else ""
    return work / f"art-{n}-{BIG_INDEX}{codes}"


# -- the server -------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(artifact: Path, store: str, port: int, timeout: float = 600,
                 workers: int = 1) -> subprocess.Popen:
    """`crossrec serve` in its own process, once every worker answers /readyz."""
    env = {**os.environ, "CROSSREC_API_KEYS": "bench"}
    log = open(Path(tempfile.gettempdir()) / f"crossrec-bench-{port}.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "crossrec.cli", "serve", str(artifact),
                             "--host", "127.0.0.1", "--port", str(port), "--store", store,
                             "--lazy-encoders", "--workers", str(workers),
                             *(["--single-host"] if SINGLE_HOST else [])],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline, ready = time.time() + timeout, set()
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: see {log.name}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                if r.status == 200:
                    ready.add(json.loads(r.read())["worker"])
                    if len(ready) >= workers:
                        return proc
                    time.sleep(0.05)
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("server did not become ready")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- a small keep-alive HTTP/1.1 client (less client overhead than a full library) ------------

def run_loop(coro):
    """``asyncio.run`` on uvloop (installed with uvicorn[standard]) when there is one: the
    load generator shares the server's two cores, so its own cost per request counts."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


class Conn:
    def __init__(self, port: int):
        self.port = port
        self.reader = self.writer = None

    async def open(self):
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        if self.writer is None:
            await self.open()
        head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Content-Length: {len(body)}\r\n")
        if body:
            head += "Content-Type: application/json\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)
        await self.writer.drain()
        try:                               # the answer's head in one read, not one per line
            answer = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as e:
            raise ConnectionError("closed") from e
        status = int(answer[9:12])
        length = 0
        at = answer.lower().find(b"\r\ncontent-length:")
        if at >= 0:
            length = int(answer[at + 17:answer.index(b"\r\n", at + 2)])
        data = await self.reader.readexactly(length) if length else b""
        return status, data

    def close(self):
        if self.writer is not None:
            self.writer.close()
            self.writer = None


async def load(port: int, make_request, duration: float, clients: int = 50,
               warmup: float = 3.0, on_response=None) -> dict:
    """``clients`` tasks issue ``make_request(i) -> (method, path, body)`` back to back."""
    lat: list[float] = []
    errors: dict[str, int] = {}
    t_start = time.perf_counter()
    t_measure = t_start + warmup
    t_end = t_measure + duration
    counter = [0]

    async def client(cid: int):
        conn = Conn(port)
        while True:
            now = time.perf_counter()
            if now >= t_end:
                break
            counter[0] += 1
            method, path, body = make_request(counter[0])
            t0 = time.perf_counter()
            try:
                status, data = await conn.request(method, path, body)
            except (OSError, ConnectionError, asyncio.IncompleteReadError) as e:
                errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
                conn.close()
                if on_response is None:
                    await asyncio.sleep(0.01)
                    continue
                return
            t1 = time.perf_counter()
            if t0 >= t_measure:
                lat.append(t1 - t0)
                if status != 200:
                    errors[str(status)] = errors.get(str(status), 0) + 1
            if on_response is not None:
                on_response(status, data, body)
        conn.close()

    await asyncio.gather(*(client(i) for i in range(clients)))
    measured = time.perf_counter() - t_measure
    a = np.array(lat) * 1000
    return {"clients": clients, "duration_s": round(measured, 1), "requests": len(lat),
            "throughput_rps": round(len(lat) / measured, 1),
            "p50_ms": round(float(np.percentile(a, 50)), 2) if len(a) else None,
            "p90_ms": round(float(np.percentile(a, 90)), 2) if len(a) else None,
            "p99_ms": round(float(np.percentile(a, 99)), 2) if len(a) else None,
            "errors": errors}


async def load_open(port: int, make_request, duration: float, rate: float, clients: int = 50,
                    warmup: float = 3.0) -> dict:
    """Open-loop load: request j is due at ``start + j / rate``, sent by client j % clients as
    soon as it is due and that client's previous answer is in; its latency runs from the due
    time, so queueing anywhere (server or a busy client) is counted."""
    lat: list[float] = []
    errors: dict[str, int] = {}
    t_start = time.perf_counter() + 0.1
    t_measure = t_start + warmup
    total = int((warmup + duration) * rate)

    async def client(cid: int):
        conn = Conn(port)
        for j in range(cid, total, clients):
            due = t_start + j / rate
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            method, path, body = make_request(j)
            try:
                status, _ = await conn.request(method, path, body)
            except (OSError, ConnectionError, asyncio.IncompleteReadError) as e:
                errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
                conn.close()
                continue
            if due >= t_measure:
                lat.append(time.perf_counter() - due)
                if status != 200:
                    errors[str(status)] = errors.get(str(status), 0) + 1
        conn.close()

    await asyncio.gather(*(client(i) for i in range(clients)))
    measured = time.perf_counter() - t_measure
    a = np.array(lat) * 1000
    return {"clients": clients, "offered_rps": rate, "duration_s": round(measured, 1),
            "requests": len(lat), "throughput_rps": round(len(lat) / measured, 1),
            "p50_ms": round(float(np.percentile(a, 50)), 2) if len(a) else None,
            "p90_ms": round(float(np.percentile(a, 90)), 2) if len(a) else None,
            "p99_ms": round(float(np.percentile(a, 99)), 2) if len(a) else None,
            "errors": errors}


# -- a C load generator (Debian's wrk): the closed loop costs the shared cores less ------------

WRK_SCRIPT = """
math.randomseed(%(seed)d)
request = function()
  return wrk.format("GET", "/v1/users/u" .. math.random(0, %(last)d) .. "/recommendations?k=10")
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('CROSSREC {"requests": %%d, "duration_us": %%d, "socket_errors": %%d, '
    .. '"status_errors": %%d, "p50_us": %%d, "p90_us": %%d, "p99_us": %%d}\\n', summary.requests,
    summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
"""


def _wrk() -> str:
    import shutil

    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("--generator c needs `wrk` on PATH (Debian: apt-get install wrk)")
    return path


def load_wrk(port: int, n_users: int, duration: float, clients: int = 50, warmup: float = 3.0,
             seed: int = 0) -> dict:
    """Closed loop with wrk (one thread, ``clients`` keep-alive connections), random users;
    a ``warmup``-second run first, not counted."""
    script = Path(tempfile.gettempdir()) / f"crossrec-wrk-{port}.lua"
    script.write_text(WRK_SCRIPT % {"seed": seed, "last": n_users - 1})
    url = f"http://127.0.0.1:{port}"
    base = [_wrk(), "-t1", f"-c{clients}", "-s", str(script), "--timeout", "10s"]
    subprocess.run([*base, f"-d{max(1, round(warmup))}s", url], check=True,
                   capture_output=True)
    out = subprocess.run([*base, f"-d{max(1, round(duration))}s", url], check=True,
                         capture_output=True, text=True).stdout
    res = json.loads(next(line for line in out.splitlines()
                          if line.startswith("CROSSREC "))[len("CROSSREC "):])
    seconds = res["duration_us"] / 1e6
    errors = {k: res[k] for k in ("socket_errors", "status_errors") if res[k]}
    return {"generator": "wrk", "clients": clients, "duration_s": round(seconds, 1),
            "requests": res["requests"], "throughput_rps": round(res["requests"] / seconds, 1),
            **{f"p{q}_ms": round(res[f"p{q}_us"] / 1000, 2) for q in (50, 90, 99)},
            "errors": errors}


# -- parts ------------------------------------------------------------------------------------

def bench_recommendations(sizes: list[int], duration: float, work: Path,
                          clients: int = 50, rate: float | None = None,
                          workers: tuple[int, ...] = (1,), generator: str = "python"
                          ) -> list[dict]:
    out = []
    for n, w in [(n, w) for n in sizes for w in workers]:
        art = artifact_dir(work, n)
        saved = art / "bench-meta.json"
        if saved.exists():                         # the same synthetic artifact, built before
            meta = json.loads(saved.read_text())
        else:
            print(f"[recs] building a {n:,}-item artifact ...", flush=True)
            meta = make_artifact(art, n)
            saved.write_text(json.dumps(meta))
        port = free_port()
        t0 = time.perf_counter()
        proc = start_server(art, f"sqlite:///{work / f'ev-{n}.db'}", port, workers=w)
        meta["server_start_s"] = round(time.perf_counter() - t0, 1)
        rng = random.Random(n)
        def request(i):
            return ("GET", f"/v1/users/u{rng.randrange(meta['n_users'])}/recommendations?k=10",
                    b"")

        try:
            if generator == "c" and rate is None:
                res = load_wrk(port, meta["n_users"], duration, clients, seed=n)
            else:
                res = run_loop(load(port, request, duration, clients=clients) if rate is None
                                  else load_open(port, request, duration, rate, clients=clients))
        finally:
            stop_server(proc)
        row = {**meta, **res, "workers": w,
               "endpoint": "GET /v1/users/{id}/recommendations?k=10"}
        print(json.dumps(row), flush=True)
        out.append(row)
    return out


def bench_recall(sizes: list[int], work: Path, efs=(64, 128, 256, 512),
                 nprobes=(8, 16, 32, 64)) -> list[dict]:
    """Recall@10 of the approximate index against exact search, and the time of one query, per
    beam width (HNSW) or lists probed (IVF), on the artifacts of the recommendations part."""
    from crossrec.index import Index, build_index

    out = []
    for n in sizes:
        art = artifact_dir(work, n)
        if not (art / "index" / "index.json").exists():
            continue
        index = Index.load(art / "index")
        if index.kind not in ("hnsw", "ivf"):
            continue
        vectors = np.load(art / "item_vectors.npy")
        medium = np.array([index.medium_of(i) for i in range(len(vectors))], dtype=object)
        exact = build_index(vectors, medium, kind="exact")
        rng = np.random.default_rng(1)
        q = vectors[rng.integers(n, size=200)] + 0.3 * rng.normal(size=(200, vectors.shape[1])
                                                                 ).astype(np.float32)
        truth, _ = exact.search(q, 10)
        name, values = ("ef_search", efs) if index.kind == "hnsw" else ("nprobe", nprobes)
        for value in values:
            setattr(index, name, value)
            for part in [*index.parts.values(), *([index._all] if index._all else [])]:
                setattr(part, name, value)
            t0 = time.perf_counter()
            got = np.vstack([index.search(q[i:i + 1], 10)[0] for i in range(len(q))])
            per_query = (time.perf_counter() - t0) / len(q) * 1000
            recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, truth)]))
            row = {"n_items": n, "index": index.kind, "codes": index.codes, name: value,
                   "recall@10": round(recall, 4), "ms_per_query": round(per_query, 3)}
            if index.kind == "hnsw":
                row.update(hnsw_m=index.hnsw_m, ef_construction=index.ef_construction)
            print(json.dumps(row), flush=True)
            out.append(row)
    return out


def _event(i: int, prefix: str) -> bytes:
    return json.dumps({"events": [{"event_id": f"{prefix}-{i}", "user_id": f"u{i % 10_000}",
                                   "item_id": f"i{i % 10_000}", "type": "click"}]}).encode()


def bench_events(stores: dict[str, str], duration: float, work: Path,
                 workers: tuple[int, ...] = (1,)) -> list[dict]:
    art = work / "art-10000"
    if not (art / "artifact.json").exists():
        make_artifact(art, 10_000)
    out = []
    for (name, url), w in [(st, w) for st in stores.items() for w in workers]:
        port = free_port()
        proc = start_server(art, url, port, workers=w)
        prefix = f"{name}-{time.time_ns()}"
        try:
            res = run_loop(load(port, lambda i: ("POST", "/v1/events", _event(i, prefix)),
                                   duration))
        finally:
            stop_server(proc)
        row = {"store": name, "workers": w, **res, "events_per_s": res["throughput_rps"],
               "endpoint": "POST /v1/events (1 event per request)"}
        print(json.dumps(row), flush=True)
        out.append(row)
    return out


def bench_kill9(stores: dict[str, str], work: Path, after_s: float = 6.0) -> list[dict]:
    from crossrec.serve.store import EventStore

    art = work / "art-10000"
    out = []
    for name, url in stores.items():
        port = free_port()
        proc = start_server(art, url, port)
        prefix = f"kill-{name}-{time.time_ns()}"
        acked: set[str] = set()
        sent = [0]

        def on_response(status, data, body):
            if status == 200:
                for r in json.loads(data)["results"]:
                    if r["status"] == "stored":
                        acked.add(r["event_id"])

        def make(i):
            sent[0] += 1
            return "POST", "/v1/events", _event(i, prefix)

        async def run():
            task = asyncio.ensure_future(load(port, make, duration=after_s + 30, warmup=0,
                                              on_response=on_response))
            await asyncio.sleep(after_s)
            os.kill(proc.pid, signal.SIGKILL)
            return await task

        res = run_loop(run())
        proc.wait()
        ids = EventStore(url).event_ids()
        stored = {i for i in ids if i.startswith(prefix)}
        lost = acked - stored
        row = {"store": name, "killed_after_s": after_s, "sent": sent[0], "acknowledged":
               len(acked), "stored": len(stored), "acknowledged_but_lost": len(lost),
               "stored_not_acknowledged": len(stored - acked), "client_errors": res["errors"]}
        print(json.dumps(row), flush=True)
        out.append(row)
    return out


def machine() -> dict:
    return {"python": platform.python_version(), "cpus": os.cpu_count(),
            "platform": platform.platform(), "load_avg_at_start": os.getloadavg()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="10000,100000,1000000")
    p.add_argument("--duration", type=float, default=30.0, help="seconds of load per run")
    p.add_argument("--event-duration", type=float, default=20.0)
    p.add_argument("--latency-duration", type=float, default=15.0)
    p.add_argument("--pg-url", default=os.environ.get("CROSSREC_TEST_PG_URL"))
    p.add_argument("--parts", default="recs,latency,open,recall,events,kill9",
                   help="also: workers (closed and open loop with 1 and 2 worker processes, "
                   "side by side per size)")
    p.add_argument("--event-workers", default="1",
                   help="worker counts for the events part, e.g. 1,2 (other than 1: written "
                   "to events-workers.json)")
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "crossrec-bench")
    p.add_argument("--ef-search", type=int, default=128, help="HNSW beam width (default 128)")
    p.add_argument("--all-media", action="store_true", help="HNSW artifacts also get an "
                   "all-media graph (Index(all_media=True))")
    p.add_argument("--index", default="ivf", choices=["ivf", "hnsw"],
                   help="the index above 50k items (default ivf, the service's auto choice)")
    p.add_argument("--ivf-codes", default="sq8", choices=["sq8", "flat"],
                   help="how IVF lists store vectors (sq8, re-ranked exactly: the default)")
    p.add_argument("--single-host", action="store_true", help="serve with --single-host (a "
                   "PostgreSQL store sends no write notifications to other hosts)")
    p.add_argument("--rate", type=float, default=1000.0,
                   help="requests/s offered by the open-loop part (default 1000)")
    p.add_argument("--generator", default="python", choices=["python", "c"],
                   help="the closed loops' load: python (asyncio clients in this process, the "
                   "default) or c (Debian's wrk, cheaper on the shared cores); the open loop "
                   "is always the asyncio scheduler; files with wrk's closed loops get a -c "
                   "suffix")
    args = p.parse_args(argv)
    HNSW_OPTIONS["ef_search"] = args.ef_search
    global ALL_MEDIA, BIG_INDEX, IVF_CODES, SINGLE_HOST
    ALL_MEDIA, SINGLE_HOST = args.all_media, args.single_host
    BIG_INDEX, IVF_CODES = args.index, args.ivf_codes
    suffix = ("" if args.ivf_codes == "sq8" else f"-{args.ivf_codes}") if args.index == "ivf" \
        else f"-{args.index}"
    closed = suffix + ("-c" if args.generator == "c" else "")   # files with wrk's closed loops
    gen = {"generator": args.generator}
    args.work.mkdir(parents=True, exist_ok=True)
    OUT.mkdir(parents=True, exist_ok=True)
    parts = set(args.parts.split(","))
    stores = {"sqlite": f"sqlite:///{args.work / 'events-bench.db'}"}
    if args.pg_url:
        stores["postgresql"] = args.pg_url
    info = {"machine": machine(), "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    if "recs" in parts:
        rows = bench_recommendations([int(s) for s in args.sizes.split(",")], args.duration,
                                     args.work, **gen)
        (OUT / f"recommendations{closed}.json").write_text(json.dumps({**info, "runs": rows}, indent=2))
    if "latency" in parts:         # one client: the latency of a request without queueing
        rows = bench_recommendations([int(s) for s in args.sizes.split(",")],
                                     args.latency_duration, args.work, clients=1, **gen)
        (OUT / f"latency-1-client{closed}.json").write_text(json.dumps({**info, "runs": rows}, indent=2))
    if "open" in parts:            # open loop at a fixed offered rate
        rows = bench_recommendations([int(s) for s in args.sizes.split(",")], args.duration,
                                     args.work, rate=args.rate)
        (OUT / f"open-loop-{args.rate:g}{suffix}.json").write_text(
            json.dumps({**info, "runs": rows}, indent=2))
    if "workers" in parts:         # 1 and 2 worker processes, one after the other per size
        sizes = [int(s) for s in args.sizes.split(",")]
        rows = bench_recommendations(sizes, args.duration, args.work, workers=(1, 2), **gen)
        opened = bench_recommendations(sizes, args.duration, args.work, rate=args.rate,
                                       workers=(1, 2))
        (OUT / f"workers{closed}.json").write_text(json.dumps(
            {**info, "closed_loop": rows, f"open_loop_{args.rate:g}": opened}, indent=2))
    if "recall" in parts:
        rows = bench_recall([int(s) for s in args.sizes.split(",")], args.work)
        (OUT / f"recall{suffix}.json").write_text(json.dumps({**info, "runs": rows}, indent=2))
    if "events" in parts:
        counts = tuple(int(w) for w in args.event_workers.split(","))
        rows = bench_events(stores, args.event_duration, args.work, workers=counts)
        name = ("events" if counts == (1,) else "events-workers") + \
            ("-single-host" if args.single_host else "") + ".json"
        (OUT / name).write_text(json.dumps({**info, "runs": rows}, indent=2))
    if "kill9" in parts:
        rows = bench_kill9(stores, args.work)
        (OUT / "kill9.json").write_text(json.dumps({**info, "runs": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
