"""``crossrec serve``, ``crossrec retrain`` and ``crossrec demo`` (added to the main parser by
:func:`add_commands`)."""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

log = logging.getLogger("crossrec")

DEFAULT_STORE = "sqlite:///crossrec-events.db"


def _keys(args) -> tuple[list[str], list[str]]:
    """Raw keys from $CROSSREC_API_KEYS (comma-separated) and sha256 digests from
    --api-key-file (one per line, '#' comments)."""
    raw = [k.strip() for k in os.environ.get("CROSSREC_API_KEYS", "").split(",") if k.strip()]
    digests = []
    if args.api_key_file:
        for line in Path(args.api_key_file).read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                if len(line) != 64 or any(c not in "0123456789abcdefABCDEF" for c in line):
                    raise ValueError(f"{args.api_key_file}: {line[:12]!r}... is not a sha256 "
                                     f"hex digest (write `printf %s KEY | sha256sum`)")
                digests.append(line)
    return raw, digests


_LIMITS = []


def single_threaded_math() -> None:
    """One thread per BLAS / OpenMP call in the server process: requests run concurrently,
    and a matrix-vector product split over busy cores costs milliseconds of hand-off instead
    of microseconds (measured: 10k x 64 scores 0.03 ms on one thread, 0.3-12 ms on two under
    load)."""
    from threadpoolctl import threadpool_limits

    _LIMITS.append(threadpool_limits(1))
    try:
        import faiss

        faiss.omp_set_num_threads(1)
    except ImportError:          # pragma: no cover - faiss is a dependency
        pass


def _serve(artifact, args, media_root) -> int:
    import uvicorn

    from crossrec.serve.app import create_app, hash_key

    raw, digests = _keys(args)
    if not raw and not digests:
        log.warning("no API keys configured: POST /v1/items and /v1/admin/* will refuse every "
                    "request (set CROSSREC_API_KEYS or --api-key-file)")
    config = {"artifact_path": str(artifact), "store_url": args.store,
              "media_root": None if media_root is None else str(media_root),
              "api_key_hashes": [*digests, *(hash_key(k) for k in raw)],
              "events_need_key": args.events_need_key, "index_kind": args.index,
              "preload_encoders": not args.lazy_encoders,
              "listen": not getattr(args, "single_host", False)}
    workers = int(getattr(args, "workers", 1) or 1)
    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    print(f"serving {artifact} at http://{args.host}:{args.port}/  (API docs at /docs"
          f"{f'; {workers} worker processes' if workers > 1 else ''})", flush=True)
    run = {"host": args.host, "port": args.port, "log_level": "warning", "access_log": False,
           "timeout_graceful_shutdown": 5}
    if workers == 1:
        single_threaded_math()
        uvicorn.run(create_app(**config), **run)
        return 0
    return _run_workers(config, run, workers)


def _run_workers(config: dict, run: dict, workers: int) -> int:
    """uvicorn's supervisor over ``workers`` processes sharing a change feed; its SIGHUP asks
    the workers to reload in place (uvicorn's own would replace the processes, and a process
    that stops drops the connections it has accepted but not answered)."""
    import shutil

    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from crossrec.serve.feed import ChangeFeed, StoreListener
    from crossrec.serve.store import EventStore

    EventStore(config["store_url"]).close()           # the schema, before the workers race to it
    feed = ChangeFeed.create()
    feed.set_artifact(config["artifact_path"])
    # other hosts' writes to a shared PostgreSQL store: one listener for this host's workers
    listener = StoreListener(config["store_url"], feed).start() \
        if config["store_url"].startswith("postgresql") and config["listen"] else None

    class Supervisor(Multiprocess):
        def handle_hup(self) -> None:
            log.info("SIGHUP: the workers reload the artifact")
            feed.request_reload()

    metrics_dir = feed.folder / "metrics"              # every worker's Prometheus values
    metrics_dir.mkdir()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)   # read by workers at import
    os.environ["CROSSREC_SERVE"] = json.dumps({**config, "feed_dir": str(feed.folder)})
    uconfig = uvicorn.Config("crossrec.serve.app:app_from_env", factory=True, workers=workers,
                             **run)
    sock = uconfig.bind_socket()
    try:
        Supervisor(uconfig, sockets=[sock]).run()
    finally:
        sock.close()
        if listener is not None:
            listener.stop()
        feed.close()
        shutil.rmtree(feed.folder, ignore_errors=True)
    return 0


def cmd_serve(args) -> int:
    if not (Path(args.artifact) / "artifact.json").exists():
        raise FileNotFoundError(f"{args.artifact} is not a crossrec artifact (no artifact.json)")
    return _serve(args.artifact, args, args.media_root)


def cmd_retrain(args) -> int:
    from crossrec.pipeline import retrain

    out = retrain(args.artifact, args.store, args.out, store_root=args.features)
    print(json.dumps(out, indent=2))
    return 0


def cmd_demo(args) -> int:
    from crossrec.pipeline import run_demo

    out = run_demo(args.data_dir, args.out, store_root=args.features, models=args.models,
                   dataset=args.dataset, progress=not args.no_progress)
    print(out["table"])
    best = max(out["results"], key=lambda r: r.summary["ndcg@20"]["mean"])
    print(f"served model: {out['served']} (evaluated on protocol p1 above, refitted on all "
          f"interactions into {out['artifact']}; ready in {out['seconds']:.0f}s)")
    if best.model != out["served"]:
        print(f"note: {best.model} has the best test NDCG@20 here, but it cannot place new "
              f"items or text queries; {out['served']} can (live cold start, search)")
    if args.no_serve:
        return 0
    if not os.environ.get("CROSSREC_API_KEYS"):
        os.environ["CROSSREC_API_KEYS"] = "demo-key"
        print("demo API key for POST /v1/items and /v1/admin/*: demo-key")
    media_root = args.media_root or out["data_dir"]
    return _serve(out["artifact"], args, media_root)


def _serve_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--store", default=DEFAULT_STORE,
                   help=f"event store URL (default {DEFAULT_STORE}; or postgresql+psycopg://...)")
    p.add_argument("--media-root", type=Path, help="serve media files from under this folder")
    p.add_argument("--api-key-file", type=Path, help="sha256 hex digests of accepted API keys, "
                   "one per line (raw keys: env CROSSREC_API_KEYS=k1,k2)")
    p.add_argument("--events-need-key", action="store_true",
                   help="also require an API key for POST /v1/events and /v1/users")
    p.add_argument("--index", default="auto", choices=["auto", "exact", "flat", "ivf", "hnsw"],
                   help="vector index (auto: a prebuilt <artifact>/index, else exact up to 50k "
                   "items, IVF above)")
    p.add_argument("--lazy-encoders", action="store_true",
                   help="load the content encoders on first use, not at start-up")
    p.add_argument("--workers", type=int, default=1,
                   help="worker processes (default 1); each holds the model and index, and "
                   "they share the store: a write to one is served by all at once")
    p.add_argument("--single-host", action="store_true",
                   help="with a PostgreSQL store: no server on another host writes to it, so "
                   "send and listen for no write notifications (about a fifth more events/s)")


def add_commands(sub) -> None:
    """Add serve, retrain and demo to the ``crossrec`` subparsers."""
    s = sub.add_parser("serve", help="serve an artifact: HTTP API and web page")
    s.add_argument("artifact", type=Path)
    _serve_args(s)
    s.set_defaults(fn=cmd_serve)

    r = sub.add_parser("retrain", help="fold the stored feedback events into a new artifact")
    r.add_argument("artifact", type=Path)
    r.add_argument("--store", required=True, help="the service's event store URL")
    r.add_argument("--out", type=Path, required=True, help="where to write the new artifact "
                   "(may be the served one: then POST /v1/admin/reload or SIGHUP the server)")
    r.add_argument("--features", type=Path, default=Path(".cache/features"),
                   help="feature store folder (default .cache/features)")
    r.set_defaults(fn=cmd_retrain)

    d = sub.add_parser("demo", help="generate the demo world, encode, evaluate, train, serve")
    d.add_argument("--data-dir", type=Path, default=Path("data/demo"))
    d.add_argument("--dataset", help="use a real dataset instead (e.g. ml-1m with --data-dir)")
    d.add_argument("--out", type=Path, default=Path("artifacts/demo"))
    d.add_argument("--features", type=Path, default=Path(".cache/features"))
    d.add_argument("--models", type=lambda s: [m.strip() for m in s.split(",") if m.strip()],
                   help="models to evaluate (default pop,als,content and crossrec if registered)")
    d.add_argument("--no-serve", action="store_true", help="stop after writing the artifact")
    d.add_argument("--no-progress", action="store_true")
    _serve_args(d)
    d.set_defaults(fn=cmd_demo, store=f"sqlite:///{Path('artifacts') / 'demo-events.db'}")


__all__ = ["add_commands"]
