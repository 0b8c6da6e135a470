"""Shared fixtures: where the real benchmark data lives (skipped when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"
"""``<repo>/../shared/data``; override with the environment variable CROSSREC_DATA_DIR."""


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The folder holding the real datasets; skips the test when it is missing."""
    root = Path(os.environ.get("CROSSREC_DATA_DIR", DEFAULT_DATA_DIR))
    if not root.is_dir():
        pytest.skip(f"shared data not found at {root} (set CROSSREC_DATA_DIR)")
    return root


@pytest.fixture(scope="session")
def dataset_dir(data_root):
    """``dataset_dir(name)`` -> the folder of one real dataset; skips when it is missing."""

    def get(name: str) -> Path:
        folder = data_root / name
        if not folder.is_dir():
            pytest.skip(f"dataset {name!r} not found in {data_root}")
        return folder

    return get


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory) -> Path:
    """A small generated demo dataset (the project's own data, no shared files)."""
    from crossrec.data.demo import write_demo

    return write_demo(tmp_path_factory.mktemp("demo"), n_users=120, n_items=150, seed=1)
