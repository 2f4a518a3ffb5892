"""Write-then-rename (inference/atomic.py): a destination is complete or absent, never half."""

from __future__ import annotations

from pathlib import Path

import pytest

from codet5_lsp.inference.atomic import atomic_folder, atomic_write_text, discard_unfinished_folders


def test_a_folder_appears_whole_when_the_block_ends(tmp_path: Path) -> None:
    dst = tmp_path / "model"
    with atomic_folder(dst) as work:
        (work.folder / "model.bin").write_text("weights")
        (work.scratch / "t5").mkdir()
        assert not dst.exists()  # nothing under the final name while it is written
    assert sorted(p.name for p in dst.iterdir()) == ["model.bin"]  # scratch is not part of it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no work folder left


def test_a_failed_block_leaves_nothing_and_keeps_the_old_folder(tmp_path: Path) -> None:
    dst = tmp_path / "model"
    dst.mkdir()
    (dst / "old.bin").write_text("old")
    with pytest.raises(RuntimeError, match="conversion failed"):
        with atomic_folder(dst, overwrite=True) as work:
            (work.folder / "model.bin").write_text("half")
            raise RuntimeError("conversion failed")
    assert [p.name for p in dst.iterdir()] == ["old.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_an_occupied_destination_is_replaced_only_when_asked(tmp_path: Path) -> None:
    dst = tmp_path / "model"
    dst.mkdir()
    (dst / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not an empty folder"):
        with atomic_folder(dst):
            pytest.fail("the block must not run")
    assert (dst / "keep.txt").read_text() == "x"
    with atomic_folder(dst, overwrite=True) as work:
        (work.folder / "new.txt").write_text("y")
    assert [p.name for p in dst.iterdir()] == ["new.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with atomic_folder(empty) as work:  # an empty folder is no loss
        (work.folder / "a").write_text("a")
    assert (empty / "a").read_text() == "a"


def test_a_hard_exit_discards_unfinished_work(tmp_path: Path) -> None:
    dst = tmp_path / "model"
    with atomic_folder(dst) as work:
        (work.folder / "model.bin").write_text("half")
        discard_unfinished_folders()  # what Ctrl-C / SIGTERM does mid-conversion
        assert not work.folder.exists()
        work.folder.mkdir(parents=True)  # (so that the block can end here)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_file_is_replaced_in_one_step(tmp_path: Path) -> None:
    record = tmp_path / "cache" / "probe.json"
    atomic_write_text(record, "one\n")
    atomic_write_text(record, "two\n")
    assert record.read_text() == "two\n"
    assert [p.name for p in record.parent.iterdir()] == ["probe.json"]
