"""Last.fm HetRec 2011 (``lastfm-2k``): 92,834 (user, artist, play count) rows, 1,892 users.

Interactions from ``user_artists.dat`` (the play count ``weight`` as the value, no timestamps).
Catalog from ``artists.dat``: medium "music", text "name", text "tags" (the comma-joined user
tags of ``lfm2k_text.tsv``, where present), media "image" = ``pictureURL`` where non-empty.
Precomputed item features, when ``features/`` is present, row-aligned through
``features/artist_ids.tsv``: "minilm" (all-MiniLM-L6-v2 text, 384), "vggish" (audio, 128) and
"whisper" (audio, 512), for 1,425 artists; other artists get a zero row and mask False.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from crossrec.data.catalog import Catalog
from crossrec.data.dataset import Dataset
from crossrec.data.datasets._files import require
from crossrec.data.readers import (
    DataError,
    check_interactions_known,
    read_catalog,
    read_interactions,
    read_table,
)

log = logging.getLogger(__name__)

NAME = "lastfm-2k"
FEATURE_FILES = {"minilm": "all-MiniLM-L6-v2.npy", "vggish": "vggish.npy",
                 "whisper": "whisper.npy"}
"""Feature name -> file in ``features/``."""


def load(folder) -> Dataset:
    """Load lastfm-2k from ``folder``."""
    folder = Path(folder)
    frame = read_interactions(require(folder, "user_artists.dat", "user-artist play counts"),
                              columns={"user_id": "userID", "item_id": "artistID",
                                       "rating": "weight"})
    catalog = read_catalog(require(folder, "artists.dat", "artist list"),
                           columns={"item_id": "id"}, medium="music",
                           text_fields={"name": "name"}, media={"image": "pictureURL"})
    text_path = folder / "lfm2k_text.tsv"
    if text_path.is_file():
        table = read_table(text_path)
        by_id = dict(zip(table["artistID"], table["text"]))
        tags = np.asarray([by_id.get(i, "") for i in catalog.ids], dtype=object)
        catalog = Catalog(catalog.ids, catalog.medium, {**catalog.text, "tags": tags},
                          catalog.media, catalog.categories, catalog.tags, catalog.attributes)
    check_interactions_known(frame, catalog)
    return Dataset.from_frame(NAME, frame, catalog, features=_features(folder / "features"))


def _features(folder: Path) -> dict[str, tuple[list[str], np.ndarray]]:
    """name -> (artist ids, matrix) for each feature file present."""
    ids_path = folder / "artist_ids.tsv"
    if not ids_path.is_file():
        if folder.is_dir():
            log.warning("%s: no artist_ids.tsv, features not loaded", folder)
        return {}
    table = read_table(ids_path)
    order = np.argsort(table["row_index"].astype(int).to_numpy())
    ids = table["artist_id"].to_numpy(object)[order].tolist()
    out = {}
    for name, filename in FEATURE_FILES.items():
        path = folder / filename
        if not path.is_file():
            continue
        matrix = np.load(path)
        if matrix.ndim != 2 or len(matrix) != len(ids):
            raise DataError(path, f"has shape {matrix.shape}; {ids_path.name} lists "
                                  f"{len(ids)} rows")
        out[name] = (ids, matrix)
    return out
