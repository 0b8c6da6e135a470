"""MovieLens 100K (``ml-100k``): 100,000 ratings of 943 users on 1,682 movies.

Reads either layout of a folder:

- RecBole atomic files ``ml-100k.inter`` and ``ml-100k.item`` (ids as in the files);
- the original GroupLens files ``u.data`` and ``u.item`` (latin-1, ``|``-separated, 19 genre
  flags), as unpacked from ``ml-100k.zip`` by :func:`crossrec.data.download.fetch_movielens`.

Catalog: medium "movie", text "title" (without the year) and, when ``imdb_details.csv`` is in the
folder, "plot" (its ``description``, joined on ``movie_id``; IMDb's "no plot yet" placeholder
counts as missing); categories = genres; attribute "year" (NaN where not a number, e.g. 'V').
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from crossrec.data.catalog import Catalog
from crossrec.data.dataset import Dataset
from crossrec.data.datasets._files import missing, require
from crossrec.data.readers import (
    DataError,
    check_interactions_known,
    read_atomic,
    read_interactions,
    read_table,
    split_labels,
)

NAME = "ml-100k"
GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
          "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
          "Romance", "Sci-Fi", "Thriller", "War", "Western")
"""Order of the genre flags in GroupLens ``u.item``."""
PLOT_PLACEHOLDER = "It looks like we don't have any Plot Summaries"


def load(folder) -> Dataset:
    """Load ml-100k from ``folder`` (atomic files preferred over the GroupLens layout)."""
    folder = Path(folder)
    if (folder / "ml-100k.inter").is_file():
        frame = read_interactions(folder / "ml-100k.inter")
        items, _ = read_atomic(require(folder, "ml-100k.item", "RecBole item file"))
        ids, titles = items["item_id"], items["movie_title"]
        years = items["release_year"]
        categories = split_labels(items["class"], " ")
    elif (folder / "u.data").is_file():
        frame = read_interactions(folder / "u.data", fmt="tsv",
                                  names=["user_id", "item_id", "rating", "timestamp"])
        items = read_table(require(folder, "u.item", "GroupLens item file"), fmt="tsv", sep="|",
                           encoding="latin-1", names=["item_id", "title", "release_date",
                                                      "video_release_date", "imdb_url", *GENRES])
        ids = items["item_id"]
        # "Toy Story (1995)" -> "Toy Story", "1995"; the last parenthesis holds the year
        parts = items["title"].str.extract(r"^(.*\S)\s*\(([^()]*)\)\s*$")
        titles = parts[0].fillna(items["title"])
        years = parts[1].fillna("")
        flags = items[list(GENRES)].to_numpy() == "1"
        categories = [tuple(g for g, on in zip(GENRES, row) if on) for row in flags]
    else:
        raise missing(folder, NAME, ["ml-100k.inter + ml-100k.item (RecBole)",
                                     "u.data + u.item (GroupLens ml-100k.zip)"])
    text = {"title": titles.astype("str").to_numpy(object)}
    plots = _plots(folder, ids)
    if plots is not None:
        text["plot"] = plots
    year = pd.to_numeric(years.astype("str").str.strip(), errors="coerce").to_numpy(np.float64)
    catalog = Catalog(ids.astype("str").to_numpy(object), "movie", text, categories=categories,
                      attributes={"year": year})
    check_interactions_known(frame, catalog)
    return Dataset.from_frame(NAME, frame, catalog)


def _plots(folder: Path, ids: pd.Series) -> np.ndarray | None:
    """(n,) plot summaries from ``imdb_details.csv`` aligned with ``ids`` ("" where none)."""
    path = folder / "imdb_details.csv"
    if not path.is_file():
        return None
    details = read_table(path, fmt="csv")
    for col in ("movie_id", "description"):
        if col not in details.columns:
            raise DataError(path, f"not found; columns found: {list(details.columns)}", line=1,
                            column=col)
    plot = details["description"].str.strip()
    plot = plot.where(~plot.str.startswith(PLOT_PLACEHOLDER), "")
    by_id = dict(zip(details["movie_id"].str.strip(), plot))
    return np.asarray([by_id.get(i, "") for i in ids], dtype=object)
