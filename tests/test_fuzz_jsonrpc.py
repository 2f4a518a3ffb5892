"""Fuzz: a storm of hypothesis-generated JSON-RPC messages at one `codet5-lsp serve` process.

Methods come from the whole LSP method list plus ours; params are random JSON or plausible
shapes (positions with negative or huge numbers, unknown URIs); ids are random JSON values; some
frames are broken (body not JSON, wrong or truncated Content-Length, no "jsonrpc"). After the
storm (bounded: 300 messages) the process must be alive and answer valid requests.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lsprotocol import types

from tests.support.lsp import frame, items_of, model_args, start_server
from tests.support.sources import END, SOURCE

pytestmark = pytest.mark.slow  # a server process under a message storm

MESSAGES = 300
URI = "file:///tmp/fuzz/open.py"
# Methods that end the session on purpose are left out; everything else is fair game.
METHODS = sorted(
    {
        value
        for name, value in vars(types).items()
        if name.isupper() and isinstance(value, str) and "/" in value
    }
    | {"initialized", "codet5/status", "codet5.debugStats", "no/such/method", ""}
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
numbers = st.integers(-5, 40) | st.sampled_from([-(2**31), 2**31, 2**53]) | st.text(max_size=3)
positions = st.fixed_dictionaries({"line": numbers, "character": numbers})
uris = st.sampled_from([URI, "file:///tmp/fuzz/closed.py", "", "not a uri", "\ud800"])
document_params = st.fixed_dictionaries(
    {"textDocument": st.fixed_dictionaries({"uri": uris}), "position": positions},
    optional={
        "context": st.fixed_dictionaries({"triggerKind": st.integers(-1, 3)}),
        "range": st.fixed_dictionaries({"start": positions, "end": positions}),
        "contentChanges": st.lists(
            st.fixed_dictionaries(
                {"text": st.text(max_size=10)},
                optional={"range": st.fixed_dictionaries({"start": positions, "end": positions})},
            ),
            max_size=2,
        ),
    },
)
ids = st.none() | st.integers(-10, 10**12) | st.text(max_size=6) | json_values

messages = st.fixed_dictionaries(
    {
        "method": st.sampled_from(METHODS) | st.text(max_size=12),
        "params": document_params | json_values,
        "id": ids,
        "shape": st.sampled_from(
            ["ok"] * 6
            + ["no-id", "no-jsonrpc", "bad-json", "truncated", "bad-header", "not-an-object"]
        ),
    }
)


def encode(message: dict) -> bytes:
    """One frame, broken as `shape` says."""
    body: dict = {"jsonrpc": "2.0", "method": message["method"], "params": message["params"]}
    shape = message["shape"]
    if shape != "no-id" and message["id"] is not None:
        body["id"] = message["id"]
    if shape == "no-jsonrpc":
        del body["jsonrpc"]
    if shape == "not-an-object":
        return frame([body])
    data = frame(body)
    header, _, payload = data.partition(b"\r\n\r\n")
    if shape == "bad-json":
        payload = payload[: max(1, len(payload) // 2)]
        return b"Content-Length: %d\r\n\r\n" % len(payload) + payload
    if shape == "truncated":  # the header promises more than comes
        return b"Content-Length: %d\r\n\r\n" % (len(payload) + 37) + payload
    if shape == "bad-header":
        return b"Content-Length: x%d\r\n\r\n" % len(payload) + payload
    return data


def test_jsonrpc_storm(labmodel_int8, tmp_path):
    pipe = start_server(model_args(labmodel_int8), tmp_path / "run")
    sent = [0]
    try:
        pipe.initialize(
            debounceMs=0,
            debounceMaxMs=0,
            requestTimeoutMs=20000,
            maxNewTokens=4,
            maxMultilineTokens=4,
            summariesEnabled=False,
            intraThreads=1,
        )
        pipe.wait_ready()
        pipe.open(URI, SOURCE)

        @settings(
            max_examples=150,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(st.lists(messages, min_size=1, max_size=10))
        def storm(batch):
            for message in batch:
                if sent[0] >= MESSAGES:
                    return
                try:
                    data = encode(message)
                except (TypeError, ValueError):  # e.g. a lone surrogate key: not encodable
                    continue
                pipe.send_raw(data)
                sent[0] += 1
            assert pipe.proc.poll() is None, "server died during the storm"

        storm()
        assert sent[0] >= MESSAGES * 0.9, sent
        assert pipe.proc.poll() is None, "server died during the storm"
        # Our ids from here on cannot collide with the storm's (a slow storm request with the
        # same id would answer for ours).
        pipe._next_id = 2**41
        # A truncated frame may still be waiting for bytes and eat what comes next: retry.
        answered = None
        for _ in range(6):
            msg_id = pipe.request(
                "textDocument/hover",
                {"textDocument": {"uri": URI}, "position": {"line": 3, "character": 5}},
            )
            if pipe.wait_until(lambda msg_id=msg_id: msg_id in pipe.responses, 10):
                answered = pipe.responses[msg_id]
                break
        assert answered is not None and "error" not in answered, answered
        pipe.open(URI, SOURCE)  # the storm may have closed or edited it
        assert items_of(pipe.inline(URI, *END)), "no completion after the storm"
        stats = pipe.call("workspace/executeCommand", {"command": "codet5.debugStats"})
        print(
            f"\nfuzz: {sent[0]} messages; {len(pipe.responses)} responses, "
            f"{len(pipe.null_id_responses)} id-null errors, "
            f"{len(pipe.shown())} messages shown; server {json.dumps(stats['result'])}"
        )
        assert pipe.proc.poll() is None
    finally:
        assert pipe.stop(60) == 0
