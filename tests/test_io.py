"""atomic_folder: a folder is replaced whole or not at all."""

import pytest

from crossrec._io import atomic_folder


def test_replaces_the_folder_whole(tmp_path):
    target = tmp_path / "out"
    with atomic_folder(target) as tmp:
        (tmp / "a.txt").write_text("1")
    with atomic_folder(target) as tmp:
        (tmp / "b.txt").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]          # nothing left beside it


def test_a_failure_keeps_the_old_folder_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out"
    with atomic_folder(target) as tmp:
        (tmp / "a.txt").write_text("1")
    with pytest.raises(RuntimeError, match="half way"):
        with atomic_folder(target) as tmp:
            (tmp / "b.txt").write_text("2")
            raise RuntimeError("half way")
    assert sorted(p.name for p in target.iterdir()) == ["a.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
