"""Shared fixtures: the stand-in checkpoint, its conversions (once per session), a cache dir.

The helpers they are built from live in tests/support/ (test modules import those, never this
file or each other)."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

from tests.support.paths import LABMODEL, REPO


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
    [str(_SHIM)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
)


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


@pytest.fixture(scope="session")
def labmodel_float32(labmodel_path, model_cache_dir):
    from tests.support.checkpoints import convert_labmodel

    return convert_labmodel(labmodel_path, model_cache_dir, "float32")


@pytest.fixture(scope="session")
def labmodel_int8(labmodel_path, model_cache_dir):
    from tests.support.checkpoints import convert_labmodel

    return convert_labmodel(labmodel_path, model_cache_dir, "int8")


@pytest.fixture(scope="module")
def reference(labmodel_path):
    """The labmodel in transformers (float32): what the engine's tokens must equal."""
    from tests.support.checkpoints import labmodel_reference

    return labmodel_reference(labmodel_path)


@pytest.fixture(scope="module")
def engine(labmodel_float32):
    """The engine on the float32 labmodel (test_engine.py overrides it with an int8 one)."""
    from codet5_lsp.inference.engine import CompletionEngine

    eng = CompletionEngine(labmodel_float32, device="cpu", compute_type="float32")
    yield eng
    eng.close()
