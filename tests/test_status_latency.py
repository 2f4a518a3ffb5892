"""`codet5/status` carries the latency of every completion (the editors' status bars show it).

The state changes only on load and error, so before this a client never saw `latencyMs`:
VS Code's status item stayed "CodeT5" without a figure (issue 14).
"""

from __future__ import annotations

import json

import pytest
from lsprotocol import types

from tests.support.lsp import open_document, start_client, wait_for
from tests.support.sources import EDITOR_SOURCE

pytestmark = pytest.mark.slow  # a server process


async def test_each_completion_is_followed_by_a_status_with_its_latency(labmodel_float32, tmp_path):
    client, _result, statuses = await start_client(
        [
            "--model",
            str(labmodel_float32.folder),
            "--device",
            "cpu",
            "--compute-type",
            "float32",
            "--summary-model",
            str(labmodel_float32.folder),
            "--stats-file",
            str(tmp_path / "stats.jsonl"),
        ],
        tmp_path,
        debounceMs=0,
        requestTimeoutMs=120000,
    )
    try:
        uri = "file:///tmp/example.py"
        open_document(client, uri, EDITOR_SOURCE)
        assert await wait_for(lambda: statuses and statuses[-1]["state"] == "ready"), statuses
        lines = EDITOR_SOURCE.splitlines()
        positions = [
            types.Position(line=len(lines) - 1, character=len(lines[-1])),
            types.Position(line=5, character=len("    with open(")),
            types.Position(line=12, character=len("        names.append(")),
        ]
        events = tmp_path / "stats.jsonl"
        for number, position in enumerate(positions, start=1):
            before = len(statuses)
            reply = await client.text_document_inline_completion_async(
                types.InlineCompletionParams(
                    text_document=types.TextDocumentIdentifier(uri=uri),
                    position=position,
                    context=types.InlineCompletionContext(
                        trigger_kind=types.InlineCompletionTriggerKind.Invoked
                    ),
                )
            )
            items = reply.items if hasattr(reply, "items") else reply
            assert items, f"no completion at {position}"
            # This completion's latency, as the server's statistics file records it.
            shown = [json.loads(line) for line in events.read_text().splitlines()]
            shown = [e for e in shown if e["kind"] == "shown"]
            assert len(shown) == number
            latency = shown[-1]["latency_ms"]
            assert isinstance(latency, (int, float)) and 0 < latency < 120000, shown[-1]

            def carries_it(before: int = before, latency: float = latency) -> bool:
                return any(
                    s.get("latencyMs") == pytest.approx(latency, abs=0.1) for s in statuses[before:]
                )

            assert await wait_for(carries_it, timeout=10), (
                f"no codet5/status with this completion's latency ({latency} ms) after it: "
                f"{statuses[before:]}"
            )
            status = next(
                s
                for s in statuses[before:]
                if s.get("latencyMs") == pytest.approx(latency, abs=0.1)
            )
            assert status["state"] == "ready", status
            assert status["device"] == "cpu", status
            # A handful of statuses per completion at most (the summary model may also report
            # while it loads), not a flood.
            assert len(statuses) - before <= 3, statuses[before:]
    finally:
        await client.shutdown_session()
