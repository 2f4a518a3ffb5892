"""`codet5/status` carries the latency of every completion (the editors' status bars show it).

The state changes only on load and error, so before this a client never saw `latencyMs`:
VS Code's status item stayed "CodeT5" without a figure (issue 14).
"""

from __future__ import annotations

import asyncio
import json
import sys

import pytest
from lsprotocol import types
from pytest_lsp import ClientServerConfig, client_capabilities

SOURCE = '''import os


def read_config(path):
    """Read a config file."""
    with open(path) as handle:
        return handle.read()


def list_files(folder):
    names = []
    for name in os.listdir(folder):
        names.append(os.path.join(folder, name))
    return names


def main():
    files = list_files(os.getcwd())
    for f in files:
        print(
'''


async def _wait_for(predicate, timeout=120.0):
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return predicate()


async def test_each_completion_is_followed_by_a_status_with_its_latency(labmodel_float32, tmp_path):
    import os

    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path), XDG_STATE_HOME=str(tmp_path))
    config = ClientServerConfig(
        server_command=[sys.executable, "-m", "codet5_lsp.server.cli", "serve",
                        "--model", str(labmodel_float32.folder), "--device", "cpu",
                        "--compute-type", "float32", "--summary-model", str(labmodel_float32.folder),
                        "--stats-file", str(tmp_path / "stats.jsonl")],
        server_env=env)
    client = await config.start()
    statuses: list[dict] = []

    @client.feature("codet5/status")
    def on_status(params):  # raw JSON object
        statuses.append(params if isinstance(params, dict) else params._asdict())

    await client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"),
        initialization_options={"debounceMs": 0, "requestTimeoutMs": 120000}))
    try:
        uri = "file:///tmp/example.py"
        client.text_document_did_open(types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1,
                                                 text=SOURCE)))
        assert await _wait_for(lambda: statuses and statuses[-1]["state"] == "ready"), statuses
        lines = SOURCE.splitlines()
        positions = [types.Position(line=len(lines) - 1, character=len(lines[-1])),
                     types.Position(line=5, character=len("    with open(")),
                     types.Position(line=12, character=len("        names.append("))]
        events = tmp_path / "stats.jsonl"
        for number, position in enumerate(positions, start=1):
            before = len(statuses)
            reply = await client.text_document_inline_completion_async(
                types.InlineCompletionParams(
                    text_document=types.TextDocumentIdentifier(uri=uri), position=position,
                    context=types.InlineCompletionContext(
                        trigger_kind=types.InlineCompletionTriggerKind.Invoked)))
            items = reply.items if hasattr(reply, "items") else reply
            assert items, f"no completion at {position}"
            # This completion's latency, as the server's statistics file records it.
            shown = [json.loads(line) for line in events.read_text().splitlines()]
            shown = [e for e in shown if e["kind"] == "shown"]
            assert len(shown) == number
            latency = shown[-1]["latency_ms"]
            assert isinstance(latency, (int, float)) and 0 < latency < 120000, shown[-1]

            def carries_it(before: int = before, latency: float = latency) -> bool:
                return any(s.get("latencyMs") == pytest.approx(latency, abs=0.1)
                           for s in statuses[before:])

            assert await _wait_for(carries_it, timeout=10), \
                f"no codet5/status with this completion's latency ({latency} ms) after it: " \
                f"{statuses[before:]}"
            status = next(s for s in statuses[before:]
                          if s.get("latencyMs") == pytest.approx(latency, abs=0.1))
            assert status["state"] == "ready", status
            assert status["device"] == "cpu", status
            # A handful of statuses per completion at most (the summary model may also report
            # while it loads), not a flood.
            assert len(statuses) - before <= 3, statuses[before:]
    finally:
        await client.shutdown_session()
