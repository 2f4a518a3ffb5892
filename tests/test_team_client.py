"""The editor side of the team server without Ray: request serialisation, tokens, and
`RemoteEngine` against a small scripted HTTP backend (slow, failing, refusing, cancelled)."""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from codet5_lsp.inference.engine_api import (
    Engine,
    RequestFormatError,
    request_from_json,
    request_to_json,
    result_from_json,
    result_to_json,
)
from codet5_lsp.inference.generation import GenerationRequest, GenerationResult
from codet5_lsp.inference.prompts import StopRule, block_stop_rule, line_stop_rule
from codet5_lsp.inference.remote import (
    BackendRefusedToken,
    BackendUnavailable,
    RemoteEngine,
    plain_http_warning,
    read_token,
)

TOKEN = "client-test-token-0123456789"


# ---- serialisation ----------------------------------------------------------------------------


@pytest.mark.parametrize("rule", [None, line_stop_rule, block_stop_rule(4), block_stop_rule(-1)])
def test_requests_travel_field_by_field(rule):
    request = GenerationRequest(
        "infill", ["<s>", "a", "</s>"], ["<extra_id_0>"], 17, rule, ("<extra_id_1>",), 5
    )
    data = json.loads(json.dumps(request_to_json(request)))
    assert set(data) == {f.name for f in dataclasses.fields(GenerationRequest)}
    back = request_from_json(data)
    assert back == request
    if rule is not None:  # the rule still decides the same way
        for text in ("x", "x\n", "def f():\n    a\nb\n", "    a\n  b\n"):
            assert back.stop_rule(text) == rule(text)


def test_unknown_fields_are_ignored_and_missing_ones_defaulted():
    data = {
        "mode": "decoder",
        "encoder_tokens": None,
        "decoder_prefix": ["a"],
        "max_new_tokens": 4,
        "from_a_newer_client": 1,
    }
    assert request_from_json(data) == GenerationRequest("decoder", None, ["a"], 4)


@pytest.mark.parametrize(
    "bad",
    [
        {"mode": "decoder"},  # required fields missing
        {"mode": "poetry", "encoder_tokens": None, "decoder_prefix": [], "max_new_tokens": 4},
        {"mode": "decoder", "encoder_tokens": None, "decoder_prefix": [1, 2], "max_new_tokens": 4},
        {"mode": "decoder", "encoder_tokens": None, "decoder_prefix": [], "max_new_tokens": "4"},
        {"mode": "decoder", "encoder_tokens": None, "decoder_prefix": [], "max_new_tokens": 0},
        {
            "mode": "decoder",
            "encoder_tokens": None,
            "decoder_prefix": [],
            "max_new_tokens": 4,
            "stop_rule": {"kind": "eval"},
        },
        [1, 2],
    ],
)
def test_malformed_requests_are_refused_with_a_reason(bad):
    with pytest.raises(RequestFormatError):
        request_from_json(bad)


def test_only_stop_rules_that_are_data_can_travel():
    request = GenerationRequest("decoder", None, [], 4, stop_rule=lambda text: False)
    with pytest.raises(RequestFormatError):
        request_to_json(request)


def test_results_travel_too():
    result = GenerationResult(["a", "b"], "ab", "eos", 12.5, 3, {"batch_size": 2})
    assert result_from_json(json.loads(json.dumps(result_to_json(result)))) == result


# ---- tokens and transport ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, warned",
    [
        ("http://127.0.0.1:8765", False),
        ("http://localhost:8765", False),
        ("http://[::1]:8765", False),
        ("https://gpu.example.com", False),
        ("http://gpu.example.com:8765", True),
        ("http://10.0.0.5:8765", True),
    ],
)
def test_plain_http_to_another_host_is_warned_about(url, warned):
    assert (plain_http_warning(url, TOKEN) is not None) is warned
    assert plain_http_warning(url, None) is None  # no token, nothing to leak


def test_token_from_file_then_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CODET5_LSP_TOKEN", "from-env")
    assert read_token(None) == "from-env"
    path = tmp_path / "token"
    path.write_text("\n  from-file  \n")
    assert read_token(str(path)) == "from-file"
    monkeypatch.delenv("CODET5_LSP_TOKEN")
    assert read_token(None) is None


def test_tokens_file_is_checked_and_never_echoed(tmp_path):
    team_server = pytest.importorskip("codet5_lsp.inference.team_server")
    good = tmp_path / "good"
    good.write_text("# comment\n\nalice:alice-secret-token-12345\nbob:bob-secret-token-123456\n")
    digests = team_server.load_tokens(good)
    assert sorted(digests.values()) == ["alice", "bob"]
    assert "alice-secret-token-12345" not in json.dumps(digests)
    for text in (
        "alice\n",
        "alice:short\n",
        "a b:long-enough-token-123\n",
        "a:same-token-0123456789\nb:same-token-0123456789\n",
        "# nobody\n",
    ):
        bad = tmp_path / "bad"
        bad.write_text(text)
        with pytest.raises(team_server.TokensFileError) as info:
            team_server.load_tokens(bad)
        assert "token-" not in str(info.value)


# ---- RemoteEngine against a scripted backend --------------------------------------------------


class Backend:
    """/v1/model answers with the labmodel's metadata and tokenizer; /v1/completions does
    what `mode` says: ok, slow (holds the request until the client goes away), 503, 401."""

    def __init__(self, files):
        self.files = files
        self.mode = "ok"
        self.disconnects = 0
        self.completions = 0
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                if (
                    self.headers.get("Authorization") != f"Bearer {TOKEN}"
                    or backend.mode == "refuse"
                ):
                    return self._send(401, {"error": "missing or unknown token"})
                if backend.mode == "down":
                    return self._send(503, {"error": "no replica"})
                meta = dataclasses.asdict(backend.files.metadata)
                self._send(
                    200,
                    {
                        "metadata": meta,
                        "device": "cpu",
                        "compute_type": "int8",
                        "tokenizer": backend.files.tokenizer_file.read_text(),
                        "description": "scripted",
                    },
                )

            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                backend.completions += 1
                if backend.mode == "down":
                    return self._send(503, {"error": "no replica"})
                if backend.mode == "slow":
                    self.connection.settimeout(10)
                    try:
                        if self.connection.recv(1, socket.MSG_PEEK) == b"":
                            backend.disconnects += 1
                    except OSError:
                        backend.disconnects += 1
                    return
                self._send(200, result_to_json(GenerationResult(["x"], "x", "eos", 1.0)))

            def _send(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def backend(labmodel_int8):
    server = Backend(labmodel_int8)
    yield server
    server.close()


def _request():
    return GenerationRequest("decoder", ["<s>", "</s>"], ["x"], 4, line_stop_rule)


def _engine(backend, tmp_path, **kwargs):
    states: list[tuple[str, str]] = []
    engine = RemoteEngine(
        backend.url,
        TOKEN,
        on_state=lambda s, m: states.append((s, m)),
        tokenizer_cache=tmp_path,
        retry_s=0.2,
        **kwargs,
    )
    return engine, states


def test_remote_engine_has_the_engine_interface(backend, tmp_path, labmodel_int8):
    engine, _ = _engine(backend, tmp_path)
    try:
        assert isinstance(engine, Engine)
        assert engine.meta == labmodel_int8.metadata
        text = "def main():\n    return 1"
        from codet5_lsp.inference.tokenizer import CodeTokenizer

        local = CodeTokenizer(labmodel_int8.tokenizer_file)
        assert engine.tokenizer.tokens(text) == local.tokens(text)
        assert engine.generate(_request()).text == "x"
    finally:
        engine.close()


def test_cancel_closes_the_connection(backend, tmp_path):
    engine, _ = _engine(backend, tmp_path)
    backend.mode = "slow"
    try:
        cancel = threading.Event()
        future = engine.submit(_request(), cancel)
        time.sleep(0.3)
        started = time.monotonic()
        cancel.set()
        assert future.result(timeout=5).stop_reason == "cancelled"
        assert time.monotonic() - started < 1.0
        deadline = time.monotonic() + 5
        while backend.disconnects == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert backend.disconnects == 1  # the server sees the client go away
    finally:
        engine.close()


def test_slow_backend_is_reported_once_within_the_time_budget(backend, tmp_path):
    engine, _ = _engine(backend, tmp_path, time_budget_s=lambda: 1.0)
    backend.mode = "slow"
    try:
        started = time.monotonic()
        with pytest.raises(BackendUnavailable, match="did not answer within"):
            engine.submit(_request()).result(timeout=5)
        assert time.monotonic() - started < 1.0
        # still slow: quietly no suggestion
        assert engine.submit(_request()).result(timeout=5).text == ""
        backend.mode = "ok"
        assert engine.generate(_request()).text == "x"
        backend.mode = "slow"  # answered in time since: a new slow spell is reported again
        with pytest.raises(BackendUnavailable):
            engine.submit(_request()).result(timeout=5)
    finally:
        engine.close()


def test_outage_reported_once_then_recovery(backend, tmp_path):
    engine, states = _engine(backend, tmp_path)
    try:
        backend.mode = "down"
        with pytest.raises(BackendUnavailable, match="503"):
            engine.generate(_request())
        assert engine.generate(_request()).text == ""  # quiet while it lasts
        assert [s for s, _ in states] == ["error"]
        backend.mode = "ok"
        deadline = time.monotonic() + 5
        while engine.healthy is False and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [s for s, _ in states] == ["error", "ready"]
        assert engine.generate(_request()).text == "x"
    finally:
        engine.close()


def test_refused_token_says_so(backend, tmp_path):
    backend.mode = "refuse"
    with pytest.raises(BackendRefusedToken, match="refused the token"):
        RemoteEngine(backend.url, TOKEN, tokenizer_cache=tmp_path)


def test_stop_rule_is_plain_data():
    assert line_stop_rule == StopRule("line") and block_stop_rule(2) == StopRule("block", 2)


def test_editor_started_before_its_backend_waits_for_it(labmodel_int8, tmp_path, monkeypatch):
    """ModelManager with `backend`: "error" (once) while the backend is down at start, then
    "ready" with the remote engine when it comes up; no local model is loaded."""
    from codet5_lsp.server.model_manager import ModelManager
    from codet5_lsp.server.settings import Settings

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("CODET5_LSP_TOKEN", TOKEN)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    states: list[tuple[str, str, str]] = []
    settings = Settings(
        backend=f"http://127.0.0.1:{port}", summaries_enabled=False, model="not-a-local-model"
    )
    models = ModelManager(settings, on_state=lambda m, s, msg: states.append((m, s, msg)))
    try:
        models.start_loading()
        deadline = time.monotonic() + 10
        while not any(s == "error" for _, s, _ in states) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [s for _, s, _ in states] == ["loading", "error"]
        assert "unreachable" in states[-1][2]
        assert models.completion_engine() is None  # no suggestion meanwhile
        backend = Backend(labmodel_int8)
        backend.close()  # take its handler, serve it on the port the editor expects
        backend.httpd = ThreadingHTTPServer(("127.0.0.1", port), backend.httpd.RequestHandlerClass)
        threading.Thread(target=backend.httpd.serve_forever, daemon=True).start()
        try:
            assert models.wait_ready(10)
            assert [s for _, s, _ in states][-1] == "ready"
            engine = models.completion_engine()
            assert isinstance(engine, RemoteEngine) and engine.generate(_request()).text == "x"
        finally:
            backend.close()
    finally:
        models.close()


def test_the_local_engine_has_the_same_interface(labmodel_int8):
    from codet5_lsp.inference.engine import CompletionEngine

    engine = CompletionEngine(labmodel_int8, device="cpu", compute_type="int8", intra_threads=1)
    try:
        assert isinstance(engine, Engine)
    finally:
        engine.close()
