"""`codet5-lsp serve` spoken to the way VS Code's language client speaks.

editors/vscode/test-protocol/drive.js (vscode-languageserver-protocol from editors/vscode's
node_modules) sends VS Code 1.9x's ClientCapabilities, then inline completion, the accept
command, hover, and a cancelled inline completion, and prints what came back.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.support.lsp import REQUEST_CANCELLED, editor_command
from tests.support.paths import REPO
from tests.support.sources import READ_LINES_SOURCE

pytestmark = pytest.mark.slow  # node and a server process

VSCODE = REPO / "editors" / "vscode"

SOURCE = READ_LINES_SOURCE + "    return \n"  # the cursor after "return " (typed)
CURSOR = (10, 11)  # end of "    return "
HOVER = (3, 6)  # on "read_lines"


@pytest.fixture(scope="module")
def node_modules() -> Path:
    """editors/ci-setup.sh runs `npm ci`; a bare checkout gets it here (from the registry)."""
    modules = VSCODE / "node_modules"
    if not (modules / "vscode-languageserver-protocol").exists():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"], cwd=VSCODE, check=True, timeout=600
        )
    return modules


@pytest.fixture(scope="module")
def session(node_modules: Path, shared_xdg_cache: Path, tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("vscode-protocol")
    source = tmp / "example.py"
    source.write_text(SOURCE)
    command = editor_command(tmp)
    env = dict(
        os.environ,
        XDG_CACHE_HOME=str(shared_xdg_cache),
        HF_HUB_OFFLINE="1",
        XDG_STATE_HOME=str(tmp / "state"),
    )
    done = subprocess.run(
        [
            "node",
            str(VSCODE / "test-protocol/drive.js"),
            json.dumps(command),
            str(source),
            str(CURSOR[0]),
            str(CURSOR[1]),
            str(HOVER[0]),
            str(HOVER[1]),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=420,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout)


def _items(result) -> list[dict]:
    if result is None:
        return []
    return result if isinstance(result, list) else result.get("items", [])


def test_server_declares_what_vscode_needs(session: dict):
    capabilities = session["capabilities"]
    # VS Code's client registers its inline provider only when this is present ({} is fine).
    assert capabilities.get("inlineCompletionProvider") not in (None, False), capabilities
    assert capabilities.get("hoverProvider") not in (None, False), capabilities
    assert capabilities.get("positionEncoding", "utf-16") == "utf-16"


def test_inline_completion_returns_an_item_with_the_accept_command(session: dict):
    items = _items(session["inline"])
    assert items, session.get("inlineError") or session["stderr"]
    item = items[0]
    assert isinstance(item["insertText"], str) and item["insertText"].strip()
    start, end = item["range"]["start"], item["range"]["end"]
    assert start["line"] <= CURSOR[0] and end == {"line": CURSOR[0], "character": CURSOR[1]}
    assert item["command"]["command"] == "codet5.accepted"
    assert item["command"]["arguments"]
    assert session["acceptedOk"], session.get("acceptedError")


def test_status_notifications_reach_the_client(session: dict):
    states = [s["state"] for s in session["statuses"]]
    assert "ready" in states, session["statuses"]


def test_hover_returns_markdown(session: dict):
    hover = session.get("hover")
    assert hover, session.get("hoverError")
    contents = hover["contents"]
    assert contents["kind"] == "markdown"
    assert contents["value"].strip()


def test_cancelled_inline_completion_is_answered_with_request_cancelled(session: dict):
    cancelled = session["cancelled"]
    assert "error" in cancelled, f"cancelled request answered with a result: {cancelled}"
    assert cancelled["error"]["code"] == REQUEST_CANCELLED
    # ...and the server goes on serving.
    assert "afterCancelError" not in session, session.get("afterCancelError")
    assert session["exitCode"] == 0
