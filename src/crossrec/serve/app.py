"""The HTTP API and web page over a :class:`~crossrec.serve.service.Service` (FastAPI).

    >>> app = create_app("artifacts/demo", store_url="sqlite:///events.db",
    ...                  media_root="data/demo", api_keys=["s3cret"])
    >>> uvicorn.run(app, host="127.0.0.1", port=8000)        # what `crossrec serve` does

Routes (OpenAPI at /docs): ``/v1/users/{id}/recommendations``, ``/v1/items/{id}/similar``,
``/v1/search``, ``POST /v1/events``, ``POST /v1/users``, ``POST /v1/items`` (key),
``/v1/users``, ``/v1/items/{id}``, ``POST /v1/admin/reload`` (key), ``/healthz``, ``/readyz``,
``/metrics``, ``/media/...`` (files under the media root only) and the page at ``/``.

Every client error is a 4xx JSON body ``{"error": "...", "detail": [...]}``. API keys are kept
as sha256 digests only; ``POST /v1/items`` and ``/v1/admin/*`` always need one, events and new
users when ``events_need_key``. The artifact is reloaded atomically by ``POST
/v1/admin/reload`` and by SIGHUP.

With several worker processes (``crossrec serve --workers N``: a uvicorn supervisor and
:func:`app_from_env` in each worker) the workers share the store and a
:class:`~crossrec.serve.feed.ChangeFeed`; each catches up with the others' writes before it
answers a request. SIGHUP to the supervisor, or ``POST /v1/admin/reload`` to any worker, asks
every worker to reload; each swaps the artifact in place, as a single process does.
"""


import asyncio
import collections
import hashlib
import hmac
import json
import logging
import math
import os
import re
import shutil
import signal
import time
from collections.abc import Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated
from urllib.parse import parse_qsl

import orjson
from fastapi import Depends, FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from crossrec.serve import schemas
from crossrec.serve.feed import ChangeFeed, StoreListener
from crossrec.serve.service import MAX_K, Service, ServiceError, freeze_heap
from crossrec.serve.store import EventStore

log = logging.getLogger("crossrec.serve")
STATIC = Path(__file__).parent / "static"
MAX_JSON_BYTES = 1 << 20          # 1 MiB for JSON bodies
MAX_UPLOAD_BYTES = 50 << 20       # 50 MiB for POST /v1/items
RELOAD_POLL_S = 0.5               # how often a worker looks for a reload request

UPLOAD_KINDS = {                  # magic bytes -> (media kind, file extension)
    b"\x89PNG\r\n\x1a\n": ("image", ".png"), b"\xff\xd8\xff": ("image", ".jpg"),
    b"GIF87a": ("image", ".gif"), b"GIF89a": ("image", ".gif"),
    b"fLaC": ("audio", ".flac"), b"OggS": ("audio", ".ogg"), b"ID3": ("audio", ".mp3"),
    b"\x1a\x45\xdf\xa3": ("video", ".webm"),
}


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def sniff(head: bytes) -> tuple[str, str] | None:
    """(kind, extension) of a file from its first bytes, or None when it is not a known
    image, audio or video format."""
    for magic, kind in UPLOAD_KINDS.items():
        if head.startswith(magic):
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio", ".wav"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image", ".webp"
    if head[4:8] == b"ftyp":
        return "video", ".mp4"
    if len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        return "audio", ".mp3"
    return None


def _problem(status: int, error: str, detail: list | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status)


class BodyLimit:
    """Pure ASGI middleware: 413 for a body over the limit (by its Content-Length, or, for a
    chunked body, by reading it up to the limit before the app parses anything); uploads to
    ``POST /v1/items`` get the larger limit."""

    def __init__(self, app, max_json: int, max_upload: int):
        self.app, self.max_json, self.max_upload = app, max_json, max_upload

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        limit = self.max_upload if scope["path"] == "/v1/items" else self.max_json
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    too_big = int(value) > limit
                except ValueError:
                    return await _problem(400, "bad Content-Length header")(scope, receive, send)
                if too_big:
                    return await _problem(413, f"body of {int(value)} bytes is over the limit of "
                                          f"{limit} bytes")(scope, receive, send)
        # a body without a usable length (chunked): read it up to the limit first, then
        # replay it to the app, so an oversized one is a 413 before any parsing
        chunks, seen = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return
            seen += len(message.get("body", b""))
            if seen > limit:
                return await _problem(413, f"body is over the limit of {limit} bytes")(
                    scope, receive, send)
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class Observe:
    """Pure ASGI middleware: request latency per route template, method and status."""

    def __init__(self, app, metrics: "Metrics"):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        status = [500]

        async def send_status(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.latency.labels(scope["method"], route, str(status[0])).observe(
                time.perf_counter() - t0)


class Metrics:
    """Prometheus metrics in a registry of this app's own. Under ``crossrec serve --workers N``
    (``$PROMETHEUS_MULTIPROC_DIR`` set by the supervisor before the workers start) every worker
    writes its values to files in that folder and a scrape of any worker returns the sum over
    all of them (gauges: the maximum; the model gauge is set to 0 for a version no longer
    served)."""

    def __init__(self):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.registry = CollectorRegistry()
        self.latency = Histogram("crossrec_request_seconds", "request latency by route",
                                 ["method", "route", "status"], registry=self.registry,
                                 buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5))
        self.recommended = Counter("crossrec_recommended_items_total",
                                   "items served in recommendations, by medium", ["medium"],
                                   registry=self.registry)
        self.events = Counter("crossrec_events_total", "events stored, by type", ["type"],
                              registry=self.registry)
        self.index_items = Gauge("crossrec_index_items", "items in the index",
                                 registry=self.registry, multiprocess_mode="max")
        self.model = Gauge("crossrec_model_info", "the model being served (value 1)",
                           ["model", "version"], registry=self.registry,
                           multiprocess_mode="max")
        self._served: tuple[str, str] | None = None

    def set_model(self, service: Service) -> None:
        loaded = service.loaded
        served = (str(loaded.artifact.meta["model"]), str(loaded.version))
        if self._served is not None and self._served != served:
            if self.multiprocess:            # files keep every label set: say it is gone
                self.model.labels(*self._served).set(0)
            else:
                self.model.remove(*self._served)
        self._served = served
        self.model.labels(*served).set(1)
        self.index_items.set(loaded.total_items)

    def exposition(self) -> bytes:
        """The text a scrape gets: this process's registry, or every worker's values."""
        from prometheus_client import CollectorRegistry, generate_latest, multiprocess

        if not self.multiprocess:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)


def create_app(artifact_path: str | os.PathLike, store_url: str = "sqlite:///crossrec-events.db",
               media_root: str | os.PathLike | None = None, api_keys: Iterable[str] = (),
               api_key_hashes: Iterable[str] = (), events_need_key: bool = False,
               index_kind: str = "auto", preload_encoders: bool = False,
               max_json_bytes: int = MAX_JSON_BYTES,
               max_upload_bytes: int = MAX_UPLOAD_BYTES,
               feed_dir: str | None = None, hot_path: bool = True,
               listen: bool = True) -> FastAPI:
    """The FastAPI app; the artifact is loaded once, when the app starts (lifespan).

    Args:
        artifact_path: the artifact folder to serve.
        store_url: the event store (``sqlite:///FILE`` or ``postgresql+psycopg://...``).
        media_root: media files are served from under this folder only, and uploads are
            written to its ``uploads/``.
        api_keys / api_key_hashes: accepted keys, raw (hashed at once, never kept) or as
            sha256 hex digests; sent as ``X-API-Key`` or ``Authorization: Bearer``.
        events_need_key: also require a key for ``POST /v1/events`` and ``POST /v1/users``.
        index_kind: see :class:`~crossrec.serve.service.Service`.
        preload_encoders: build the content encoders at start-up, not on first use.
        feed_dir: a :class:`~crossrec.serve.feed.ChangeFeed` folder shared with the other
            worker processes (None: a single process).
        hot_path: answer plainly valid recommendation requests in :class:`HotRecommendations`
            (False: every request through FastAPI's routing; the same answers, slower).
        listen: with a PostgreSQL store, tell servers on other hosts of every write, and with
            no ``feed_dir`` catch up with theirs (a :class:`~crossrec.serve.feed.StoreListener`
            bumping a feed of this process's own; with ``feed_dir`` the supervising process
            runs it). False: this host is the store's only writer.
    """
    key_digests = {hash_key(k) for k in api_keys} | {h.lower() for h in api_key_hashes}
    metrics = Metrics()
    root = Path(media_root).resolve() if media_root else None

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        feed = ChangeFeed(feed_dir) if feed_dir else None
        own_feed = listener = None
        if feed is None and listen and store_url.startswith("postgresql"):
            feed = own_feed = ChangeFeed.create()      # for the other hosts' writes
        store = EventStore(store_url, origin=feed.token if feed else "", notify=listen)
        if own_feed is not None:
            listener = StoreListener(store_url, own_feed).start()
        path = (feed.artifact() if feed_dir else None) or artifact_path
        service = await asyncio.to_thread(Service, path, store, root, index_kind, feed)
        app.state.service, app.state.listener = service, listener
        metrics.set_model(service)
        loop = asyncio.get_running_loop()

        def on_hup():
            async def go():
                try:
                    out = await asyncio.to_thread(service.reload)
                    metrics.set_model(service)
                    log.info("SIGHUP: reloaded %s", out)
                except Exception:       # noqa: BLE001 - keep serving the old artifact
                    log.exception("SIGHUP: reload failed; still serving the old artifact")
            loop.create_task(go())

        hup, watcher = False, None
        if not feed_dir:
            try:
                loop.add_signal_handler(signal.SIGHUP, on_hup)
                hup = True
            except (RuntimeError, ValueError, NotImplementedError):     # not the main thread
                pass
        else:                            # a worker: reload when any process asks for it
            app.state.reloads_seen = feed.reloads()

            async def watch():
                while True:
                    await asyncio.sleep(RELOAD_POLL_S)
                    wanted = feed.reloads()
                    if wanted == app.state.reloads_seen:
                        continue
                    app.state.reloads_seen = wanted
                    try:
                        out = await asyncio.to_thread(service.reload, feed.artifact())
                        metrics.set_model(service)
                        log.info("reload requested: %s", out)
                    except Exception:   # noqa: BLE001 - keep serving the old artifact
                        log.exception("reload failed; still serving the old artifact")
            watcher = loop.create_task(watch())
        if preload_encoders:
            await asyncio.to_thread(service.preload_encoders)
        freeze_heap()
        app.state.ready = True
        yield
        app.state.ready = False
        if hup:
            loop.remove_signal_handler(signal.SIGHUP)
        if watcher is not None:
            watcher.cancel()
        if listener is not None:
            listener.stop()
        if feed is not None:
            feed.close()
        if own_feed is not None:
            shutil.rmtree(own_feed.folder, ignore_errors=True)
        store.close()

    app = FastAPI(title="crossrec", version="1", lifespan=lifespan,
                  description="Cross-media recommendations: API and web page.",
                  responses={400: {"model": schemas.Problem}, 404: {"model": schemas.Problem},
                             422: {"model": schemas.Problem}})
    app.state.ready = False
    if hot_path:
        app.add_middleware(HotRecommendations, state=app.state,
                           body=lambda *a: recommendations_body(*a))
    app.add_middleware(BodyLimit, max_json=max_json_bytes, max_upload=max_upload_bytes)

    app.add_middleware(Observe, metrics=metrics)

    # -- errors: always a JSON body with a message ---------------------------------------------
    @app.exception_handler(ServiceError)
    async def _service_error(request, exc: ServiceError):
        return _problem(exc.status, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request, exc: RequestValidationError):
        errors = exc.errors()
        parts = []
        for e in errors[:5]:
            loc = ".".join(str(x) for x in e.get("loc", ()))
            msg = e.get("msg", "invalid")
            if e.get("type") == "json_invalid":
                msg = f"malformed JSON: {e.get('ctx', {}).get('error', 'cannot parse')}"
            parts.append(f"{loc}: {msg}" if loc else msg)
        detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
                  for e in errors]
        return _problem(422, "; ".join(parts), detail)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request, exc: StarletteHTTPException):
        return _problem(exc.status_code, str(exc.detail), None)

    @app.exception_handler(Exception)
    async def _crash(request, exc: Exception):          # a bug: logged, never a stack trace out
        route = getattr(request.scope.get("route"), "path", "unmatched")   # no ids in logs
        log.exception("internal error on %s %s", request.method, route)
        return _problem(500, "internal error")

    # -- dependencies -------------------------------------------------------------------------
    # dependencies are coroutines: a plain ``def`` would be run in the thread pool, one thread
    # hand-off per request (a third of a recommendation's cost on two busy cores)
    def _loaded_service(request: Request) -> Service:
        svc = getattr(request.app.state, "service", None)
        if svc is None:
            raise ServiceError("not ready", 503)
        return svc

    async def service(request: Request) -> Service:
        svc = _loaded_service(request)
        svc.sync()                       # other workers' writes (a no-op with one process)
        return svc

    async def service_to_log(request: Request) -> Service:
        """For ``POST /v1/events``: only the items others added (to check the ids); their
        events are read when a request needs them, one read for many."""
        svc = _loaded_service(request)
        svc.sync(kinds=("items",))
        return svc

    def _check_key(request: Request) -> None:
        given = request.headers.get("x-api-key")
        auth = request.headers.get("authorization", "")
        if not given and auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        if not given:
            raise ServiceError("missing API key (send X-API-Key or Authorization: Bearer)", 401)
        digest = hash_key(given)
        if not any(hmac.compare_digest(digest, d) for d in key_digests):
            raise ServiceError("invalid API key", 401)

    async def need_key(request: Request) -> None:
        _check_key(request)

    async def events_key(request: Request) -> None:
        if events_need_key:
            _check_key(request)

    def media_set(media: str | None) -> set[str] | None:
        if media is None or not media.strip():
            return None
        return {m.strip() for m in media.split(",") if m.strip()}

    Svc = Annotated[Service, Depends(service)]
    K = Annotated[int, Query(ge=1, le=MAX_K, description=f"how many items (1-{MAX_K})")]
    Media = Annotated[str | None, Query(max_length=500, description="comma-separated media, "
                                        "e.g. article,video (default: all)")]
    v1 = "/v1"

    # -- reading ------------------------------------------------------------------------------
    def recommendations_body(svc: Service, user_id: str, k: int, media: str | None,
                             exclude_seen: bool, explain: bool) -> bytes:
        """The JSON of a user's recommendations (this route's and HotRecommendations')."""
        svc.sync()                       # other workers' writes (a no-op with one process)
        out = svc.recommend(user_id, k, media_set(media), exclude_seen, explain)
        for medium, n in collections.Counter(i["medium"] for i in out["items"]).items():
            metrics.recommended.labels(medium).inc(n)
        return _dumps(out)

    @app.get(v1 + "/users/{user_id}/recommendations", response_model=schemas.Recommendations)
    async def recommendations(request: Request, user_id: str, k: K = 10, media: Media = None,
                              exclude_seen: bool = True, explain: bool = True):
        body = recommendations_body(_loaded_service(request), user_id, k, media, exclude_seen,
                                    explain)
        return Response(body, media_type="application/json")

    @app.get(v1 + "/items/{item_id}/similar", response_model=schemas.Similar)
    async def similar(item_id: str, svc: Svc, k: K = 10, media: Media = None):
        return _json(svc.similar(item_id, k, media_set(media)))

    @app.get(v1 + "/search", response_model=schemas.SearchResults)
    def search(svc: Svc, q: Annotated[str, Query(min_length=1, max_length=500)], k: K = 10,
               media: Media = None):
        return svc.search(q, k, media_set(media))

    @app.get(v1 + "/users", response_model=schemas.UsersPage)
    def users(svc: Svc, limit: Annotated[int, Query(ge=1, le=500)] = 50,
              offset: Annotated[int, Query(ge=0)] = 0):
        return svc.users_page(limit, offset)

    @app.get(v1 + "/items/{item_id}", response_model=schemas.ItemDetail)
    async def item(item_id: str, svc: Svc):
        return svc.item(item_id)

    # -- writing ------------------------------------------------------------------------------
    @app.post(v1 + "/events", response_model=schemas.EventsOut,
              dependencies=[Depends(events_key)])
    def events(body: schemas.EventsIn, svc: Annotated[Service, Depends(service_to_log)]):
        evs = [e.model_dump() for e in body.events]
        status = svc.add_events(evs)
        for e, s in zip(evs, status):
            if s == "stored":
                metrics.events.labels(e["type"]).inc()
        return {"stored": status.count("stored"), "duplicates": status.count("duplicate"),
                "results": [{"event_id": e["event_id"], "status": s} for e, s in zip(evs, status)]}

    @app.post(v1 + "/users", response_model=schemas.UserOut, status_code=201,
              dependencies=[Depends(events_key)])
    def new_user(body: schemas.UserIn, svc: Svc):
        return svc.add_user(body.user_id, body.likes.strip())

    @app.post(v1 + "/items", response_model=schemas.ItemDetail, status_code=201,
              dependencies=[Depends(need_key)])
    def new_item(svc: Svc,
                 item_id: Annotated[str, Form(min_length=1, max_length=256)],
                 medium: Annotated[str, Form(min_length=1, max_length=64)],
                 title: Annotated[str, Form(max_length=1000)] = "",
                 description: Annotated[str, Form(max_length=20000)] = "",
                 categories: Annotated[str, Form(max_length=1000)] = "",
                 media_path: Annotated[str, Form(max_length=4096)] = "",
                 file: Annotated[UploadFile | None, File()] = None):
        """Add an item: text fields, and a media file (an upload, checked by its content, or
        ``media_path`` relative to the media root)."""
        media: dict[str, str] = {}
        if file is not None and file.filename is not None:
            if root is None:
                raise ServiceError("this server has no media root for uploads (start it with "
                                   "--media-root)", 409)
            data = file.file.read(max_upload_bytes + 1)
            kind = sniff(data[:64])
            if kind is None:
                raise ServiceError(f"upload {file.filename!r} is not a PNG, JPEG, GIF, WebP "
                                   f"image, WAV, FLAC, Ogg, MP3 audio or MP4/WebM video "
                                   f"(checked by content)", 415)
            if kind[0] == "image":
                _check_image(data)
            digest = hashlib.sha256(data).hexdigest()[:20]
            target = root / "uploads" / f"{digest}{kind[1]}"
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(target.suffix + ".part")
            tmp.write_bytes(data)
            os.replace(tmp, target)
            media[kind[0]] = str(target)
        if media_path:
            path = _under_root(root, media_path)
            kind = sniff(path.read_bytes()[:64])
            if kind is None:
                raise ServiceError(f"media_path {media_path!r} is not a known image, audio or "
                                   f"video format", 415)
            media.setdefault(kind[0], str(path))
        cats = [c.strip() for c in categories.split(",") if c.strip()]
        text = {k: v for k, v in (("title", title), ("description", description)) if v}
        return svc.add_item(item_id, medium.strip(), text, cats, media)

    @app.post(v1 + "/admin/reload", response_model=schemas.ReloadOut,
              dependencies=[Depends(need_key)])
    def reload(svc: Svc, request: Request, body: schemas.ReloadIn | None = None):
        out = svc.reload(body.path if body else None)
        metrics.set_model(svc)
        if feed_dir:                                      # and the other workers
            svc.feed.set_artifact(out["path"])
            request.app.state.reloads_seen = svc.feed.request_reload()
        return out

    # -- operations ---------------------------------------------------------------------------
    @app.get("/healthz")
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz(request: Request):
        svc = getattr(request.app.state, "service", None)
        if not request.app.state.ready or svc is None:
            return _problem(503, "not ready: the artifact is still loading")
        loaded = svc.loaded
        media: dict[str, int] = {}
        for m in loaded.medium:
            media[m] = media.get(m, 0) + 1
        return {"status": "ready", "model": loaded.artifact.meta["model"],
                "version": loaded.version, "items": loaded.total_items,
                "media": dict(sorted(media.items())), "worker": os.getpid()}

    @app.get("/metrics")
    async def prometheus():
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    # -- files --------------------------------------------------------------------------------
    @app.get("/media/{path:path}")
    async def media_file(path: str):
        return FileResponse(_under_root(root, path))

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html")

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon():
        return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")

    if STATIC.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def app_from_env() -> FastAPI:
    """The app of one worker of ``crossrec serve --workers N`` (a uvicorn factory): the
    arguments of :func:`create_app` as JSON in ``$CROSSREC_SERVE``."""
    from crossrec.serve.commands import single_threaded_math

    config = os.environ.get("CROSSREC_SERVE")
    if not config:
        raise RuntimeError("CROSSREC_SERVE is not set (it is set by `crossrec serve --workers`)")
    single_threaded_math()
    signal.signal(signal.SIGHUP, signal.SIG_IGN)      # the supervisor's: it asks for reloads
    return create_app(**json.loads(config))


def _dumps(body: dict) -> bytes:
    """Compact UTF-8 JSON of a dict the service built to the declared schema (orjson: a fifth of
    the standard library's cost on a recommendation list). A NaN or infinite score is refused,
    as ``json.dumps(allow_nan=False)`` refuses it (orjson alone would write null)."""
    for item in body.get("items", ()):
        score = item.get("score")
        if score is not None and not math.isfinite(score):
            raise ValueError(f"non-finite score {score} for item {item.get('item_id')!r}")
    return orjson.dumps(body)


def _json(body: dict) -> Response:
    """A JSON response of a dict the service built to the declared schema (not re-validated:
    the hot read paths; tests check the bodies against the schemas)."""
    return Response(_dumps(body), media_type="application/json")


BOOL_WORDS = {**dict.fromkeys(("1", "true", "t", "yes", "y", "on"), True),
              **dict.fromkeys(("0", "false", "f", "no", "n", "off"), False)}
"""The query-string booleans pydantic accepts (lower-cased), as FastAPI parses them."""


class HotRecommendations:
    """Pure ASGI middleware: ``GET /v1/users/{id}/recommendations`` answered without FastAPI's
    routing, dependency solving and parameter validation (on the serving benchmark's machine a
    bare FastAPI endpoint costs about three times a bare ASGI one).

    It answers only requests whose parameters are plainly valid (``k`` digits within 1 to
    ``MAX_K``, booleans in pydantic's words, ``media`` within 500 characters) and whose answer
    the service gives without an error; every other request (a bad parameter, an unknown user
    or medium, a service not ready) goes on to the FastAPI route, which builds the same answer
    or the same 4xx message: one body builder serves both, so the two cannot drift apart."""

    PATH = re.compile(r"/v1/users/([^/]+)/recommendations")
    ROUTE = SimpleNamespace(path="/v1/users/{user_id}/recommendations")   # the metrics label

    def __init__(self, app, state, body):
        self.app, self.state, self.body = app, state, body
        self.answered = 0                          # requests answered here, not by the route

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "GET":
            return await self.app(scope, receive, send)
        m = self.PATH.fullmatch(scope["path"])
        svc = getattr(self.state, "service", None)
        if m is None or svc is None or scope.get("root_path"):
            return await self.app(scope, receive, send)
        params = dict(parse_qsl(scope["query_string"].decode("latin-1"),
                                keep_blank_values=True))
        k, media = params.get("k", "10"), params.get("media")
        exclude_seen = BOOL_WORDS.get(params.get("exclude_seen", "true").lower())
        explain = BOOL_WORDS.get(params.get("explain", "true").lower())
        if not (k.isascii() and k.isdigit() and len(k) <= 6 and 1 <= int(k) <= MAX_K) \
                or exclude_seen is None or explain is None \
                or (media is not None and len(media) > 500):
            return await self.app(scope, receive, send)
        try:
            body = self.body(svc, m.group(1), int(k), media, exclude_seen, explain)
        except ServiceError:              # the route says what is wrong, in its own words
            return await self.app(scope, receive, send)
        scope["route"] = self.ROUTE
        self.answered += 1
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def _under_root(root: Path | None, rel: str) -> Path:
    """The file ``rel`` names under the media root; 400 for a path that leaves it, 404 for
    none."""
    if root is None:
        raise ServiceError("this server has no media root", 404)
    if "\x00" in rel:
        raise ServiceError("bad media path", 400)
    candidate = Path(rel)
    if candidate.is_absolute() or ".." in candidate.parts:
        raise ServiceError(f"media path {rel!r} leaves the media root", 400)
    path = (root / candidate).resolve()
    try:
        path.relative_to(root)
    except ValueError:
        raise ServiceError(f"media path {rel!r} leaves the media root", 400) from None
    if not path.is_file():
        raise ServiceError(f"no media file {rel!r}", 404)
    return path


def _check_image(data: bytes) -> None:
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.verify()
    except Exception as e:          # noqa: BLE001 - any undecodable image is the client's
        raise ServiceError(f"the uploaded image cannot be decoded: {e}", 415) from None


__all__ = ["BodyLimit", "MAX_JSON_BYTES", "MAX_UPLOAD_BYTES", "app_from_env", "create_app", "hash_key",
           "sniff"]
