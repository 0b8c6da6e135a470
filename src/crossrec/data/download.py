"""Download the public MovieLens archives from GroupLens (the only built-in download).

Example:
    >>> folder = fetch_movielens("ml-100k", "~/.cache/crossrec")  # doctest: +SKIP
    >>> load_dataset("ml-100k", folder)  # doctest: +SKIP

MovieLens terms: research use only, no redistribution; cite Harper & Konstan, TiiS 2015.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import urllib.request
import zipfile
from pathlib import Path

log = logging.getLogger(__name__)

MOVIELENS_URLS = {
    "ml-100k": "https://files.grouplens.org/datasets/movielens/ml-100k.zip",
    "ml-1m": "https://files.grouplens.org/datasets/movielens/ml-1m.zip",
}


def fetch_movielens(name: str, cache_dir, url: str | None = None, timeout: float = 60.0) -> Path:
    """Download and unpack a GroupLens MovieLens zip into ``cache_dir/<name>``; return it.

    Skips the download when ``cache_dir/<name>`` already exists. The archive is checked to be
    a zip whose members stay inside the folder, unpacked into a temporary folder next to the
    target and renamed into place, so an interrupted run never leaves a half-unpacked folder.

    Args:
        name: "ml-100k" or "ml-1m".
        cache_dir: where ``<name>/`` goes (created if needed).
        url: another source of the same zip (a mirror, or a ``file://`` URL).
    """
    if name not in MOVIELENS_URLS:
        raise ValueError(f"unknown MovieLens dataset {name!r}; expected one of "
                         f"{', '.join(MOVIELENS_URLS)}")
    cache = Path(cache_dir).expanduser()
    target = cache / name
    if target.is_dir():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    url = url or MOVIELENS_URLS[name]
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=cache))
    try:
        archive = tmp / f"{name}.zip"
        log.info("downloading %s", url)
        with urllib.request.urlopen(url, timeout=timeout) as response, open(archive, "wb") as f:
            shutil.copyfileobj(response, f)
        if not zipfile.is_zipfile(archive):
            raise ValueError(f"{url} did not give a zip archive ({archive.stat().st_size} bytes)")
        unpacked = tmp / "unpacked"
        with zipfile.ZipFile(archive) as zf:
            bad = zf.testzip()
            if bad is not None:
                raise ValueError(f"{url}: corrupt member {bad!r} in the zip archive")
            for member in zf.namelist():
                dest = (unpacked / member).resolve()
                if not dest.is_relative_to(unpacked.resolve()):
                    raise ValueError(f"{url}: unsafe path {member!r} in the zip archive")
            zf.extractall(unpacked)
        entries = [p for p in unpacked.iterdir() if not p.name.startswith("__MACOSX")]
        # the GroupLens zips hold one folder named like the dataset; accept a flat zip too
        source = entries[0] if len(entries) == 1 and entries[0].is_dir() else unpacked
        try:
            os.rename(source, target)
        except OSError:
            if not target.is_dir():  # not a concurrent download that finished first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
