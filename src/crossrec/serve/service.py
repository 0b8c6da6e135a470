"""What the HTTP layer calls: a loaded artifact, its index, and the feedback kept in the store.

No training happens here. A user's vector is recomputed from the training history plus the
positive events since (``model.user_vectors``, the model's fold-in); negative events (dislike,
skip, low rating) remove those items from the user's lists and move the query away from them:
``q = u - NEG_WEIGHT * |u| * mean(unit vectors of the disliked items)``. Items added at run time
are placed by the model from their encoded content (``model.new_item_vectors``, a
:class:`~crossrec.models.base.VectorModel` extension that content models implement) and kept in
a small exact side index, so the main index is never mutated while it is searched.

A :class:`Loaded` holds everything derived from one artifact; :meth:`Service.reload` builds a
new one and swaps a single reference, so a request in flight finishes on the old one.

Several worker processes (``crossrec serve --workers N``) each hold a Service over one store and
one :class:`~crossrec.serve.feed.ChangeFeed`: a write goes to the store and bumps the feed's
counter of its kind; every other worker reads what is new (:meth:`Service.sync`) before a
request that needs it, so what one worker acknowledged, all serve.

Example:
    >>> svc = Service("artifacts/demo", EventStore("sqlite:///events.db"), media_root="data/demo")
    >>> svc.recommend("u0001", k=10, media={"video"})["items"][0]["item_id"]
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from crossrec.artifact import Artifact, load_artifact
from crossrec.data.catalog import Catalog
from crossrec.data.dataset import Features
from crossrec.index import Index, build_index
from crossrec.recipe import ContentRecipe
from crossrec.serve.feed import KINDS, ChangeFeed
from crossrec.serve.links import ContentLinks
from crossrec.serve.store import EventStore, StoredItem, event_polarity

log = logging.getLogger("crossrec.serve")

NEG_WEIGHT = 0.5
"""How far one unit of negative feedback moves a user's query away from the disliked items."""
SESSION_HALF = 3.0
SESSION_MAX_WEIGHT = 0.6
"""Positive events since training also form a vector of their own, blended into the user's
with weight ``min(SESSION_MAX_WEIGHT, n / (n + SESSION_HALF))`` for n such events: one like
moves the list visibly, and the training history still counts."""
MAX_K = 100
SYNC_MARGIN_S = 5.0
"""Users and items created up to this long before the newest one seen are read again on a
sync (a row's creation time is taken before its commit, so commits can land out of order).
Also how long a gap in the event sequence numbers is looked up again: on PostgreSQL a
transaction can commit after one with a higher number (and a duplicate or a rollback leaves a
number unused for good)."""
MAX_GAP = 10_000
"""A jump of more sequence numbers than this is not tracked as gaps (numbers used up)."""


class ServiceError(Exception):
    """An error the client caused or must know about: HTTP ``status`` and a message."""

    status = 400

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class NotFound(ServiceError):
    status = 404


class CannotDo(ServiceError):
    """The loaded model cannot do this (e.g. place new items without a content path)."""

    status = 409


def user_hash(user_id: str) -> str:
    """What logs show instead of a user id."""
    return hashlib.sha256(str(user_id).encode()).hexdigest()[:12]


@dataclass
class UserFeedback:
    """One user's events since the artifact was trained (external item ids, in order)."""

    events: list[tuple[str, int]] = field(default_factory=list)      # (item id, polarity)
    likes_text: str = ""
    known: bool = False                                              # persisted in the store

    @property
    def version(self) -> tuple[int, str]:
        return len(self.events), self.likes_text


@dataclass
class LiveItem:
    item_id: str
    medium: str
    content: dict[str, Any]
    features: dict[str, np.ndarray]


def freeze_heap() -> None:
    """Move every object alive now (a loaded artifact's id maps, catalog rows, encoders) out of
    the cyclic collector's view: a full collection walking millions of them stalled requests by
    tens of ms. Called once an artifact is loaded."""
    gc.collect()
    gc.freeze()


class Loaded:
    """One artifact, ready to serve: model, index, id maps, display data."""

    def __init__(self, artifact: Artifact, index_kind: str = "auto"):
        self.artifact = artifact
        self.model = artifact.model
        self.version = artifact.version
        if artifact.item_vectors is None:
            raise ValueError(f"{artifact.path}: model {artifact.meta['model']!r} is not a vector "
                             f"model (no item_vectors.npy); the service serves vector models")
        self.vectors = np.ascontiguousarray(artifact.item_vectors, np.float32)   # (n_items, d)
        self.n_items = len(self.vectors)
        cat = artifact.catalog
        self.item_ids: list[str] = [str(i) for i in cat.ids]
        self.item_pos: dict[str, int] = {i: n for n, i in enumerate(self.item_ids)}
        self.medium: list[str] = [str(m) for m in cat.medium]
        self.media = sorted(set(self.medium))
        self.text_fields = list(cat.text)
        self.users: dict[str, int] = {str(u): n for n, u in enumerate(artifact.users.ids)}
        self.user_ids: list[str] = [str(u) for u in artifact.users.ids]
        self.histories = artifact.histories()
        pop = np.bincount(artifact.history.item, minlength=self.n_items).astype(np.float32)
        self.popularity = pop
        self.popular_order = np.argsort(-pop, kind="stable")
        self.cold_vector = np.zeros(self.vectors.shape[1], np.float32)
        # every training user's fold-in vector, once (per-request fold-in only after feedback)
        self.user_vectors = np.zeros((len(self.user_ids), self.vectors.shape[1]), np.float32)
        for start in range(0, len(self.user_ids), 4096):
            self.user_vectors[start:start + 4096] = self.model.user_vectors(
                [np.asarray(h, np.int64) for h in self.histories[start:start + 4096]])
        recipe = artifact.meta.get("config", {}).get("content_recipe")
        self.recipe = ContentRecipe(**recipe) if recipe else None
        self.places_new_items = bool(getattr(self.model, "places_new_items", False)) \
            and self.recipe is not None
        # which modality links a recommended item to a history item, from the items' rows in
        # the content recipe's space: the model's own vectors when they are that space (the
        # content model's), else the artifact's content_vectors.npy; None: "collaborative"
        self.links: ContentLinks | None = None
        if self.recipe is not None:
            saved = artifact.content_vectors
            if self.vectors.shape[1] == self.recipe.dim:
                self.links = ContentLinks(self.vectors, self.recipe)
            elif saved is not None and saved.shape[1] == self.recipe.dim:
                self.links = ContentLinks(saved, self.recipe)
        prebuilt = artifact.path / "index"
        if (prebuilt / "index.json").exists() and index_kind in ("auto", "prebuilt"):
            self.index = Index.load(prebuilt)
            if len(self.index) != self.n_items:
                raise ValueError(f"{prebuilt}: {len(self.index)} items, the artifact {self.n_items}")
        else:
            self.index = build_index(self.vectors, self.medium,
                                     kind="auto" if index_kind == "prebuilt" else index_kind)
        self.index.freeze()                 # searches never mutate the index
        self.live: list[LiveItem] = []
        # (vectors, media) of the items added at run time, replaced as one tuple
        self.live_arrays = (np.zeros((0, self.vectors.shape[1]), np.float32), np.zeros(0, object))
        self._user_cache: dict[str, tuple[tuple[int, str], np.ndarray]] = {}
        self._cards: dict[int, dict[str, Any]] = {}     # static display data per position
        self.loaded_at = time.time()

    # -- items --------------------------------------------------------------------------------
    @property
    def total_items(self) -> int:
        return self.n_items + len(self.live_arrays[1])

    def position(self, item_id: str) -> int:
        pos = self.item_pos.get(item_id)
        if pos is None:
            raise NotFound(f"unknown item {item_id!r}")
        return pos

    @property
    def live_vectors(self) -> np.ndarray:
        return self.live_arrays[0]

    def vector(self, pos: int) -> np.ndarray:
        return self.vectors[pos] if pos < self.n_items else self.live_vectors[pos - self.n_items]

    def medium_of(self, pos: int) -> str:
        return self.medium[pos]

    def add_live(self, item: LiveItem, vector: np.ndarray,
                 content: np.ndarray | None = None) -> int:
        pos = self.n_items + len(self.live)
        if content is not None and self.links is not None:
            self.links.add(pos, content)
        self.item_ids.append(item.item_id)
        self.medium.append(item.medium)
        self.live.append(item)
        if item.medium not in self.media:
            self.media = sorted({*self.media, item.medium})
        # published last, in one assignment: a search sees the new item only once everything
        # it needs to show it is in place (copy-on-write, never a partial array)
        vectors, media = self.live_arrays
        self.live_arrays = (np.vstack([vectors, vector[None].astype(np.float32)]),
                            np.append(media, item.medium))
        self.item_pos[item.item_id] = pos
        return pos

    def search(self, query: np.ndarray, k: int, media: Iterable[str] | None,
               exclude: set[int]) -> tuple[np.ndarray, np.ndarray]:
        """Top k positions and scores for one (d,) query over the main and live indices."""
        media = None if media is None else set(media)
        fetch = k + len(exclude)
        ids, scores = self.index.search(query[None], fetch, media=media)
        ids, scores = ids[0], scores[0]
        live_v, live_m = self.live_arrays
        if len(live_v):
            s = live_v @ query
            ok = np.ones(len(s), bool) if media is None else np.isin(live_m, list(media))
            pos = np.flatnonzero(ok) + self.n_items
            ids = np.concatenate([ids, pos])
            scores = np.concatenate([scores, s[ok]])
        if exclude:           # a few dozen ids: set lookups beat building an isin table
            keep = np.fromiter((i >= 0 and i not in exclude for i in ids.tolist()), bool,
                               count=len(ids))
        else:
            keep = ids >= 0
        ids, scores = ids[keep], scores[keep]
        if len(live_v):       # the index's answers come sorted; live items are merged in
            order = np.argsort(-scores, kind="stable")[:k]
            return ids[order], scores[order]
        return ids[:k], scores[:k]


class Service:
    """The service's state: the current :class:`Loaded`, the store, per-user feedback.

    Args:
        artifact_path: an artifact folder (``crossrec.artifact.save_artifact``).
        store: the event store (events, run-time users and items).
        media_root: the folder media files are served from (None: no media served).
        index_kind: "auto" (a prebuilt ``<artifact>/index`` if present, else exact up to 50k
            items and IVF above), "exact", "flat", "ivf" or "hnsw".
        feed: the change feed shared with other workers over the same store (None: this is
            the only process writing to the store).
    """

    def __init__(self, artifact_path: str | os.PathLike, store: EventStore,
                 media_root: str | os.PathLike | None = None, index_kind: str = "auto",
                 feed: ChangeFeed | None = None):
        self.artifact_path = Path(artifact_path)
        self.store = store
        self.media_root = Path(media_root).resolve() if media_root else None
        self.index_kind = index_kind
        self.feed = feed
        self.feedback: dict[str, UserFeedback] = {}
        self._lock = threading.RLock()          # feedback mutation and swaps
        self._encoders: dict[str, Any] = {}
        self._enc_lock = threading.Lock()
        self._synced: tuple[int, ...] = ()      # the feed's counters last caught up to
        self._marks = {"seq": 0, "users": None, "items": None}
        self._gaps: dict[int, float] = {}       # event seqs not seen yet -> when first missed
        self.loaded = self._load(self.artifact_path)
        self._restore()

    # -- loading ------------------------------------------------------------------------------
    def _load(self, path: Path) -> Loaded:
        t0 = time.perf_counter()
        loaded = Loaded(load_artifact(path), self.index_kind)
        for item in self.store.items():
            self._place_stored(loaded, item)
        log.info("loaded artifact %s (model %s, version %s, %d items, index %s) in %.1fs", path,
                 loaded.artifact.meta["model"], loaded.version, loaded.total_items,
                 loaded.index.kind, time.perf_counter() - t0)
        return loaded

    def _place(self, loaded: Loaded, item: LiveItem) -> int | None:
        if item.item_id in loaded.item_pos:
            return loaded.item_pos[item.item_id]
        if not loaded.places_new_items:
            log.warning("model %s cannot place run-time item %s; it is not served",
                        loaded.artifact.meta["model"], item.item_id)
            return None
        feats = {m: Features(v[None], np.array([bool(np.abs(v).sum() > 0)]))
                 for m, v in item.features.items()}
        content = item.content
        text = None
        if _reads_text(loaded):                     # a tuned LM reads the composed text
            from crossrec.encoders.text import compose_texts

            text = compose_texts(_catalog_row(loaded, item.item_id, item.medium,
                                              content.get("text", {}),
                                              content.get("categories", []), {}))[0]
        combined = loaded.recipe.combine(feats)
        return loaded.add_live(item, _new_vector(loaded, combined, text),
                               combined[loaded.recipe.name].matrix[0])

    def _place_stored(self, loaded: Loaded, item: StoredItem) -> None:
        self._place(loaded, LiveItem(item.item_id, item.medium, item.content, item.features))
        self._marks["items"] = max(self._marks["items"] or 0.0, item.created)

    def _restore(self) -> None:
        """Rebuild per-user feedback from the store (after a restart)."""
        self._synced = self.feed.changes() if self.feed else ()   # read before the store
        self._pull_users()
        for e in self.store.iter_events():
            self._apply_event(e.seq, e.user_id, e.item_id, e.polarity)

    def _pull_users(self) -> None:
        since = self._marks["users"]
        for user_id, profile, created in self.store.users(
                since=None if since is None else since - SYNC_MARGIN_S):
            fb = self.feedback.setdefault(user_id, UserFeedback())
            fb.known, fb.likes_text = True, str(profile.get("likes", ""))
            self._marks["users"] = max(self._marks["users"] or 0.0, created)

    def _apply_event(self, seq: int, user_id: str, item_id: str, polarity: int) -> None:
        """Apply a stored event once: in sequence order, or to fill a gap left earlier."""
        if seq > self._marks["seq"]:
            if self.feed is not None and seq - self._marks["seq"] <= MAX_GAP:
                now = time.monotonic()
                self._gaps.update((q, now) for q in range(self._marks["seq"] + 1, seq))
            self._marks["seq"] = seq
        elif self._gaps.pop(seq, None) is None:
            return                                             # applied before
        fb = self.feedback.setdefault(user_id, UserFeedback())
        fb.events.append((item_id, polarity))

    def sync(self, kinds: Iterable[str] = KINDS) -> bool:
        """Catch up with what other workers wrote to the store since the last sync, reading
        only those of ``kinds`` (events, users, items) whose counter moved (True if any had).
        A no-op without a feed."""
        if self.feed is None:
            return False
        seen = self.feed.changes()
        if tuple(kinds) != KINDS:         # leave the other kinds' counters to a later sync
            seen = tuple(n if k in kinds else old
                         for k, n, old in zip(KINDS, seen, self._synced))
        if seen == self._synced:
            return False
        with self._lock:
            (events, users, items), (had_events, had_users, had_items) = seen, self._synced
            if users != had_users:
                self._pull_users()
            if events != had_events:
                self._pull_events()
            if items != had_items:
                since = self._marks["items"]
                for item in self.store.items(since=None if since is None
                                             else since - SYNC_MARGIN_S):
                    self._place_stored(self.loaded, item)
            self._synced = seen
        return True

    def _pull_events(self) -> None:
        if self._gaps:                      # late commits below the highest seq seen
            for e in self.store.events(seqs=list(self._gaps)):
                self._apply_event(e.seq, e.user_id, e.item_id, e.polarity)
            old = time.monotonic() - SYNC_MARGIN_S
            self._gaps = {q: t for q, t in self._gaps.items() if t > old}
        for e in self.store.events(after_seq=self._marks["seq"]):
            self._apply_event(e.seq, e.user_id, e.item_id, e.polarity)

    def _changed(self, kind: str) -> None:
        """After a store write of ``kind`` with a feed: tell the other workers, and apply it
        here by reading it back."""
        self.feed.bump(kind)
        self.sync()

    def reload(self, path: str | os.PathLike | None = None) -> dict[str, Any]:
        """Load an artifact (default: the same path, e.g. rewritten by ``crossrec retrain``)
        and swap it in atomically; the old one keeps serving until then."""
        path = Path(path) if path else self.artifact_path
        old = self.loaded.version
        try:
            new = self._load(path)
        except (FileNotFoundError, ValueError) as e:
            raise ServiceError(f"cannot load artifact {path}: {e}", 422) from None
        with self._lock:
            self.loaded, self.artifact_path = new, path
        freeze_heap()
        return {"previous_version": old, "version": new.version, "path": str(path),
                "items": new.total_items}

    # -- users --------------------------------------------------------------------------------
    def known_user(self, user_id: str) -> bool:
        return user_id in self.loaded.users or user_id in self.feedback

    def add_user(self, user_id: str | None, likes: str) -> dict[str, Any]:
        user_id = user_id or f"new-{uuid.uuid4().hex[:10]}"
        if self.known_user(user_id):
            raise ServiceError(f"user {user_id!r} exists", 409)
        if not self.store.add_user(user_id, {"likes": likes}):
            raise ServiceError(f"user {user_id!r} exists", 409)      # another worker's
        if self.feed is not None:
            self._changed("users")
        else:
            with self._lock:
                fb = self.feedback.setdefault(user_id, UserFeedback())
                fb.known, fb.likes_text = True, likes
        log.info("new user %s", user_hash(user_id))
        return {"user_id": user_id, "likes": likes}

    def user_state(self, user_id: str, loaded: Loaded | None = None):
        """(positive history positions of fitted items, of run-time items, negative positions,
        seen positions, likes text, positives since training in order)."""
        loaded = loaded or self.loaded
        fb = self.feedback.get(user_id)
        idx = loaded.users.get(user_id)
        if idx is None and fb is None:
            raise NotFound(f"unknown user {user_id!r}")
        train = loaded.histories[idx] if idx is not None else np.zeros(0, np.int64)
        pos_live, neg, seen, recent = [], set(), set(train.tolist()), []
        pos_known = list(train.tolist())
        for item_id, polarity in (fb.events if fb else []):
            p = loaded.item_pos.get(item_id)
            if p is None:
                continue
            seen.add(p)
            if polarity > 0:
                (pos_known if p < loaded.n_items else pos_live).append(p)
                recent.append(p)
                neg.discard(p)
            elif polarity < 0:
                neg.add(p)
        return pos_known, pos_live, neg, seen, (fb.likes_text if fb else ""), recent

    def user_vector(self, user_id: str, loaded: Loaded) -> tuple[np.ndarray, dict[str, Any]]:
        """The query vector of a user and what it came from."""
        fb = self.feedback.get(user_id)
        key = fb.version if fb else (0, "")
        cached = loaded._user_cache.get(user_id)
        pos_known, pos_live, neg, seen, likes, recent = self.user_state(user_id, loaded)
        info = {"history": pos_known + pos_live, "negative": neg, "seen": seen, "likes": likes,
                "recent": recent}
        if cached and cached[0] == key:
            return cached[1], info
        idx = loaded.users.get(user_id)
        if fb is None and idx is not None:                 # no feedback since training
            return loaded.user_vectors[idx], info
        if pos_known or pos_live:
            u = self._fold_in(pos_known, pos_live, loaded)
            recent = info["recent"]
            if recent and len(recent) < len(pos_known) + len(pos_live):
                # this session's positives also on their own, so that feedback shows at once
                w = min(SESSION_MAX_WEIGHT, len(recent) / (len(recent) + SESSION_HALF))
                r = self._fold_in([p for p in recent if p < loaded.n_items],
                                  [p for p in recent if p >= loaded.n_items], loaded)
                nu, nr = np.linalg.norm(u), np.linalg.norm(r)
                if nu > 0 and nr > 0:
                    u = nu * ((1 - w) * u / nu + w * r / nr)
        else:
            u = loaded.cold_vector.copy()
        if likes and loaded.places_new_items:
            t = self._text_vector(likes, loaded)
            w = 1.0 / (1.0 + len(pos_known) + len(pos_live))
            nu = np.linalg.norm(u)
            u = (1 - w) * (u / nu if nu > 0 else u) + w * t
        if neg:
            d = np.stack([loaded.vector(p) for p in neg])
            d = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
            u = u - NEG_WEIGHT * max(np.linalg.norm(u), 1e-3) * d.mean(0)
        u = np.asarray(u, np.float32)
        loaded._user_cache[user_id] = (key, u)
        return u, info

    @staticmethod
    def _fold_in(pos_known: list[int], pos_live: list[int], loaded: Loaded) -> np.ndarray:
        """The model's user vector for a history; items added at run time (which the model
        was not fitted on) enter as their mean vector, weighted by their share."""
        u = loaded.model.user_vectors([np.asarray(pos_known, np.int64)])[0] if pos_known \
            else np.zeros(loaded.vectors.shape[1], np.float32)
        if pos_live:
            share = len(pos_live) / (len(pos_known) + len(pos_live))
            live = loaded.live_vectors[np.asarray(pos_live) - loaded.n_items].mean(0)
            u = (1 - share) * u + share * live * max(float(np.linalg.norm(u)), 1.0)
        return np.asarray(u, np.float32)

    # -- reading ------------------------------------------------------------------------------
    def _media_filter(self, media: set[str] | None, loaded: Loaded) -> set[str] | None:
        if not media:
            return None
        unknown = sorted(media - set(loaded.media))
        if unknown:
            raise ServiceError(f"unknown medium {unknown[0]!r}; known: {', '.join(loaded.media)}",
                               422)
        return media

    def recommend(self, user_id: str, k: int = 10, media: set[str] | None = None,
                  exclude_seen: bool = True, explain: bool = True) -> dict[str, Any]:
        loaded = self.loaded
        media = self._media_filter(media, loaded)
        u, info = self.user_vector(user_id, loaded)
        exclude = set(info["negative"]) | (info["seen"] if exclude_seen else set())
        if not np.any(u):                          # nothing known: the most popular items
            ids = [int(p) for p in loaded.popular_order if int(p) not in exclude
                   and (media is None or loaded.medium[p] in media)][:k]
            scores = loaded.popularity[ids] / max(float(loaded.popularity.max()), 1.0)
            basis = "popular"
        else:
            ids, scores = loaded.search(u, k, media, exclude)
            basis = "history" if info["history"] else "likes"
        items = [self.item_card(int(p), loaded) for p in ids]
        for item, s in zip(items, scores):
            item["score"] = float(s)
        if explain:
            for item, why in zip(items, self._explain([int(p) for p in ids], info, loaded, basis)):
                item["because"] = why
        if log.isEnabledFor(logging.DEBUG):          # hashing the id costs; only when logged
            log.debug("recommend user=%s k=%d media=%s -> %d items", user_hash(user_id), k,
                      ",".join(sorted(media)) if media else "all", len(items))
        return {"user_id": user_id, "model_version": loaded.version, "basis": basis,
                "items": items}

    def _explain(self, positions: list[int], info: dict, loaded: Loaded,
                 basis: str) -> list[list[dict[str, Any]]]:
        """Per recommended item, the (up to two) history items whose vectors contribute most
        to its score (their dot products with it; the weight is that product's share of the
        item's positive products with the whole history), and the block of the content space
        that links the two (:class:`ContentLinks`); or the user's words, or "popular"."""
        if basis == "popular":
            return [[{"reason": "popular", "text": "popular with everyone"}] for _ in positions]
        hist = list(dict.fromkeys(info["history"]))[-200:]
        likes = [{"reason": "likes", "text": info["likes"], "modality": "text"}] \
            if info["likes"] else []
        if not hist or not positions:
            return [list(likes) for _ in positions]
        H = self._rows(hist, loaded)                                      # (h, d)
        V = self._rows(positions, loaded)                                 # (k, d)
        contrib = V @ H.T                                                 # (k, h)
        top = np.argsort(-contrib, axis=1, kind="stable")[:, :2]
        # a history item's weight: its share of the item's positive dot products with the
        # whole history (0-1, on every model's scale alike; in float64: 0.1575, not 0.157499)
        total = np.maximum(contrib, 0).sum(1, keepdims=True, dtype=np.float64)
        rows = np.arange(len(positions))[:, None]
        weights = np.round(contrib[rows, top] / np.maximum(total, 1e-30), 4).tolist()
        modality: dict[tuple[int, int], str] = {}        # empty: every link "collaborative"
        if loaded.links is not None:
            pairs = [(pos, hist[j]) for row, pos in enumerate(positions)
                     for j, w in zip(top[row].tolist(), weights[row]) if w > 0]
            modality = dict(zip(pairs, loaded.links.modalities(pairs)))
        about: dict[int, dict[str, Any]] = {}          # what is said of each history item once
        out = []
        for row, pos in enumerate(positions):
            why = []
            for j, w in zip(top[row].tolist(), weights[row]):
                if w <= 0:
                    break
                hp = hist[j]
                base = about.get(hp)
                if base is None:
                    base = about[hp] = {"reason": "history", "item_id": loaded.item_ids[hp],
                                        "title": self._title(hp, loaded),
                                        "medium": loaded.medium[hp]}
                why.append({**base, "weight": w,
                            "modality": modality.get((pos, hp), "collaborative")})
            if likes and (not why or basis == "likes"):
                why += likes
            out.append(why)
        return out

    @staticmethod
    def _rows(positions: list[int], loaded: Loaded) -> np.ndarray:
        idx = np.asarray(positions, np.int64)
        if len(idx) and idx.max() < loaded.n_items:
            return loaded.vectors[idx]
        return np.stack([loaded.vector(p) for p in positions])

    def similar(self, item_id: str, k: int = 10, media: set[str] | None = None) -> dict[str, Any]:
        loaded = self.loaded
        media = self._media_filter(media, loaded)
        pos = loaded.position(item_id)
        ids, scores = loaded.search(loaded.vector(pos), k, media, {pos})
        return {"item_id": item_id, "model_version": loaded.version,
                "items": [{**self.item_card(int(p), loaded), "score": float(s)}
                          for p, s in zip(ids, scores)]}

    def search(self, q: str, k: int = 10, media: set[str] | None = None) -> dict[str, Any]:
        loaded = self.loaded
        media = self._media_filter(media, loaded)
        if not loaded.places_new_items:
            raise CannotDo(f"model {loaded.artifact.meta['model']!r} has no content path, so "
                           f"it cannot place a text query in its space")
        ids, scores = loaded.search(self._text_vector(q, loaded), k, media, set())
        return {"q": q, "model_version": loaded.version,
                "items": [{**self.item_card(int(p), loaded), "score": float(s)}
                          for p, s in zip(ids, scores)]}

    def _encoder(self, modality: str, loaded: Loaded):
        from crossrec.encoders import build_encoder

        cfg = loaded.recipe.encoders.get(modality) if loaded.recipe else None
        if cfg is None:
            raise CannotDo(f"the artifact records no {modality} encoder")
        key = json.dumps(cfg, sort_keys=True)
        with self._enc_lock:
            enc = self._encoders.get(key)
            if enc is None:
                enc = self._encoders[key] = build_encoder(cfg)
        return enc

    def _text_vector(self, text: str, loaded: Loaded) -> np.ndarray:
        res = self._encoder("text", loaded).encode([text])
        if not res.mask[0]:
            raise ServiceError(f"could not encode the text: {res.errors.get(0, 'empty')}", 422)
        return _new_vector(loaded, loaded.recipe.text_query(res.vectors), text)

    def preload_encoders(self) -> None:
        """Build the encoders now (the first search or new item would otherwise wait)."""
        loaded = self.loaded
        if loaded.recipe:
            for m in loaded.recipe.encoders:
                enc = self._encoder(m, loaded)
                if m == "text":
                    enc.encode(["warm up"])

    # -- display ------------------------------------------------------------------------------
    def _title(self, pos: int, loaded: Loaded) -> str:
        """An item's title: from its cached card, else read (an explanation names history
        items, most of which are never shown: building their cards cost a 1M-item catalog
        more than the explanation itself)."""
        card = loaded._cards.get(pos)
        return card["title"] if card is not None else self._find_title(pos, loaded)

    def _find_title(self, pos: int, loaded: Loaded) -> str:
        if pos >= loaded.n_items:
            return str(loaded.live[pos - loaded.n_items].content.get("text", {}).get("title")
                       or loaded.item_ids[pos])
        cat = loaded.artifact.catalog
        return str(cat.text["title"][pos]) if "title" in cat.text and cat.text["title"][pos] \
            else loaded.item_ids[pos]

    def media_url(self, path: str) -> str | None:
        if not path:
            return None
        if path.startswith(("http://", "https://")):
            return path
        if self.media_root is None:
            return None
        try:
            rel = Path(path).resolve().relative_to(self.media_root)
        except ValueError:
            return None
        return "/media/" + rel.as_posix()

    def item_card(self, pos: int, loaded: Loaded | None = None) -> dict[str, Any]:
        """What a client shows of an item (a fresh dict: callers add score and because)."""
        card = self._cached_card(pos, loaded or self.loaded)
        return {**card, "categories": list(card["categories"]), "media": dict(card["media"])}

    def _cached_card(self, pos: int, loaded: Loaded) -> dict[str, Any]:
        """The static display data of a position, built once per loaded artifact (strings and
        tuples only, so that the cyclic collector, which a million cached cards would stall,
        does not track them)."""
        card = loaded._cards.get(pos)
        if card is None:
            card = loaded._cards[pos] = self._card(pos, loaded)
        return card

    def _card(self, pos: int, loaded: Loaded) -> dict[str, Any]:
        if pos >= loaded.n_items:
            live = loaded.live[pos - loaded.n_items]
            c = live.content
            text = {k: str(v) for k, v in c.get("text", {}).items()}
            media = {k: self.media_url(v) for k, v in c.get("media", {}).items() if v}
            cats = list(c.get("categories", []))
        else:
            cat: Catalog = loaded.artifact.catalog
            text = {k: str(v[pos]) for k, v in cat.text.items() if v[pos]}
            media = {k: self.media_url(str(v[pos])) for k, v in cat.media.items() if v[pos]}
            cats = cat.categories[pos]
        body = next((text[f] for f in ("description", "text", "plot", "transcript") if f in text),
                    "")
        return {"item_id": loaded.item_ids[pos], "medium": loaded.medium[pos],
                "title": self._find_title(pos, loaded), "snippet": body[:280],
                "categories": tuple(cats), "media": tuple((k, v) for k, v in media.items() if v)}

    def item(self, item_id: str) -> dict[str, Any]:
        loaded = self.loaded
        pos = loaded.position(item_id)
        card = self.item_card(pos, loaded)
        card["popularity"] = int(loaded.popularity[pos]) if pos < loaded.n_items else 0
        card["live"] = pos >= loaded.n_items
        return card

    def users_page(self, limit: int, offset: int) -> dict[str, Any]:
        loaded = self.loaded
        ids = loaded.user_ids + [u for u in self.feedback if u not in loaded.users]
        out = []
        for u in ids[offset:offset + limit]:
            pos_known, pos_live, _neg, _seen, likes, _recent = self.user_state(u, loaded)
            hist = pos_known + pos_live
            cats: dict[str, int] = {}
            for p in hist:
                card_cats = loaded.artifact.catalog.categories[p] if p < loaded.n_items else ()
                for c in card_cats[:1]:
                    cats[c] = cats.get(c, 0) + 1
            media: dict[str, int] = {}
            for p in hist:
                media[loaded.medium[p]] = media.get(loaded.medium[p], 0) + 1
            out.append({"user_id": u, "n_history": len(hist), "likes": likes,
                        "top_categories": sorted(cats, key=lambda c: -cats[c])[:3],
                        "media": media})
        return {"total": len(ids), "offset": offset, "limit": limit, "users": out}

    # -- writing ------------------------------------------------------------------------------
    def add_events(self, events: list[dict[str, Any]]) -> list[str]:
        """Validate ids, store (committed before this returns), then apply to the users'
        feedback. Returns per event "stored" or "duplicate"."""
        loaded = self.loaded
        for e in events:
            if e["item_id"] not in loaded.item_pos:
                raise NotFound(f"event {e['event_id']!r}: unknown item {e['item_id']!r}")
        seqs = self.store.add_events_seq(events)
        fresh = [seq is not None for seq in seqs]
        with self._lock:
            for e, seq in zip(events, seqs):
                if seq is None:
                    continue
                polarity = event_polarity(e["type"], e.get("value"))
                if self.feed is None:
                    fb = self.feedback.setdefault(e["user_id"], UserFeedback())
                    fb.events.append((e["item_id"], polarity))
                else:                       # by seq: a sync may bring the same event back
                    self._apply_event(seq, e["user_id"], e["item_id"], polarity)
            if self.feed is not None and any(fresh):
                n = self.feed.bump("events")
                if self._synced and n == self._synced[0] + 1 and not self._gaps:
                    # no other worker wrote events since the last sync: nothing to read back
                    self._synced = (n, *self._synced[1:])
        if log.isEnabledFor(logging.DEBUG):
            for e, new in zip(events, fresh):
                log.debug("event %s user=%s item=%s %s", e["type"], user_hash(e["user_id"]),
                          e["item_id"], "stored" if new else "duplicate")
        return ["stored" if new else "duplicate" for new in fresh]

    def add_item(self, item_id: str, medium: str, text: dict[str, str], categories: list[str],
                 media: dict[str, str]) -> dict[str, Any]:
        """Encode a new item's content, place it with the model, persist it, serve it at once.

        ``media``: kind -> an absolute local path (already checked to lie under the media
        root) or an http(s) URL."""
        loaded = self.loaded
        if item_id in loaded.item_pos:
            raise ServiceError(f"item {item_id!r} exists", 409)
        if not loaded.places_new_items:
            raise CannotDo(f"model {loaded.artifact.meta['model']!r} cannot place new items: it "
                           f"has no content path (or the artifact records no content encoders)")
        row = _catalog_row(loaded, item_id, medium, text, categories, media)
        fields = {f: v[0] for f, v in row.text.items()}
        from crossrec.encoders.pipeline import catalog_inputs

        features: dict[str, np.ndarray] = {}
        problems = []
        for modality in loaded.recipe.encoders:
            inputs = catalog_inputs(row, modality, loaded.recipe.template)
            if not inputs[0]:
                continue
            res = self._encoder(modality, loaded).encode(inputs)
            if res.mask[0]:
                features[modality] = res.vectors[0]
            else:
                problems.append(f"{modality}: {res.errors.get(0, 'could not be encoded')}")
        if problems:
            raise ServiceError("could not encode the item's content: " + "; ".join(problems), 422)
        if not features:
            raise ServiceError("the item has no content the model can read (give text fields "
                               "or a media file)", 422)
        content = {"text": {k: v for k, v in fields.items() if v}, "media": media,
                   "categories": categories}
        item = LiveItem(item_id, medium, content, features)
        with self._lock:
            if item_id in self.loaded.item_pos:
                raise ServiceError(f"item {item_id!r} exists", 409)
            if not self.store.add_item(item_id, medium, content, features):
                raise ServiceError(f"item {item_id!r} exists", 409)   # another worker's
            if self.feed is not None:
                self._changed("items")
            else:
                self._place(self.loaded, item)
        return self.item(item_id)


def _catalog_row(loaded: Loaded, item_id: str, medium: str, text: dict[str, str],
                 categories: list[str], media: dict[str, str]) -> Catalog:
    """A one-item catalog: the artifact's text fields in its order (empty where not given),
    then any other given field by name, as the item's text is composed for encoding."""
    fields = {f: str(text.get(f, "")) for f in dict.fromkeys([*loaded.text_fields,
                                                               *sorted(text)])}
    return Catalog(ids=[item_id], medium=[medium], text={f: [v] for f, v in fields.items()},
                   media={k: [v] for k, v in media.items()}, categories=[tuple(categories)])


def _reads_text(loaded: Loaded) -> bool:
    return bool(getattr(loaded.model, "reads_text", False))


def _new_vector(loaded: Loaded, features: dict[str, Features], text: str | None) -> np.ndarray:
    """One new item's (or query's) vector from its encoded features; a model that reads text
    itself also gets the composed text."""
    if _reads_text(loaded):
        return loaded.model.new_item_vectors(features, texts=[text or ""])[0]
    return loaded.model.new_item_vectors(features)[0]


__all__ = ["CannotDo", "Loaded", "NotFound", "Service", "ServiceError", "user_hash"]
