"""Soak: one server process, a scripted session of >= 10,000 edits and completion requests.

Several documents with emoji, CJK and CRLF line ends get random incremental edits (sometimes
two changes in one didChange) and inline-completion requests at random valid positions, some
of them cancelled with `$/cancelRequest`. Debounce is on, so most requests are superseded;
now and then the script pauses (waits for all answers) so that the model runs too.
Checked: every request is answered with a result or RequestCancelled (-32800), the process
stays alive, the server's copy of every document equals the client's (codet5.debugDocumentText)
and resident memory stays bounded.
"""

from __future__ import annotations

import os
import random
import re
import time

import pytest

from tests.support.lsp import REQUEST_CANCELLED, inline_params, model_args, start_server

pytestmark = pytest.mark.slow  # a server process, 10,000 edits

OPERATIONS = int(os.environ.get("CODET5_SOAK_OPERATIONS", 10_000))
DOCUMENTS = 4
MAX_IN_FLIGHT = 24
RSS_GROWTH_LIMIT_KB = 40 * 1024

_LINE_END = re.compile(r"\r\n|\r|\n")
PIECES = [
    "a",
    "b",
    "x",
    "_",
    " ",
    "(",
    ")",
    ":",
    ".",
    "=",
    "0",
    "1",
    "\n",
    "\r\n",
    "    ",
    "def ",
    "return ",
    "😀",
    "漢字",
    "é",
    "\t",
    "# ",
    "𝔘",
    "ß",
]

SEED_TEXTS = [
    "import os\r\n\r\ndef greet(name):\r\n    return f'héllo {name} 😀'\r\n",
    "# 漢字のコメント\ndef add(a, b):\n    total = a + b\n    return total\n",
    "class Box:\n    def area(self, w, h):\n        return w * h  # 面積\n\n",
    "x = 1\r\ny = 2\nz = '🎉'\r\n",
]


def line_starts(text: str) -> list[int]:
    return [0] + [m.end() for m in _LINE_END.finditer(text)]


def position_of(text: str, starts: list[int], offset: int) -> dict:
    """LSP position (UTF-16 columns) of a str offset that is not inside a CRLF."""
    line = max(i for i, s in enumerate(starts) if s <= offset) if offset else 0
    column = len(text[starts[line] : offset].encode("utf-16-le")) // 2
    return {"line": line, "character": column}


def valid_offset(rng: random.Random, text: str) -> int:
    """A random str offset that is not between the "\\r" and "\\n" of a CRLF."""
    while True:
        offset = rng.randint(0, len(text))
        if not (0 < offset < len(text) and text[offset - 1] == "\r" and text[offset] == "\n"):
            return offset


def random_edit(rng: random.Random, text: str) -> tuple[dict, str]:
    """One contentChange with a range, and the text after it."""
    start = valid_offset(rng, text)
    end = start
    if text and rng.random() < (0.8 if len(text) > 1500 else 0.35):
        end = min(len(text), start + rng.randint(1, 12))
        if 0 < end < len(text) and text[end - 1] == "\r" and text[end] == "\n":
            end += 1
    new = "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 3)))
    starts = line_starts(text)
    change = {
        "range": {"start": position_of(text, starts, start), "end": position_of(text, starts, end)},
        "text": new,
    }
    return change, text[:start] + new + text[end:]


def test_soak_edits_and_cancellations(labmodel_int8, tmp_path):
    rng = random.Random(20240611)
    pipe = start_server(model_args(labmodel_int8), tmp_path / "run")
    uris = [f"file:///tmp/soak/doc{i}.py" for i in range(DOCUMENTS)]
    texts = {uri: SEED_TEXTS[i % len(SEED_TEXTS)] for i, uri in enumerate(uris)}
    versions = {uri: 1 for uri in uris}
    pending: list[int] = []
    cancelled: set[int] = set()
    counts = {"edits": 0, "requests": 0, "cancels": 0, "pauses": 0}
    started = time.monotonic()
    pause_s: list[float] = []
    try:
        pipe.initialize(
            debounceMs=40,
            debounceMaxMs=120,
            requestTimeoutMs=120000,
            maxNewTokens=8,
            maxMultilineTokens=8,
            maxContextTokens=128,
            maxSuffixTokens=32,
            summariesEnabled=False,
            intraThreads=1,
        )
        pipe.wait_ready()
        for uri in uris:
            pipe.open(uri, texts[uri])
        warm = pipe.inline(uris[0], 0, 0)
        assert "result" in warm, warm
        rss_start = pipe.rss_kb()

        for _ in range(OPERATIONS):
            uri = rng.choice(uris)
            if rng.random() < 0.6:
                changes = []
                for _ in range(2 if rng.random() < 0.15 else 1):
                    change, texts[uri] = random_edit(rng, texts[uri])
                    changes.append(change)
                versions[uri] += 1
                pipe.notify(
                    "textDocument/didChange",
                    {
                        "textDocument": {"uri": uri, "version": versions[uri]},
                        "contentChanges": changes,
                    },
                )
                counts["edits"] += 1
            else:
                text = texts[uri]
                position = position_of(text, line_starts(text), valid_offset(rng, text))
                msg_id = pipe.request(
                    "textDocument/inlineCompletion",
                    inline_params(uri, position["line"], position["character"]),
                )
                pending.append(msg_id)
                counts["requests"] += 1
                if rng.random() < 0.3:  # cancel one of the outstanding requests
                    victim = rng.choice(pending)
                    pipe.notify("$/cancelRequest", {"id": victim})
                    cancelled.add(victim)
                    counts["cancels"] += 1
            while len(pending) > MAX_IN_FLIGHT:
                pipe.response(pending.pop(0), 120)
            if pending and rng.random() < 0.01:  # a pause in typing: the model gets to run
                paused = time.monotonic()
                while pending:
                    pipe.response(pending.pop(0), 120)
                counts["pauses"] += 1
                pause_s.append(time.monotonic() - paused)
            assert pipe.proc.poll() is None, "server exited"

        for msg_id in pending:
            pipe.response(msg_id, 120)
        outcomes = {"result": 0, "cancelled": 0}
        for msg_id in range(1, pipe._next_id + 1):
            reply = pipe.responses.get(msg_id)
            assert reply is not None, f"request {msg_id} never answered"
            if "error" in reply:
                assert reply["error"]["code"] == REQUEST_CANCELLED, reply
                assert msg_id in cancelled, reply
                outcomes["cancelled"] += 1
            else:
                outcomes["result"] += 1
        for uri in uris:
            assert pipe.server_text(uri) == texts[uri], f"{uri} out of step"
        stats = pipe.call("workspace/executeCommand", {"command": "codet5.debugStats"})["result"]
        rss_end = pipe.rss_kb()
        assert not pipe.shown(), pipe.shown()  # no errors were reported
        elapsed = time.monotonic() - started
        print(
            f"\nsoak: {counts} outcomes {outcomes} server {stats} in {elapsed:.1f} s; "
            f"VmRSS {rss_start / 1024:.1f} -> {rss_end / 1024:.1f} MiB "
            f"(+{(rss_end - rss_start) / 1024:.1f} MiB); pauses took {sum(pause_s):.1f} s "
            f"(max {max(pause_s, default=0):.2f} s)"
        )
        assert counts["edits"] + counts["requests"] >= OPERATIONS
        assert stats["modelCalls"] < counts["requests"] / 2, stats  # debounce superseded most
        assert stats["modelCalls"] >= counts["pauses"] / 4, stats  # and the model did run
        assert rss_end - rss_start < RSS_GROWTH_LIMIT_KB, (rss_start, rss_end)
        # pygls 2.1 kept one future per notification forever (CodeT5Protocol removes them).
        assert stats["pendingFutures"] <= 2, stats
    finally:
        assert pipe.stop(60) == 0
