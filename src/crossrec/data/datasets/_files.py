"""Small helpers shared by the dataset loaders: finding files, clear errors when absent."""

from __future__ import annotations

from pathlib import Path


def find(folder: Path, *names: str) -> Path | None:
    """The first of ``names`` that exists in ``folder``, else None."""
    for name in names:
        if (folder / name).is_file():
            return folder / name
    return None


def require(folder: Path, name: str, what: str = "") -> Path:
    """``folder / name``, or a FileNotFoundError naming the expected file."""
    path = folder / name
    if not path.is_file():
        raise FileNotFoundError(f"{folder}: expected file {name!r}{' (' + what + ')' if what else ''}"
                                f" is missing")
    return path


def missing(folder: Path, dataset: str, layouts: list[str]) -> FileNotFoundError:
    """The error for a folder that holds none of a dataset's known layouts."""
    return FileNotFoundError(f"{folder}: no {dataset} files found; expected "
                             + " or ".join(layouts))
