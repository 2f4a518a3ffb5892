"""Faults: every one gets a clear error (an LSP error response or `window/showMessage` naming
the problem) and the server keeps serving (a normal inline completion works afterwards).

The server runs as `codet5-lsp serve` over pipes and is spoken to byte by byte (`LspPipe`), so
malformed frames and messages can be sent exactly; one test runs the server in this process to
make its engine fail the way a GPU out of memory does. `LspPipe` (tests/support/lsp.py) is the
harness of test_fuzz_jsonrpc.py, test_soak.py and test_team.py too.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading

import pytest

from tests.support.lsp import (
    FAST,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    LspPipe,
    frame,
    inline_params,
    items_of,
    model_args,
    start_ready,
    start_server,
)
from tests.support.sources import END, SOURCE

pytestmark = pytest.mark.slow  # server processes


def assert_completes(pipe: LspPipe, uri: str = "file:///tmp/faults/ok.py") -> str:
    """The proof that the server still serves: a normal inline completion."""
    pipe.open(uri, SOURCE)  # (re)opening replaces the document
    items = items_of(pipe.inline(uri, *END))
    assert items and items[0]["insertText"].strip(), items
    return items[0]["insertText"]


@pytest.fixture(scope="module")
def served(labmodel_int8, tmp_path_factory):
    pipe = start_ready(model_args(labmodel_int8), tmp_path_factory.mktemp("faults"))
    yield pipe
    assert pipe.stop() == 0


# ---- positions and documents -----------------------------------------------------------------


def test_invalid_positions(served):
    uri = "file:///tmp/faults/positions.py"
    served.open(uri, SOURCE)
    line, character = END
    for bad, needle in (
        ((-1, 0), "position"),
        ((0, -3), "position"),
        ((line + 5, 0), f"line {line + 5} is outside"),
    ):
        reply = served.inline(uri, *bad)
        assert reply["error"]["code"] == INVALID_PARAMS, reply
        assert needle in reply["error"]["message"], reply
    # A character past the end of the line means the end of the line (LSP).
    at_end = items_of(served.inline(uri, line, character))
    clamped = items_of(served.inline(uri, line, character + 500))
    assert at_end and [i["insertText"] for i in clamped] == [i["insertText"] for i in at_end]
    assert_completes(served)


def test_unknown_and_closed_documents(served):
    never = "file:///tmp/faults/never-opened.py"
    for method, params in (
        ("textDocument/inlineCompletion", inline_params(never, 0, 0)),
        (
            "textDocument/completion",
            {"textDocument": {"uri": never}, "position": {"line": 0, "character": 0}},
        ),
        (
            "textDocument/hover",
            {"textDocument": {"uri": never}, "position": {"line": 0, "character": 0}},
        ),
    ):
        reply = served.call(method, params)
        assert reply["error"]["code"] == INVALID_PARAMS and never in reply["error"]["message"]
    closed = "file:///tmp/faults/closed.py"
    served.open(closed, SOURCE)
    served.notify("textDocument/didClose", {"textDocument": {"uri": closed}})
    reply = served.inline(closed, 0, 0)
    assert reply["error"]["code"] == INVALID_PARAMS and closed in reply["error"]["message"]
    # didChange for a document that is not open: reported once, however often it comes.
    for version in (2, 3, 4):
        served.notify(
            "textDocument/didChange",
            {
                "textDocument": {"uri": closed, "version": version},
                "contentChanges": [{"text": "x = 1\n"}],
            },
        )
    assert_completes(served)
    assert len(served.shown(closed)) == 1, served.shown()
    assert "not open" in served.shown(closed)[0]


def test_change_with_invalid_range_is_reported_once(served):
    uri = "file:///tmp/faults/bad-range.py"
    served.open(uri, "a = 1\nb = 2\n")
    bad = {"start": {"line": 40, "character": 0}, "end": {"line": 41, "character": 0}}
    for version in (2, 3):
        served.notify(
            "textDocument/didChange",
            {
                "textDocument": {"uri": uri, "version": version},
                "contentChanges": [{"range": bad, "text": "zzz"}],
            },
        )
    assert served.server_text(uri) == "a = 1\nb = 2\n"  # nothing applied, nothing lost
    messages = served.shown(uri)
    assert len(messages) == 1 and "line 40 is outside" in messages[0], messages
    # Reopening resynchronizes (and would report a new problem again).
    served.open(uri, "a = 1\n", version=5)
    assert served.server_text(uri) == "a = 1\n"
    assert_completes(served)


def test_file_over_max_file_bytes(served):
    served.notify("workspace/didChangeConfiguration", {"settings": {"maxFileBytes": 300}})
    try:
        uri = "file:///tmp/faults/large.py"
        text = SOURCE * 3  # ~700 bytes
        served.open(uri, text)
        for _ in range(3):
            assert items_of(served.inline(uri, *END)) == []
        completion = served.call(
            "textDocument/completion",
            {"textDocument": {"uri": uri}, "position": {"line": 1, "character": 0}},
        )
        assert completion["result"]["items"] == []
        messages = served.shown(uri)
        assert len(messages) == 1 and "maxFileBytes" in messages[0], messages
        assert served.server_text(uri) == text
    finally:
        served.notify("workspace/didChangeConfiguration", {"settings": {"maxFileBytes": 2_000_000}})
    assert_completes(served)


def test_binary_content_and_nul_bytes(served):
    uri = "file:///tmp/faults/blob.py"
    text = "PNG\x00\x01\x02\x00def f(\x00):\n    return "
    served.open(uri, text)
    assert items_of(served.inline(uri, 1, 11)) == []
    assert items_of(served.inline(uri, 1, 11)) == []
    messages = served.shown(uri)
    assert len(messages) == 1 and "binary" in messages[0], messages
    served.notify(
        "textDocument/didChange",
        {
            "textDocument": {"uri": uri, "version": 2},
            "contentChanges": [
                {
                    "range": {
                        "start": {"line": 0, "character": 3},
                        "end": {"line": 0, "character": 4},
                    },
                    "text": "\x00\x00",
                }
            ],
        },
    )
    expected = "PNG\x00\x00\x01\x02\x00def f(\x00):\n    return "
    assert served.server_text(uri) == expected
    assert_completes(served)


def test_lone_surrogates_are_kept(served):
    uri = "file:///tmp/faults/surrogates.py"
    # JSON carries "\ud800" (a lone high surrogate); Python's json keeps it as one code unit.
    text = 'bad = "\ud800"\n\n\ndef name_of(x):\n    return '
    served.open(uri, text)
    served.notify(
        "textDocument/didChange",
        {
            "textDocument": {"uri": uri, "version": 2},
            "contentChanges": [
                {
                    "range": {
                        "start": {"line": 0, "character": 9},
                        "end": {"line": 0, "character": 9},
                    },
                    "text": " # \udc00\U0001f600",
                }
            ],
        },
    )
    # (Not next to the lone \ud800: JSON would read an adjacent pair as one character.)
    expected = 'bad = "\ud800" # \udc00\U0001f600\n\n\ndef name_of(x):\n    return '
    assert served.server_text(uri) == expected
    reply = served.inline(uri, 4, 11)
    assert "result" in reply, reply  # answered, not an error
    assert items_of(reply), "no completion after a lone surrogate"
    assert served.server_text(uri) == expected
    assert_completes(served)


# ---- malformed JSON-RPC ----------------------------------------------------------------------


def test_malformed_json_rpc(served):
    pipe = served
    # Not JSON: the parse error (id null) and a message.
    before = len(pipe.null_id_responses)
    body = b'{"jsonrpc": 2.'
    pipe.send_raw(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    assert pipe.wait_until(lambda: len(pipe.null_id_responses) > before, 10)
    error = pipe.null_id_responses[-1]["error"]
    assert error["code"] == PARSE_ERROR and "parse" in error["message"]
    assert pipe.wait_until(lambda: bool(pipe.shown("could not parse")), 10)
    # A bad Content-Length header, then (same write) a request: the request is still answered.
    ok = pipe.new_id()
    pipe.send_raw(
        b'Content-Length: lots\r\n\r\n{"jsonrpc": "2.0", "method": "x"}'
        + frame(
            {
                "jsonrpc": "2.0",
                "id": ok,
                "method": "textDocument/hover",
                "params": {
                    "textDocument": {"uri": "file:///nope"},
                    "position": {"line": 0, "character": 0},
                },
            }
        )
    )
    assert "nope" in pipe.response(ok, 10)["error"]["message"]
    # A Content-Length far too large is ignored, not waited for.
    ok = pipe.new_id()
    pipe.send_raw(
        b"Content-Length: 99999999999999\r\n\r\n{}"
        + frame({"jsonrpc": "2.0", "id": ok, "method": "shutdown_typo"})
    )
    assert pipe.response(ok, 10)["error"]["code"] == METHOD_NOT_FOUND
    # Missing fields and wrong parameter types: InvalidParams naming the field.
    reply = pipe.call("textDocument/inlineCompletion", {"textDocument": {"uri": "file:///x"}})
    assert reply["error"]["code"] == INVALID_PARAMS
    assert "missing" in reply["error"]["message"] and "position" in reply["error"]["message"]
    reply = pipe.call("textDocument/hover")
    assert reply["error"]["code"] == INVALID_PARAMS and "params" in reply["error"]["message"]
    reply = pipe.call(
        "textDocument/inlineCompletion",
        {
            "textDocument": {"uri": "file:///x"},
            "position": {"line": "two", "character": []},
            "context": {"triggerKind": 1},
        },
    )
    assert reply["error"]["code"] == INVALID_PARAMS
    assert "position.line" in reply["error"]["message"], reply
    # Unknown methods: MethodNotFound for a request; a notification is ignored.
    reply = pipe.call("codet5/noSuchMethod", {"a": 1})
    assert reply["error"]["code"] == METHOD_NOT_FOUND
    assert "codet5/noSuchMethod" in reply["error"]["message"]
    pipe.notify("codet5/noSuchNotification", [1, 2])
    # Not a JSON-RPC message at all.
    bad_id = pipe.new_id()
    pipe.send({"id": bad_id, "method": "shutdown"})  # no "jsonrpc"
    assert pipe.response(bad_id, 10)["error"]["code"] == INVALID_REQUEST
    before = len(pipe.null_id_responses)
    pipe.send({"jsonrpc": "2.0", "id": {"a": 1}, "method": "shutdown"})  # an object as id
    assert pipe.wait_until(lambda: len(pipe.null_id_responses) > before, 10)
    error = pipe.null_id_responses[-1]["error"]
    assert error["code"] == INVALID_REQUEST and "id must be" in error["message"]
    before = len(pipe.null_id_responses)
    pipe.send([1, 2, 3])
    assert pipe.wait_until(lambda: len(pipe.null_id_responses) > before, 10)
    assert pipe.null_id_responses[-1]["error"]["code"] == INVALID_REQUEST
    # A notification with bad params (a lost edit) is reported.
    pipe.notify("textDocument/didChange", {"textDocument": {"uri": 7}, "contentChanges": 3})
    assert pipe.wait_until(
        lambda: bool(pipe.shown("ignored invalid params for textDocument/didChange")), 10
    )
    assert_completes(pipe)
    assert pipe.proc.poll() is None


# ---- engine and model faults -----------------------------------------------------------------


def test_engine_exception_at_generation(labmodel_int8, tmp_path):
    """A model that loads but whose generation fails: CTranslate2 raises at translate time
    because the end token is not in the vocabulary."""
    broken = tmp_path / "broken-model"
    shutil.copytree(labmodel_int8.folder, broken)
    meta = json.loads((broken / "codet5_lsp.json").read_text())
    meta["eos_token"] = "<no-such-token>"
    (broken / "codet5_lsp.json").write_text(json.dumps(meta))
    pipe = start_server(
        ["--model", str(broken), "--device", "cpu", "--compute-type", "int8"], tmp_path / "run"
    )
    try:
        pipe.initialize(**FAST)
        pipe.wait_ready()
        uri = "file:///tmp/faults/engine.py"
        pipe.open(uri, SOURCE)
        for _ in range(2):
            assert items_of(pipe.inline(uri, *END)) == []
        logs = [
            p["message"]
            for p in pipe.messages("window/logMessage")
            if "completion failed" in p["message"]
        ]
        assert logs and "not in the vocabulary" in logs[0], logs
        reply = pipe.call(
            "textDocument/hover",
            {"textDocument": {"uri": uri}, "position": {"line": 3, "character": 5}},
        )
        assert "result" in reply, reply
    finally:
        assert pipe.stop() == 0


def test_model_that_fails_to_load(tmp_path):
    missing = tmp_path / "no-model-here"
    pipe = start_server(["--model", str(missing), "--device", "cpu", "--offline"], tmp_path / "run")
    try:
        result = pipe.initialize(**FAST)
        assert result["capabilities"]["inlineCompletionProvider"] is not None
        assert pipe.wait_until(lambda: pipe.status() == "error", 60)
        assert str(missing) in pipe.messages("codet5/status")[-1]["message"]
        assert pipe.wait_until(lambda: bool(pipe.shown(str(missing))), 10)
        uri = "file:///tmp/faults/nomodel.py"
        pipe.open(uri, SOURCE)
        assert items_of(pipe.inline(uri, *END)) == []
    finally:
        assert pipe.stop() == 0


def test_cuda_requested_without_a_gpu(labmodel_int8, tmp_path):
    """`--device cuda` on a machine without CUDA: a clear error state, not a crash."""
    from codet5_lsp.inference.devices import cuda_device_count

    pipe = start_server(
        ["--model", str(labmodel_int8.folder), "--device", "cuda"], tmp_path / "run"
    )
    try:
        pipe.initialize(**FAST)
        assert pipe.wait_until(lambda: pipe.status() in ("ready", "error"), 120)
        if cuda_device_count() > 0:  # a GPU machine: it must simply work
            assert pipe.status() == "ready"
            return
        assert pipe.status() == "error"
        message = pipe.messages("codet5/status")[-1]["message"]
        assert "cuda" in message.lower() and str(labmodel_int8.folder) in message, message
        assert pipe.wait_until(lambda: bool(pipe.shown("CUDA")), 10)
        uri = "file:///tmp/faults/cuda.py"
        pipe.open(uri, SOURCE)
        assert items_of(pipe.inline(uri, *END)) == []
    finally:
        assert pipe.stop() == 0


def test_out_of_memory_in_process(labmodel_int8, caplog):
    """The server in this process over OS pipes; its engine raises a CUDA out-of-memory error
    once: no suggestion, the error is logged (server log and window/logMessage), and the next
    request gets a completion."""
    from codet5_lsp.server.lsp import create_server
    from codet5_lsp.server.settings import Settings

    server = create_server(
        Settings(
            model=str(labmodel_int8.folder),
            device="cpu",
            compute_type="int8",
            summaries_enabled=False,
            intra_threads=1,
        )
    )
    to_server_r, to_server_w = os.pipe()
    from_server_r, from_server_w = os.pipe()
    thread = threading.Thread(
        target=server.start_io,
        daemon=True,
        args=(os.fdopen(to_server_r, "rb"), os.fdopen(from_server_w, "wb")),
    )
    thread.start()
    pipe = LspPipe(os.fdopen(to_server_w, "wb"), os.fdopen(from_server_r, "rb"))
    try:
        pipe.initialize(**FAST)
        pipe.wait_ready()
        engine = server.models.completion_engine()
        real = engine._generate_batch
        calls = []

        def out_of_memory(*args, **kwargs):
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return real(*args, **kwargs)

        engine._generate_batch = out_of_memory
        uri = "file:///tmp/faults/oom.py"
        pipe.open(uri, SOURCE)
        with caplog.at_level(logging.ERROR):
            assert items_of(pipe.inline(uri, *END)) == []
        assert any(
            "out of memory" in r.getMessage() or "out of memory" in str(r.exc_info)
            for r in caplog.records
        ), caplog.records
        assert any("out of memory" in p["message"] for p in pipe.messages("window/logMessage"))
        assert assert_completes(pipe, uri)
        assert len(calls) == 2
    finally:
        pipe.stop()
        thread.join(15)
    assert not thread.is_alive()
