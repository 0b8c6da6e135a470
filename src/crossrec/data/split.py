"""Split: train / valid / test parts plus candidate items, and the split-folder format.

The split-folder interchange format (see PROTOCOL.md) is what any other tool can read or write:
``train.tsv``, ``valid.tsv``, ``test.tsv`` (``user_id item_id rating timestamp``, original ids),
``items.tsv`` (``item_id cand_valid cand_test ...``) and ``meta.json`` (protocol, fit, exclude,
history).

At each stage a model is *fitted* on the ``fit`` parts and *scores* each user from the
``history`` parts: by default every part the stage knows about, the fitted ones and the excluded
ones. On P1 the test ranking is made by a model fitted on train alone, from each user's train
and valid interactions (valid happened before test; its items are excluded from the ranking).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from crossrec._io import atomic_folder
from crossrec.data.dataset import Dataset
from crossrec.data.interactions import Interactions

PARTS = ("train", "valid", "test")
STAGES = ("valid", "test")


@dataclass
class Split:
    """Parts on the dataset's indices, candidate masks per stage, and what to fit / exclude.

    Attributes:
        protocol: protocol name, e.g. "p1".
        dataset: the Dataset whose id maps and catalog the indices refer to.
        parts: "train" | "valid" | "test" -> Interactions.
        candidates: stage -> (n_items,) bool, the items ranked at that stage.
        fit: stage -> names of the parts a model trains on before ranking that stage.
        exclude: stage -> names of the parts whose items are removed from each user's ranking.
        history: stage -> names of the parts a fitted model reads a user's history from when it
            ranks that stage (default: the fit parts, then the excluded ones not among them).
        info: anything else the protocol records (seed, counts of dropped duplicates, ...).
    """

    protocol: str
    dataset: Dataset
    parts: dict[str, Interactions]
    candidates: dict[str, np.ndarray]
    fit: dict[str, list[str]] = field(default_factory=lambda: {"valid": ["train"],
                                                               "test": ["train"]})
    exclude: dict[str, list[str]] = field(default_factory=lambda: {"valid": ["train"],
                                                                   "test": ["train", "valid"]})
    info: dict = field(default_factory=dict)
    history: dict[str, list[str]] | None = None

    def __post_init__(self):
        if self.history is None:
            self.history = {stage: default_history(self.fit[stage], self.exclude[stage])
                            for stage in STAGES}
        for stage in STAGES:
            for name in self.fit[stage] + self.exclude[stage] + self.history[stage]:
                if name not in self.parts:
                    raise ValueError(f"split {self.protocol!r}: stage {stage!r} names unknown "
                                     f"part {name!r}")
            if stage in self.fit[stage] or stage in self.history[stage]:
                raise ValueError(f"split {self.protocol!r}: stage {stage!r} cannot be fitted "
                                 f"on or read as history for its own ranking")

    def history_interactions(self, stage: str) -> Interactions:
        return Interactions.concat([self.parts[p] for p in self.history[stage]])

    def fit_interactions(self, stage: str) -> Interactions:
        return Interactions.concat([self.parts[p] for p in self.fit[stage]])

    def exclude_matrix(self, stage: str) -> sp.csr_matrix:
        inter = Interactions.concat([self.parts[p] for p in self.exclude[stage]])
        return inter.to_csr(self.dataset.n_users, self.dataset.n_items)

    def relevant(self, stage: str) -> sp.csr_matrix:
        """(n_users, n_items) binary: the stage's interactions with candidate items."""
        part = self.parts[stage]
        keep = self.candidates[stage][part.item]
        return part.take(keep).to_csr(self.dataset.n_users, self.dataset.n_items)

    def eval_users(self, stage: str) -> np.ndarray:
        """Users with at least one relevant item at ``stage`` (ascending indices)."""
        return np.flatnonzero(np.diff(self.relevant(stage).indptr) > 0)

    def stats(self) -> dict:
        out = {"protocol": self.protocol, "dataset": self.dataset.name}
        for name, part in self.parts.items():
            out[name] = {"users": int(len(np.unique(part.user))),
                         "items": int(len(np.unique(part.item))), "interactions": int(len(part))}
        for stage in STAGES:
            out[f"candidates_{stage}"] = int(self.candidates[stage].sum())
            out[f"eval_users_{stage}"] = int(len(self.eval_users(stage)))
        return out


# -- the folder format ------------------------------------------------------------------------

def _fmt(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def write_split(split: Split, path: str | Path) -> Path:
    """Write ``split`` as a split folder (atomically: a temp folder renamed into place)."""
    path = Path(path)
    with atomic_folder(path) as tmp:
        _write_split_files(split, tmp)
    return path


def _write_split_files(split: Split, tmp: Path) -> None:
    ds = split.dataset
    for name in PARTS:
        part = split.parts[name]
        frame = pd.DataFrame({"user_id": ds.users.ids[part.user], "item_id": ds.items.ids[part.item],
                              "rating": [_fmt(v) for v in part.value.astype(np.float64)],
                              "timestamp": [_fmt(v) for v in part.timestamp]})
        frame.to_csv(tmp / f"{name}.tsv", sep="\t", index=False, quoting=csv.QUOTE_NONE,
                     lineterminator="\n")
    in_parts = np.zeros(ds.n_items, dtype=bool)
    for part in split.parts.values():
        in_parts[part.item] = True
    universe = np.flatnonzero(in_parts | split.candidates["valid"] | split.candidates["test"])
    items = pd.DataFrame({"item_id": ds.items.ids[universe],
                          "cand_valid": split.candidates["valid"][universe].astype(int),
                          "cand_test": split.candidates["test"][universe].astype(int),
                          "medium": ds.catalog.medium[universe]})
    items.to_csv(tmp / "items.tsv", sep="\t", index=False, quoting=csv.QUOTE_NONE,
                 lineterminator="\n")
    meta = {"protocol": split.protocol, "dataset": ds.name, "fit": split.fit,
            "exclude": split.exclude, "history": split.history, "stats": split.stats(), **split.info}
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")


def read_split(path: str | Path, dataset: Dataset) -> Split:
    """Read a split folder written by any tool, mapping its ids onto ``dataset``'s id maps.

    Ids unknown to the dataset are an error naming the file and the first unknown id.
    """
    from crossrec.data.readers import DataError, read_interactions

    path = Path(path)
    for name in (*PARTS, "items.tsv", "meta.json"):
        fname = name if "." in name else f"{name}.tsv"
        if not (path / fname).exists():
            raise FileNotFoundError(f"{path}: not a split folder, {fname} is missing")
    meta = json.loads((path / "meta.json").read_text())
    parts = {}
    for name in PARTS:
        file = path / f"{name}.tsv"
        frame = read_interactions(file, columns={"user_id": "user_id", "item_id": "item_id",
                                                 "rating": "rating", "timestamp": "timestamp"})
        parts[name] = Interactions(
            user=_index_or_fail(dataset.users, frame["user_id"], file, "user_id"),
            item=_index_or_fail(dataset.items, frame["item_id"], file, "item_id"),
            timestamp=frame["timestamp"].to_numpy(np.float64),
            value=frame["rating"].to_numpy(np.float32))
    items = pd.read_csv(path / "items.tsv", sep="\t", dtype=str, keep_default_na=False)
    for col in ("item_id", "cand_valid", "cand_test"):
        if col not in items.columns:
            raise DataError(path / "items.tsv", f"not found (columns: {list(items.columns)})",
                            line=1, column=col)
    idx = _index_or_fail(dataset.items, items["item_id"], path / "items.tsv", "item_id")
    candidates = {}
    for stage in STAGES:
        mask = np.zeros(dataset.n_items, dtype=bool)
        mask[idx[items[f"cand_{stage}"].str.strip() == "1"]] = True
        candidates[stage] = mask
    fit = meta.get("fit", {"valid": ["train"], "test": ["train"]})
    exclude = meta.get("exclude", {"valid": ["train"], "test": ["train", "valid"]})
    return Split(str(meta.get("protocol", path.name)), dataset, parts, candidates, fit, exclude,
                 info={"source": str(path)}, history=meta.get("history"))


def default_history(fit: list[str], exclude: list[str]) -> list[str]:
    """The parts a stage reads histories from when a split does not say: what it fits on,
    then what it excludes (the user's interactions known before the stage)."""
    return list(fit) + [p for p in exclude if p not in fit]


def _index_or_fail(idmap, values: pd.Series, file: Path, column: str) -> np.ndarray:
    from crossrec.data.readers import DataError

    idx = idmap.get(values.astype(str))
    if (idx < 0).any():
        row = int(np.flatnonzero(idx < 0)[0])
        raise DataError(file, f"{int((idx < 0).sum())} id(s) unknown to the dataset, first "
                        f"{values.iloc[row]!r}", line=row + 2, column=column)
    return idx
