"""Write-then-rename: a file or folder appears complete under its final name, or not at all.

An interrupted conversion, record or download must never leave something that looks finished
(the model cache trusts any folder with its metadata file). Everything is written under a
hidden temporary name in the destination's own folder (same file system, so the rename is
atomic) and renamed into place at the end; on an error the temporary copy is removed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

# Work folders of `atomic_folder` blocks running now: a process that must stop at once
# (Ctrl-C, SIGTERM) removes them with `discard_unfinished_folders`.
_IN_PROGRESS: set[Path] = set()


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary sibling and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class FolderInProgress(NamedTuple):
    folder: Path  # write the result here: it becomes the destination
    scratch: Path  # intermediate files; removed at the end either way


@contextmanager
def atomic_folder(dst: Path, *, overwrite: bool = False) -> Iterator[FolderInProgress]:
    """An empty folder that becomes `dst` when the block ends without an error.

    `dst` may exist only as an empty folder, unless `overwrite` (then it is replaced
    whole); otherwise FileExistsError. On an error, nothing is left behind."""
    dst = Path(dst)
    if not overwrite and dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise FileExistsError(f"destination {dst} exists and is not an empty folder")
    dst.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dst.name}.partial-", dir=dst.parent))
    _IN_PROGRESS.add(work)
    try:
        result = FolderInProgress(work / "result", work / "scratch")
        result.folder.mkdir()
        result.scratch.mkdir()
        yield result
        if dst.exists():
            os.replace(dst, work / "old")  # a folder cannot be renamed over a non-empty one
        os.replace(result.folder, dst)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        _IN_PROGRESS.discard(work)


def discard_unfinished_folders() -> None:
    """Remove the work folders of every `atomic_folder` still in progress (at a hard exit)."""
    for work in list(_IN_PROGRESS):
        shutil.rmtree(work, ignore_errors=True)
