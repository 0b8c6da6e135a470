"""The feature store: encoded item vectors cached on disk by encoder and item content.

One table per (encoder fingerprint, modality), in ``<root>/<modality>/<sha256(fingerprint)[:16]>/``:

    manifest.json          format, fingerprint, modality, name, dim, n_rows, created, updated,
                           the data file names, and per row: item id, content key, error reason
    vectors-<token>.npy    (n_rows, dim) float32, zero rows where the mask is False
    mask-<token>.npy       (n_rows,) bool, True where the row holds a vector

Rows are one per item id ever stored (order of first arrival); each row remembers the
content key it was encoded from. A content key is a hash of what the encoder reads
(:func:`content_key`: the sha256 of a text; of a local file's bytes; of a URL string). A
request is served from any row with the same content key (so an unchanged item, or an
item whose content another item already had, is never encoded again); everything else is
encoded, in chunks, and written back.

Writes are atomic: data files get fresh names, the manifest is written to a temporary file
and ``os.replace``-d over the old one (the single commit point), and only then are the old
data files removed. A run killed at any point leaves the previous store readable. Long runs
also commit every ``checkpoint_seconds``, so a killed run keeps most of its work. One writer
per table at a time (there is no lock).

Failures (an input the encoder could not read) are recorded with their reason, never cached
as successes, and retried on every run.

Example:
    >>> store = FeatureStore(".cache/features")
    >>> feats, report = store.encode(encoder, catalog.ids, compose_texts(catalog))
    >>> report.n_encoded, report.n_cached                 # second run: (0, n)
    >>> store.load(encoder.fingerprint, "text", catalog.ids).matrix.shape
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import resource
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from crossrec.data.dataset import Features
from crossrec.encoders.base import Encoder

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_URL_PREFIXES = ("http://", "https://", "ftp://", "s3://", "gs://")


def content_key(value: str, modality: str) -> str:
    """The cache key of one input: "" for no input; ``text:``/``file:``/``url:``/``missing:``
    followed by 32 hex digits of a sha256 (of the text, the file's bytes, the URL string, or
    the path string of a file that does not exist: it will fail and be retried)."""
    if not value:
        return ""
    if modality == "text":
        return "text:" + _sha(value.encode("utf-8"))
    if value.startswith(_URL_PREFIXES):
        return "url:" + _sha(value.encode("utf-8"))
    path = Path(value)
    if path.is_file():
        h = hashlib.sha256()
        try:
            with open(path, "rb") as f:
                while chunk := f.read(1 << 22):
                    h.update(chunk)
        except OSError:
            return "missing:" + _sha(value.encode("utf-8"))
        return "file:" + h.hexdigest()[:32]
    return "missing:" + _sha(value.encode("utf-8"))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1 << 20) if sys.platform == "darwin" else rss / 1024


@dataclass
class EncodeReport:
    """What one :meth:`FeatureStore.encode` call did.

    Attributes:
        modality, fingerprint: the table.
        n_items: items asked for (= n_encoded + n_cached + n_missing_input + len(failures)).
        n_encoded: items whose vector was computed in this call.
        n_cached: items served from the store (content unchanged, or seen under another id).
        n_missing_input: items with no input ("" ), masked without an error.
        failures: item id -> reason, for inputs the encoder could not read (retried next run).
        seconds: wall time of the whole call (lookups, encoding, saving).
        items_per_second: items sent to the encoder (encoded + failed) per second of the
            call; 0.0 when nothing needed encoding.
        peak_rss_mb: peak resident memory of the process at the end of the call.
    """

    modality: str
    fingerprint: str
    n_items: int = 0
    n_encoded: int = 0
    n_cached: int = 0
    n_missing_input: int = 0
    failures: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    items_per_second: float = 0.0
    peak_rss_mb: float = 0.0

    @property
    def n_failed(self) -> int:
        return len(self.failures)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["n_failed"] = self.n_failed
        return d


class _Table:
    """The in-memory state of one store table (see the module docstring for the files)."""

    def __init__(self, fingerprint: str, modality: str, name: str):
        self.fingerprint, self.modality, self.name = fingerprint, modality, name
        self.ids: list[str] = []
        self.content: list[str] = []
        self.errors: list[str | None] = []
        self.vectors: np.ndarray | None = None   # (n_rows, dim) float32, None until dim known
        self.mask = np.zeros(0, dtype=bool)
        self.created = self.updated = _now()
        self.files: tuple[str, str] | None = None

    @property
    def n_rows(self) -> int:
        return len(self.ids)

    @property
    def dim(self) -> int | None:
        return None if self.vectors is None else int(self.vectors.shape[1])

    # -- reading and writing ----------------------------------------------------------------

    @classmethod
    def read(cls, folder: Path, mmap: bool = False) -> _Table | None:
        path = folder / MANIFEST
        if not path.exists():
            return None
        try:
            m = json.loads(path.read_text(encoding="utf-8"))
            if m.get("format") != FORMAT_VERSION:
                raise ValueError(f"format {m.get('format')!r}, expected {FORMAT_VERSION}")
            t = cls(m["fingerprint"], m["modality"], m.get("name", ""))
            t.ids, t.content, t.errors = list(m["ids"]), list(m["content"]), list(m["errors"])
            t.created, t.updated = m["created"], m["updated"]
            t.files = (m["vectors"], m["mask"])
            mode = "r" if mmap else None
            t.mask = np.load(folder / m["mask"], mmap_mode=mode)
            if m["dim"] is not None:
                t.vectors = np.load(folder / m["vectors"], mmap_mode=mode)
            n = m["n_rows"]
            if not (len(t.ids) == len(t.content) == len(t.errors) == len(t.mask) == n) or (
                    t.vectors is not None and t.vectors.shape != (n, m["dim"])):
                raise ValueError("row counts of the manifest and the arrays differ")
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"feature store {folder} is unreadable ({type(e).__name__}: {e}); "
                             f"delete that folder to re-encode") from None
        return t

    def write(self, folder: Path) -> None:
        """Commit atomically: new data files, then ``os.replace`` of the manifest."""
        folder.mkdir(parents=True, exist_ok=True)
        token = f"{time.time_ns():x}-{os.getpid()}"
        vec_name, mask_name = f"vectors-{token}.npy", f"mask-{token}.npy"
        vectors = self.vectors if self.vectors is not None else np.zeros((self.n_rows, 0),
                                                                          np.float32)
        _write_durably(folder / vec_name, lambda f: np.save(f, vectors))
        _write_durably(folder / mask_name, lambda f: np.save(f, np.asarray(self.mask, bool)))
        self.updated = _now()
        manifest = {"format": FORMAT_VERSION, "fingerprint": self.fingerprint,
                    "modality": self.modality, "name": self.name, "dim": self.dim,
                    "n_rows": self.n_rows, "created": self.created, "updated": self.updated,
                    "vectors": vec_name, "mask": mask_name,
                    "ids": self.ids, "content": self.content, "errors": self.errors}
        tmp = folder / f"{MANIFEST}.tmp-{token}"
        _write_durably(tmp, lambda f: f.write(json.dumps(manifest).encode("utf-8")))
        os.replace(tmp, folder / MANIFEST)                       # the commit point
        _fsync_dir(folder)
        self.files = (vec_name, mask_name)
        for p in folder.iterdir():                               # old data, crashed leftovers
            if p.name not in (MANIFEST, vec_name, mask_name) and (
                    p.name.startswith(("vectors-", "mask-", f"{MANIFEST}.tmp-"))):
                p.unlink(missing_ok=True)

    # -- editing ----------------------------------------------------------------------------

    def ensure_rows(self, ids: Sequence[str]) -> np.ndarray:
        """Row of each id, appending rows (empty, masked) for ids not stored yet."""
        index = {i: r for r, i in enumerate(self.ids)}
        rows = np.empty(len(ids), dtype=np.int64)
        new = []
        for k, item in enumerate(ids):
            r = index.get(item)
            if r is None:
                r = index[item] = len(self.ids) + len(new)
                new.append(item)
            rows[k] = r
        if new:
            self.ids += new
            self.content += [""] * len(new)
            self.errors += [None] * len(new)
            self.mask = np.concatenate([np.asarray(self.mask, bool), np.zeros(len(new), bool)])
            if self.vectors is not None:
                self.vectors = np.concatenate(
                    [self.vectors, np.zeros((len(new), self.vectors.shape[1]), np.float32)])
        return rows

    def ensure_dim(self, dim: int) -> None:
        if self.vectors is None:
            self.vectors = np.zeros((self.n_rows, dim), dtype=np.float32)
        elif self.vectors.shape[1] != dim:
            raise ValueError(f"encoder {self.fingerprint!r} returned {dim}-d vectors; the store "
                             f"holds {self.vectors.shape[1]}-d ones")

    def set_row(self, r: int, key: str, vector: np.ndarray | None, error: str | None) -> None:
        self.content[r], self.errors[r] = key, error
        self.mask[r] = vector is not None
        if self.vectors is not None:
            self.vectors[r] = 0.0 if vector is None else vector


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _write_durably(path: Path, write) -> None:
    with open(path, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class FeatureStore:
    """Encoded item vectors on disk under ``root``, one table per (fingerprint, modality).

    Args:
        root: the store's folder (created on first write).
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def folder(self, fingerprint: str, modality: str) -> Path:
        """Where the table of (fingerprint, modality) lives."""
        digest = hashlib.sha256(fingerprint.encode("utf-8")).hexdigest()[:16]
        return self.root / modality / digest

    def entries(self) -> list[dict]:
        """Summary of every table: fingerprint, modality, name, dim, n_rows, n_present,
        updated, folder."""
        out = []
        for manifest in sorted(self.root.glob(f"*/*/{MANIFEST}")):
            t = _Table.read(manifest.parent, mmap=True)
            out.append({"fingerprint": t.fingerprint, "modality": t.modality, "name": t.name,
                        "dim": t.dim, "n_rows": t.n_rows, "n_present": int(np.sum(t.mask)),
                        "updated": t.updated, "folder": str(manifest.parent)})
        return out

    def load(self, fingerprint: str, modality: str, item_ids: Sequence) -> Features:
        """The stored vectors of ``item_ids`` in that order (ids not stored: zero rows, masked).

        Raises:
            FileNotFoundError: no table for (fingerprint, modality); names the stored ones.
        """
        folder = self.folder(fingerprint, modality)
        table = _Table.read(folder, mmap=True)
        if table is None:
            known = [e["fingerprint"] for e in self.entries() if e["modality"] == modality]
            raise FileNotFoundError(f"no {modality} features for {fingerprint!r} in {self.root}"
                                    f"; stored: {known or 'none'}")
        index = {i: r for r, i in enumerate(table.ids)}
        rows = np.asarray([index.get(str(i), -1) for i in item_ids], dtype=np.int64)
        known = rows >= 0
        dim = table.dim or 0
        matrix = np.zeros((len(rows), dim), dtype=np.float32)
        mask = np.zeros(len(rows), dtype=bool)
        if known.any():
            mask[known] = table.mask[rows[known]]
            if dim:
                matrix[known] = table.vectors[rows[known]]
        matrix[~mask] = 0.0
        return Features(matrix, mask, table.name)

    def encode(self, encoder: Encoder, item_ids: Sequence, inputs: Sequence[str],
               content_keys: Sequence[str] | None = None, progress: bool = True,
               chunk_size: int | None = None, checkpoint_seconds: float = 300.0,
               ) -> tuple[Features, EncodeReport]:
        """Vectors of ``item_ids`` (in that order), encoding only what the store lacks.

        Args:
            encoder: any :class:`~crossrec.encoders.base.Encoder`.
            item_ids: (n,) distinct item ids.
            inputs: (n,) what the encoder reads per item ("" = none: masked, not an error).
            content_keys: (n,) cache keys; default :func:`content_key` of each input.
            progress: show a tqdm bar while encoding.
            chunk_size: distinct inputs per ``encoder.encode`` call (default 16 batches, at
                least 2048, so that encoders sorting by length within a call pad little);
                pending inputs are sorted by length (characters) first.
            checkpoint_seconds: commit the table at least this often during long runs.

        Returns:
            (Features (n, dim) with a mask, :class:`EncodeReport`).
        """
        from tqdm.auto import tqdm

        t0 = time.perf_counter()
        ids = [str(i) for i in item_ids]
        inputs = ["" if x is None else str(x) for x in inputs]
        if len(ids) != len(inputs):
            raise ValueError(f"{len(ids)} item ids but {len(inputs)} inputs")
        if len(set(ids)) != len(ids):
            raise ValueError("item ids must be distinct")
        modality = encoder.modality
        keys = ([content_key(x, modality) for x in inputs] if content_keys is None
                else [str(k) if x else "" for k, x in zip(content_keys, inputs)])
        if len(keys) != len(ids):
            raise ValueError(f"{len(ids)} item ids but {len(keys)} content keys")
        fingerprint = encoder.fingerprint
        report = EncodeReport(modality, fingerprint, n_items=len(ids))
        folder = self.folder(fingerprint, modality)
        table = _Table.read(folder) or _Table(fingerprint, modality, f"{encoder.kind}-{modality}")
        if table.fingerprint != fingerprint or table.modality != modality:
            raise ValueError(f"feature store {folder} holds {table.fingerprint!r} "
                             f"({table.modality}), not {fingerprint!r} ({modality})")
        n_before = table.n_rows
        rows = table.ensure_rows(ids)
        dirty = table.n_rows != n_before
        good = {k: r for r, (k, ok) in enumerate(zip(table.content, table.mask)) if ok and k}

        pending: dict[str, list[int]] = {}                       # content key -> positions
        for pos, (key, r) in enumerate(zip(keys, rows)):
            if not key:
                report.n_missing_input += 1
                if table.content[r] or table.mask[r] or table.errors[r]:
                    table.set_row(r, "", None, None)
                    dirty = True
            elif key in good:
                report.n_cached += 1
                src = good[key]
                if src != r:
                    table.set_row(r, key, table.vectors[src].copy(), None)
                    dirty = True
            else:
                pending.setdefault(key, []).append(pos)

        if pending:
            self._encode_pending(encoder, table, folder, pending, inputs, ids, rows, report,
                                 progress, chunk_size, checkpoint_seconds, tqdm)
            dirty = True
        if table.vectors is None:                                # nothing was ever encoded
            table.ensure_dim(encoder.dim)
        if dirty:
            table.write(folder)
        matrix = table.vectors[rows]
        mask = table.mask[rows].copy()
        report.seconds = time.perf_counter() - t0
        attempted = report.n_encoded + report.n_failed
        report.items_per_second = attempted / report.seconds if attempted else 0.0
        report.peak_rss_mb = peak_rss_mb()
        return Features(matrix, mask, table.name), report

    @staticmethod
    def _encode_pending(encoder, table, folder, pending, inputs, ids, rows, report, progress,
                        chunk_size, checkpoint_seconds, tqdm):
        # one encoder call per distinct content; longest inputs first so chunks pad little
        unique = sorted(pending, key=lambda k: -len(inputs[pending[k][0]]))
        size = chunk_size or max(2048, 16 * getattr(getattr(encoder, "config", None),
                                                    "batch_size", 32))
        n_pending = sum(map(len, pending.values()))
        bar = tqdm(total=n_pending, desc=f"encode {table.modality}", unit="item",
                   disable=not progress, leave=False)
        # one bar, ours; encoders that batch internally may report progress through a callback
        quiet, live = hasattr(encoder, "show_progress"), hasattr(encoder, "progress_callback")
        saved = (getattr(encoder, "show_progress", None), getattr(encoder, "progress_callback",
                                                                  None))
        if quiet:
            encoder.show_progress = False
        if live:
            encoder.progress_callback = bar.update
        last_commit = time.perf_counter()
        try:
            for start in range(0, len(unique), size):
                chunk = unique[start:start + size]
                res = encoder.encode([inputs[pending[k][0]] for k in chunk])
                table.ensure_dim(res.vectors.shape[1])
                for j, key in enumerate(chunk):
                    if res.mask[j]:
                        vector, error = res.vectors[j], None
                    else:
                        error = res.errors.get(j) or "encoder returned no vector"
                        vector = None
                    for pos in pending[key]:
                        table.set_row(rows[pos], key, vector, error)
                        if error is None:
                            report.n_encoded += 1
                        else:
                            report.failures[ids[pos]] = error
                    if not live:
                        bar.update(len(pending[key]))
                    else:                                         # duplicates of this input
                        bar.update(len(pending[key]) - 1)
                if time.perf_counter() - last_commit > checkpoint_seconds:
                    table.write(folder)
                    last_commit = time.perf_counter()
        finally:
            bar.close()
            if quiet:
                encoder.show_progress = saved[0]
            if live:
                encoder.progress_callback = saved[1]
        if report.failures:
            first = next(iter(report.failures.items()))
            log.warning("%s: %d item(s) could not be encoded, e.g. %s: %s", table.modality,
                        report.n_failed, *first)


__all__ = ["EncodeReport", "FeatureStore", "content_key", "peak_rss_mb"]
