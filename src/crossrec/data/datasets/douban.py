"""Douban Book + Music (``douban``): a cross-domain set with users shared across two media.

``book_ratings.dat`` (96,041 rows) and ``music_ratings.dat`` (69,709 rows): ``user item rating``,
tab-separated, no header, no timestamps. Item ids are per domain, so they become
``book_<id>`` / ``music_<id>`` (medium "book" / "music"); user ids are kept (shared: 1,566 of
2,216 users rated in both). Interactions: books, then music, each in file order. The catalog
holds ids and media only: books, then music, each in natural id order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from crossrec.data.catalog import Catalog
from crossrec.data.dataset import Dataset
from crossrec.data.datasets._files import require
from crossrec.data.idmap import natural_order
from crossrec.data.readers import read_interactions

NAME = "douban"
DOMAINS = (("book", "book_ratings.dat"), ("music", "music_ratings.dat"))
"""(medium, file) per domain, in the order their rows are concatenated."""


def load(folder) -> Dataset:
    """Load douban from ``folder``."""
    folder = Path(folder)
    frames, ids, media = [], [], []
    for medium, filename in DOMAINS:
        frame = read_interactions(require(folder, filename, f"{medium} ratings"), fmt="tsv",
                                  names=["user_id", "item_id", "rating"])
        frame["item_id"] = medium + "_" + frame["item_id"]
        items = frame["item_id"].unique()
        ids.append(np.asarray(items, dtype=object)[natural_order(list(items))])
        media.append(np.full(len(items), medium, dtype=object))
        frames.append(frame)
    frame = pd.concat(frames, ignore_index=True)
    catalog = Catalog(np.concatenate(ids), np.concatenate(media))
    return Dataset.from_frame(NAME, frame, catalog)
