"""Your own data as a folder (``folder``; the generated demo data is one, ``demo``).

The folder holds ``interactions.{csv,tsv,parquet,jsonl}`` (columns ``user_id``, ``item_id`` and
optionally ``rating``, ``timestamp``, ``event``; common aliases are recognised) and optionally
``items.{csv,tsv,parquet,jsonl}``: ``item_id``, ``medium``, text columns (``title``,
``description``, ``text``, ``plot``, ``lyrics``, ``transcript``), media columns (``image``,
``audio``, ``video``: paths relative to the folder, or URLs), ``categories`` and ``tags``
(lists, or ``|``-separated strings) and numeric ``year``. Every interaction item must be in the
catalog. For other layouts use :func:`crossrec.data.readers.load_user_dataset` with a column
mapping.
"""

from __future__ import annotations

from pathlib import Path

from crossrec.data.dataset import Dataset
from crossrec.data.datasets._files import find, missing
from crossrec.data.readers import load_user_dataset, read_table

NAME = "folder"
SUFFIXES = ("csv", "tsv", "parquet", "jsonl")
TEXT_FIELDS = ("title", "description", "text", "plot", "lyrics", "transcript")
MEDIA = ("image", "audio", "video")


def load(folder, name: str = NAME) -> Dataset:
    folder = Path(folder)
    inter = find(folder, *(f"interactions.{s}" for s in SUFFIXES))
    if inter is None:
        raise missing(folder, name, [f"interactions.{{{','.join(SUFFIXES)}}}"])
    items = find(folder, *(f"items.{s}" for s in SUFFIXES))
    options = None
    if items is not None:
        cols = set(read_table(items).columns)
        options = {"medium": "medium" if "medium" in cols else "item",
                   "text_fields": [c for c in TEXT_FIELDS if c in cols],
                   "media": {m: m for m in MEDIA if m in cols},
                   "categories": "categories" if "categories" in cols else None,
                   "tags": "tags" if "tags" in cols else None,
                   "attributes": [c for c in ("year",) if c in cols]}
    return load_user_dataset(name, inter, items, catalog_options=options)


def load_demo(folder) -> Dataset:
    """The demo data written by ``crossrec demo-data`` (a folder dataset named ``demo``)."""
    return load(folder, name="demo")
