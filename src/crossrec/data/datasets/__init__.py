"""Built-in datasets, one module each, registered by name in :data:`DATASETS`.

Example:
    >>> ds = load_dataset("ml-100k", "../shared/data")  # doctest: +SKIP
    >>> ds.summary()["interactions"]  # doctest: +SKIP
    100000
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from crossrec.data.dataset import Dataset
from crossrec.data.datasets import douban, folder, lfm2k, ml1m, ml100k

DATASETS: dict[str, Callable[[Path], Dataset]] = {
    ml100k.NAME: ml100k.load,
    ml1m.NAME: ml1m.load,
    lfm2k.NAME: lfm2k.load,
    douban.NAME: douban.load,
    folder.NAME: folder.load,
    "demo": folder.load_demo,
}
"""Dataset name -> loader taking the dataset's folder."""


def load_dataset(name: str, data_dir) -> Dataset:
    """Load the built-in dataset ``name`` from ``data_dir``.

    ``data_dir`` is the dataset's folder, or a folder holding it as ``<data_dir>/<name>/``.

    Raises:
        ValueError: an unknown name (the message lists the known ones).
        FileNotFoundError: a missing folder, or a folder that lacks an expected file (named).
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
    folder = Path(data_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"dataset folder {folder} does not exist")
    if (folder / name).is_dir():
        folder = folder / name
    return DATASETS[name](folder)


__all__ = ["DATASETS", "load_dataset"]
