"""The team server (`codet5-lsp team-server`, Ray Serve on a real local Ray cluster, CPU) and
editors' servers using it with `serve --backend` over stdio.

Ray is kept small: 2 CPUs, a 100 MB object store, no dashboard, one replica. Skip these
locally with `-m "not team"`; CI runs them (the `test` extra installs `ray[serve]`).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.support.lsp import FAST, LspPipe, items_of, model_args, start_ready, start_server
from tests.support.sources import SOURCE

pytest.importorskip("ray.serve")
pytestmark = pytest.mark.team

USERS = {
    "alice": "alice-7f3c9a1e5b2d4c6f8a0b",
    "bob": "bob-0d9e8c7b6a5f4e3d2c1b",
    "carol": "carol-1a2b3c4d5e6f7a8b9c0d",
    "dave": "dave-9f8e7d6c5b4a3f2e1d0c",
}
CAP_NEW_TOKENS = 256

OTHER_SOURCES = [
    SOURCE,
    "import json\n\n\ndef load(path):\n    with open(path) as f:\n        data = json.",
    (
        "class Stack:\n    def __init__(self):\n        self.items = []\n\n"
        "    def push(self, item):\n        self.items."
    ),
    "def total(values):\n    result = 0\n    for v in values:\n        result += v\n    return ",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TeamServer:
    """`codet5-lsp team-server` as a subprocess (log in workdir/team.log)."""

    def __init__(self, model_folder: Path, workdir: Path, port: int | None = None):
        self.model_folder, self.workdir = model_folder, workdir
        self.port = port or _free_port()
        self.tokens_file = workdir / "tokens.txt"
        self.tokens_file.write_text("# team\n" + "".join(f"{n}:{t}\n" for n, t in USERS.items()))
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120) -> None:
        env = dict(
            os.environ, XDG_CACHE_HOME=str(self.workdir / "cache"), RAY_USAGE_STATS_ENABLED="0"
        )
        with open(self.workdir / "team.log", "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "codet5_lsp.server.cli",
                    "team-server",
                    "--model",
                    str(self.model_folder),
                    "--device",
                    "cpu",
                    "--compute-type",
                    "int8",
                    "--port",
                    str(self.port),
                    "--tokens-file",
                    str(self.tokens_file),
                    "--num-cpus",
                    "2",
                    "--replica-cpus",
                    "1",
                    "--object-store-mb",
                    "100",
                    "--max-batch-size",
                    "8",
                    "--max-new-tokens",
                    str(CAP_NEW_TOKENS),
                    "--max-body-kb",
                    "64",
                ],
                stdout=log,
                stderr=log,
                env=env,
                start_new_session=True,
            )
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            assert self.proc.poll() is None, self.log()
            try:
                if self.get("/health", token=None)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"team server not healthy within {timeout} s:\n{self.log()}")

    def stop(self, timeout: float = 60) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
            raise

    def log(self) -> str:
        return (self.workdir / "team.log").read_text(errors="replace")[-4000:]

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        token: str | None = USERS["alice"],
        headers: dict | None = None,
        timeout: float = 60,
    ):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            hdrs = dict(headers or {})
            if token is not None:
                hdrs["Authorization"] = f"Bearer {token}"
            conn.request(method, path, body=body, headers=hdrs)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def get(self, path: str, token: str | None = USERS["alice"]):
        return self.request("GET", path, token=token, timeout=10)


@pytest.fixture(scope="module")
def team(labmodel_int8, tmp_path_factory):
    server = TeamServer(labmodel_int8.folder, tmp_path_factory.mktemp("team"))
    server.start()
    yield server
    if server.proc.poll() is None:
        assert server.stop() == 0, server.log()


@pytest.fixture(scope="module")
def local_editor(labmodel_int8, tmp_path_factory):
    """A server with the same model in process: the reference for remote suggestions."""
    pipe = start_ready(model_args(labmodel_int8), tmp_path_factory.mktemp("local-editor"))
    yield pipe
    assert pipe.stop() == 0


def start_editor(
    team: TeamServer,
    workdir: Path,
    user: str | None = "alice",
    token: str | None = None,
    **settings,
) -> LspPipe:
    args = ["--backend", team.url]
    if user is not None or token is not None:
        token_file = workdir / "token"
        workdir.mkdir(parents=True, exist_ok=True)
        token_file.write_text((token or USERS[user]) + "\n")
        args += ["--backend-token-file", str(token_file)]
    pipe = start_server(args, workdir)
    pipe.initialize(**{**FAST, **settings})
    return pipe


def inline_text(pipe: LspPipe, uri: str, text: str, timeout: float = 120) -> str | None:
    pipe.open(uri, text)
    lines = text.split("\n")
    items = items_of(pipe.inline(uri, len(lines) - 1, len(lines[-1]), timeout))
    return items[0]["insertText"] if items else None


def completion_body(
    prefix_tokens: list[str],
    max_new_tokens: int = 8,
    stream: bool = False,
    stop_rule: dict | None = None,
) -> bytes:
    return json.dumps(
        {
            "request": {
                "mode": "decoder",
                "encoder_tokens": ["<s>", "</s>"],
                "decoder_prefix": prefix_tokens,
                "max_new_tokens": max_new_tokens,
                "stop_rule": stop_rule,
                "end_tokens": [],
                "priority": 0,
            },
            "stream": stream,
        }
    ).encode()


def prompt_tokens(text: str, team: TeamServer) -> list[str]:
    from codet5_lsp.inference.remote import RemoteEngine

    engine = RemoteEngine(team.url, USERS["alice"])
    try:
        return engine.tokenizer.tokens(text)
    finally:
        engine.close()


# ---- HTTP API ---------------------------------------------------------------------------------


def test_health_needs_no_token_and_every_other_route_does(team):
    assert team.get("/health", token=None)[0] == 200
    for token in (None, "not-a-known-token-000000"):
        status, body = team.get("/v1/model", token=token)
        assert status == 401 and b"token" in body
        # refused before the body is read: a body over the size limit still gets 401
        status, _ = team.request("POST", "/v1/completions", body=b"x" * 200_000, token=token)
        assert status == 401
    status, body = team.get("/v1/model?tokenizer=0")
    assert status == 200
    info = json.loads(body)
    assert info["user"] == "alice" and info["metadata"]["family"] == "t5"
    assert info["device"] == "cpu" and info["compute_type"] == "int8"
    # the log names users, never their tokens
    assert not any(token in team.log() for token in USERS.values())


def test_limits_and_bad_requests(team):
    status, _ = team.request("POST", "/v1/completions", body=b"{" + b" " * 70_000 + b"}")
    assert status == 413
    status, body = team.request("POST", "/v1/completions", body=b"{not json")
    assert status == 400 and b"bad request" in body
    status, body = team.request(
        "POST", "/v1/completions", body=json.dumps({"request": {"mode": "decoder"}}).encode()
    )
    assert status == 400
    # generation limits above the server's cap are capped
    tokens = prompt_tokens(SOURCE, team)
    status, body = team.request(
        "POST", "/v1/completions", body=completion_body(tokens, max_new_tokens=100_000)
    )
    assert status == 200, body
    result = json.loads(body)
    assert 0 < len(result["tokens"]) <= CAP_NEW_TOKENS


def test_streamed_tokens_add_up_to_the_whole_result(team):
    tokens = prompt_tokens(SOURCE, team)
    body = completion_body(tokens, max_new_tokens=12, stop_rule={"kind": "line"})
    status, whole = team.request("POST", "/v1/completions", body=body)
    assert status == 200
    status, streamed = team.request(
        "POST", "/v1/completions", body=completion_body(tokens, 12, True, {"kind": "line"})
    )
    assert status == 200
    events = [json.loads(line) for line in streamed.decode().splitlines()]
    deltas = "".join(e["text"] for e in events if "text" in e)
    final = events[-1]["result"]
    assert final["text"] == json.loads(whole)["text"]
    # Deltas are progress; the final result is authoritative (in the one-pass prefix path
    # ctranslate2's per-token callback misses the first generated token).
    assert len(events) > 2 and deltas and deltas in final["text"]


def test_a_client_that_goes_away_stops_its_generation(team):
    """Streamed: after the first tokens the client hangs up; the replica sees it, stops the
    generation (its log says so, naming the user) and keeps serving."""
    tokens = prompt_tokens(SOURCE, team)
    pid = json.loads(team.get("/v1/model?tokenizer=0")[1])["replica"]["pid"]
    conn = http.client.HTTPConnection("127.0.0.1", team.port, timeout=60)
    conn.request(
        "POST",
        "/v1/completions",
        body=completion_body(tokens, CAP_NEW_TOKENS, True),
        headers={"Authorization": f"Bearer {USERS['bob']}"},
    )
    response = conn.getresponse()
    assert response.status == 200
    first = json.loads(response.readline())
    assert "text" in first  # generation under way
    # Frozen while the client hangs up, so the generation cannot finish first.
    os.kill(pid, signal.SIGSTOP)
    try:
        conn.sock.shutdown(socket.SHUT_RDWR)
        conn.close()
        time.sleep(0.5)
    finally:
        os.kill(pid, signal.SIGCONT)
    deadline = time.monotonic() + 20
    while "user=bob /v1/completions stream cancelled by the client" not in team.log():
        assert time.monotonic() < deadline, team.log()
        time.sleep(0.2)
    status, body = team.request("POST", "/v1/completions", body=completion_body(tokens, 4))
    assert status == 200 and json.loads(body)["tokens"]


def test_summaries_route_runs_what_a_local_engine_does(team, labmodel_int8):
    from codet5_lsp.inference.engine import CompletionEngine
    from codet5_lsp.inference.prompts import build_summary_request
    from codet5_lsp.inference.remote import RemoteEngine

    remote = RemoteEngine(team.url, USERS["carol"], role="summary")
    local = CompletionEngine(labmodel_int8, device="cpu", compute_type="int8", intra_threads=1)
    try:
        source = "def add(a, b):\n    return a + b\n"
        request = build_summary_request(
            source, remote.tokenizer, max_source_tokens=256, max_new_tokens=16
        )
        got = remote.generate(request)
        assert got.text == local.generate(request).text and got.tokens
    finally:
        remote.close()
        local.close()


# ---- editors ----------------------------------------------------------------------------------


def test_editor_with_backend_suggests_what_a_local_server_does(team, local_editor, tmp_path):
    editor = start_editor(team, tmp_path / "editor")
    try:
        editor.wait_ready(60)
        for i, text in enumerate(OTHER_SOURCES):
            uri = f"file:///tmp/team/same{i}.py"
            remote = inline_text(editor, uri, text)
            local = inline_text(local_editor, uri, text)
            assert remote is not None and remote == local, (text, remote, local)
    finally:
        assert editor.stop() == 0


def test_four_editors_at_once(team, local_editor, tmp_path):
    users = list(USERS)
    editors = [start_editor(team, tmp_path / user, user) for user in users]
    try:
        for editor in editors:
            editor.wait_ready(60)
        answers: dict[int, str | None] = {}

        def ask(i: int) -> None:
            answers[i] = inline_text(editors[i], f"file:///tmp/team/four{i}.py", OTHER_SOURCES[i])

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(180)
        for i, text in enumerate(OTHER_SOURCES):
            assert answers[i] == inline_text(local_editor, f"file:///tmp/team/four{i}.py", text)
            assert answers[i]
    finally:
        for editor in editors:
            editor.stop()
    log = team.log()
    assert not any(token in log for token in USERS.values())


def test_refused_token_is_reported(team, tmp_path):
    editor = start_editor(team, tmp_path / "intruder", token="wrong-token-123456789012")
    try:
        assert editor.wait_until(lambda: editor.status() == "error", 60)
        assert editor.wait_until(lambda: editor.shown("refused the token (401)"), 10), (
            editor.messages("window/showMessage")
        )
        editor.open("file:///tmp/team/x.py", "x = ")
        assert items_of(editor.inline("file:///tmp/team/x.py", 0, 4)) == []
    finally:
        assert editor.stop() == 0


def test_doctor_checks_reachability_auth_and_model(team, tmp_path):
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.write_text(USERS["bob"] + "\n")
    bad.write_text("nobody-knows-this-token-000\n")

    def doctor(token_file: Path, url: str = team.url):
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "codet5_lsp.server.cli",
                "doctor",
                "--backend",
                url,
                "--backend-token-file",
                str(token_file),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    ok = doctor(good)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "accepted (user bob)" in ok.stdout
    assert "labmodel" in ok.stdout and "int8" in ok.stdout
    refused = doctor(bad)
    assert refused.returncode == 1 and "refused the token (401)" in refused.stdout
    down = doctor(good, f"http://127.0.0.1:{_free_port()}")
    assert down.returncode == 1 and "unreachable" in down.stdout
    assert "Traceback" not in ok.stderr + refused.stderr + down.stderr


def test_cancel_request_gives_up_on_the_backend_at_once(team, tmp_path):
    """$/cancelRequest while the backend sits on the request (its replica frozen): the editor
    answers RequestCancelled at once (the HTTP request is closed: test_team_client checks
    the server sees that), and the backend serves again once it resumes."""
    editor = start_editor(team, tmp_path / "cancel", requestTimeoutMs=60000)
    try:
        editor.wait_ready(60)
        uri = "file:///tmp/team/cancel.py"
        editor.open(uri, OTHER_SOURCES[2])
        lines = OTHER_SOURCES[2].split("\n")
        pid = json.loads(team.get("/v1/model?tokenizer=0")[1])["replica"]["pid"]
        os.kill(pid, signal.SIGSTOP)
        try:
            msg_id = editor.request(
                "textDocument/inlineCompletion",
                {
                    "textDocument": {"uri": uri},
                    "position": {"line": len(lines) - 1, "character": len(lines[-1])},
                    "context": {"triggerKind": 2},
                },
            )
            time.sleep(1.0)
            assert msg_id not in editor.responses  # the backend holds it
            started = time.monotonic()
            editor.notify("$/cancelRequest", {"id": msg_id})
            reply = editor.response(msg_id, timeout=10)
            assert time.monotonic() - started < 2.0
            assert reply.get("error", {}).get("code") == -32800 or items_of(reply) == [], reply
        finally:
            os.kill(pid, signal.SIGCONT)
        assert inline_text(editor, "file:///tmp/team/after-cancel.py", OTHER_SOURCES[3])
    finally:
        assert editor.stop() == 0


def test_replica_killed_mid_request(team, tmp_path):
    editor = start_editor(team, tmp_path / "killed", requestTimeoutMs=3000)
    try:
        editor.wait_ready(60)
        uri = "file:///tmp/team/killed.py"
        assert inline_text(editor, uri, SOURCE)
        pid = json.loads(team.get("/v1/model?tokenizer=0")[1])["replica"]["pid"]
        # Frozen first, so the request is surely in the replica's hands when it dies.
        os.kill(pid, signal.SIGSTOP)
        started = time.monotonic()
        fresh = "file:///tmp/team/killed-fresh.py"  # nothing the type-through cache knows
        editor.open(fresh, OTHER_SOURCES[1])
        lines = OTHER_SOURCES[1].split("\n")
        msg_id = editor.request(
            "textDocument/inlineCompletion",
            {
                "textDocument": {"uri": fresh},
                "position": {"line": len(lines) - 1, "character": len(lines[-1])},
                "context": {"triggerKind": 2},
            },
        )
        time.sleep(0.5)
        os.kill(pid, signal.SIGKILL)
        reply = editor.response(msg_id, timeout=30)
        assert time.monotonic() - started < 3.0 + 2.0  # within the editor's timeout
        # No suggestion, or (when Ray Serve hands the request to a replacement replica that
        # loads in time, as on a fast machine) a real one: never an error, never a hang.
        assert "error" not in reply, reply
        assert all(item["insertText"] for item in items_of(reply)), reply
        # Ray starts a new replica; then suggestions come back
        deadline = time.monotonic() + 90
        text = None
        while time.monotonic() < deadline and not text:
            time.sleep(1.0)
            text = inline_text(editor, uri, OTHER_SOURCES[3], timeout=30)
        assert text, team.log()
        new_pid = json.loads(team.get("/v1/model?tokenizer=0")[1])["replica"]["pid"]
        assert new_pid != pid
    finally:
        assert editor.stop() == 0


def test_backend_stopped_then_restarted(team, tmp_path):
    """Last in the module: it stops the shared team server and starts it again. Each request
    is a new document (the type-through cache would answer a repeated one)."""
    editor = start_editor(team, tmp_path / "outage", requestTimeoutMs=3000)
    try:
        editor.wait_ready(60)
        assert inline_text(editor, "file:///tmp/team/outage0.py", OTHER_SOURCES[0])
        assert team.stop() == 0, team.log()
        started = time.monotonic()
        assert (
            inline_text(editor, "file:///tmp/team/outage1.py", OTHER_SOURCES[1], timeout=30) is None
        )
        assert time.monotonic() - started < 3.0 + 2.0
        assert editor.wait_until(lambda: editor.status() == "error", 10)

        def unreachable() -> list[str]:
            return [
                p["message"]
                for p in editor.messages("window/logMessage")
                if "unreachable" in p["message"]
            ]

        assert len(unreachable()) == 1, editor.messages("window/logMessage")
        # more requests during the outage: no suggestion, no more messages
        assert (
            inline_text(editor, "file:///tmp/team/outage2.py", OTHER_SOURCES[2], timeout=30) is None
        )
        assert len(unreachable()) == 1
        team.start()
        assert editor.wait_until(lambda: editor.status() == "ready", 30), editor.messages(
            "codet5/status"
        )
        assert inline_text(editor, "file:///tmp/team/outage3.py", OTHER_SOURCES[3])
    finally:
        assert editor.stop() == 0
