"""The one LSP harness: `codet5-lsp serve` as a subprocess spoken to over stdio.

`LspPipe` writes frames (or raw bytes, so malformed frames and messages can be sent exactly) and
collects what the server sends, on a thread. `start_server` starts this checkout's server behind
one (`start_ready`: initialized and its model loaded); `start_process` any command, such as
the installed one an editor is configured with (`editor_command`). Tests written against
pytest-lsp's typed client start the same server command through `start_client`.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS = -32700, -32600, -32601, -32602
REQUEST_CANCELLED = -32800


# ---- a byte-level LSP client -----------------------------------------------------------------


def frame(message: Any) -> bytes:
    body = json.dumps(message).encode("utf-8")
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


class LspPipe:
    """Writes frames (or raw bytes) to a server and collects what it sends, on a thread."""

    def __init__(self, writer: IO[bytes], reader: IO[bytes], proc: subprocess.Popen | None = None):
        self.proc = proc
        self._writer = writer
        self._reader = reader
        self._cond = threading.Condition()
        self._write_lock = threading.Lock()
        self.responses: dict[Any, dict] = {}
        self.null_id_responses: list[dict] = []
        self.notifications: list[dict] = []
        self.closed = False
        self._next_id = 0
        self._thread = threading.Thread(target=self._read_loop, daemon=True)
        self._thread.start()

    # -- sending ---------------------------------------------------------------------------
    def send_raw(self, data: bytes) -> None:
        with self._write_lock:
            self._writer.write(data)
            self._writer.flush()

    def send(self, message: Any) -> None:
        self.send_raw(frame(message))

    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def request(self, method: str, params: Any = None) -> int:
        msg_id = self.new_id()
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": msg_id, "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)
        return msg_id

    def notify(self, method: str, params: Any = None) -> None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)

    def call(self, method: str, params: Any = None, timeout: float = 60) -> dict:
        return self.response(self.request(method, params), timeout)

    def result(self, method: str, params: Any = None, timeout: float = 60) -> Any:
        """The result of a request that must succeed (an error response fails the test)."""
        reply = self.call(method, params, timeout)
        assert "error" not in reply, reply
        return reply.get("result")

    # -- receiving -------------------------------------------------------------------------
    def _read_loop(self) -> None:
        try:
            while True:
                length = None
                while True:
                    line = self._reader.readline()
                    if not line:
                        return
                    if line in (b"\r\n", b"\n"):
                        break
                    name, _, value = line.decode("ascii").partition(":")
                    if name.lower() == "content-length":
                        length = int(value.strip())
                assert length is not None, "server sent a frame without Content-Length"
                message = json.loads(self._reader.read(length))
                if "method" in message and "id" in message:  # a request from the server
                    self.send({"jsonrpc": "2.0", "id": message["id"], "result": None})
                with self._cond:
                    if "method" in message:
                        self.notifications.append(message)
                    elif message.get("id") is None:
                        self.null_id_responses.append(message)
                    else:
                        key = message["id"]
                        self.responses[key if isinstance(key, (int, str)) else json.dumps(key)] = (
                            message
                        )
                    self._cond.notify_all()
        finally:
            with self._cond:
                self.closed = True
                self._cond.notify_all()

    def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        end = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                left = end - time.monotonic()
                if left <= 0 or self.closed:
                    return predicate()
                self._cond.wait(min(left, 0.5))
        return True

    def response(self, msg_id: Any, timeout: float = 60) -> dict:
        assert self.wait_until(lambda: msg_id in self.responses, timeout), (
            f"no response to request {msg_id} within {timeout} s"
        )
        return self.responses[msg_id]

    def messages(self, method: str) -> list[dict]:
        with self._cond:
            return [m["params"] for m in self.notifications if m["method"] == method]

    def shown(self, needle: str = "") -> list[str]:
        return [p["message"] for p in self.messages("window/showMessage") if needle in p["message"]]

    def status(self) -> str | None:
        statuses = self.messages("codet5/status")
        return statuses[-1]["state"] if statuses else None

    # -- sessions --------------------------------------------------------------------------
    def initialize(self, **init_options: Any) -> dict:
        reply = self.call(
            "initialize",
            {
                "processId": os.getpid(),
                "rootUri": None,
                "capabilities": {"general": {"positionEncodings": ["utf-16"]}},
                "initializationOptions": init_options or None,
            },
            timeout=60,
        )
        assert "result" in reply, reply
        self.notify("initialized", {})
        return reply["result"]

    def wait_ready(self, timeout: float = 120) -> None:
        assert self.wait_until(lambda: self.status() in ("ready", "error"), timeout), self.messages(
            "codet5/status"
        )
        assert self.status() == "ready", self.messages("codet5/status")

    def open(self, uri: str, text: str, language: str = "python", version: int = 1) -> None:
        self.notify(
            "textDocument/didOpen",
            {
                "textDocument": {
                    "uri": uri,
                    "languageId": language,
                    "version": version,
                    "text": text,
                }
            },
        )

    def inline(self, uri: str, line: int, character: int, timeout: float = 120) -> dict:
        return self.call(
            "textDocument/inlineCompletion", inline_params(uri, line, character), timeout
        )

    def server_text(self, uri: str) -> str:
        reply = self.call(
            "workspace/executeCommand", {"command": "codet5.debugDocumentText", "arguments": [uri]}
        )
        assert "result" in reply, reply
        return reply["result"]["text"]

    def stop(self, timeout: float = 30) -> int | None:
        """shutdown + exit; the process's exit code (None in process)."""
        if not self.closed:
            try:
                reply = self.call("shutdown", timeout=timeout)
                assert reply.get("result", "missing") is None, reply
                self.notify("exit")
            except (BrokenPipeError, OSError):
                pass
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise

    def close(self, timeout: float = 15) -> None:
        """`stop`, for clean-up paths: a server that does not stop cleanly is killed."""
        try:
            self.stop(timeout)
        except (AssertionError, OSError, subprocess.TimeoutExpired):
            if self.proc is not None and self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(10)

    def rss_kb(self) -> int:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")


def inline_params(uri: str, line: int, character: int) -> dict:
    return {
        "textDocument": {"uri": uri},
        "position": {"line": line, "character": character},
        "context": {"triggerKind": 2},
    }


def items_of(reply: dict) -> list[dict]:
    assert "result" in reply, reply
    result = reply["result"]
    return result["items"] if isinstance(result, dict) else (result or [])


def server_env(cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["XDG_CACHE_HOME"] = str(cache)
    env["XDG_STATE_HOME"] = str(cache)
    return env


def server_command(args: list[str]) -> list[str]:
    """`codet5-lsp serve ARGS` from this checkout (conftest puts it first on PYTHONPATH)."""
    return [sys.executable, "-m", "codet5_lsp.server.cli", "serve", *args]


def start_process(command: list[str], env: dict[str, str], stderr_log: Path) -> LspPipe:
    """Any LSP server command as a subprocess on pipes; its stderr goes to `stderr_log`."""
    with open(stderr_log, "ab") as log:
        proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env
        )
    assert proc.stdin is not None and proc.stdout is not None
    return LspPipe(proc.stdin, proc.stdout, proc)


def editor_command(tmp: Path) -> list[str]:
    """The installed `codet5-lsp serve` as an editor test configures it: the labmodel for
    completions and hovers, offline, statistics and log under `tmp`."""
    from tests.support.paths import LABMODEL, executable

    return [
        executable("codet5-lsp"),
        "serve",
        "--model",
        str(LABMODEL),
        "--summary-model",
        str(LABMODEL),
        "--device",
        "cpu",
        "--offline",
        "--stats-file",
        str(tmp / "stats.jsonl"),
        "--log-file",
        str(tmp / "server.log"),
    ]


def start_server(args: list[str], workdir: Path) -> LspPipe:
    """`codet5-lsp serve ARGS` as a subprocess; its log goes to workdir/server.log."""
    workdir.mkdir(parents=True, exist_ok=True)
    return start_process(
        server_command(["--stats-file", str(workdir / "stats.jsonl"), *args]),
        server_env(workdir),
        workdir / "server.log",
    )


def start_ready(args: list[str], workdir: Path, **settings: Any) -> LspPipe:
    """`start_server`, initialized with FAST (and `settings`), once its model is ready."""
    pipe = start_server(args, workdir)
    pipe.initialize(**{**FAST, **settings})
    pipe.wait_ready()
    return pipe


def model_args(files) -> list[str]:
    return ["--model", str(files.folder), "--device", "cpu", "--compute-type", "int8"]


# No debounce at all (debounceMs is only the adaptive debounce's minimum), small generations,
# one CTranslate2 thread (steadier on a busy 2-core machine), no summary model.
FAST = {
    "debounceMs": 0,
    "debounceMaxMs": 0,
    "requestTimeoutMs": 120000,
    "maxNewTokens": 8,
    "maxMultilineTokens": 8,
    "intraThreads": 1,
    "summariesEnabled": False,
}


# ---- the same server behind pytest-lsp's typed client ----------------------------------------


async def start_client(args: list[str], cache: Path, **init_options: Any):
    """`codet5-lsp serve ARGS` behind pytest-lsp's client, initialized as VS Code would be.

    Returns (client, the initialize result, the list the server's `codet5/status` params are
    appended to as they arrive)."""
    from lsprotocol import types
    from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

    config = ClientServerConfig(server_command=server_command(args), server_env=server_env(cache))
    client = await config.start()
    assert isinstance(client, LanguageClient), client
    statuses: list[dict] = []

    @client.feature("codet5/status")
    def on_status(params: Any) -> None:  # a raw JSON object
        statuses.append(params if isinstance(params, dict) else params._asdict())

    result = await client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("visual-studio-code"),
            initialization_options=init_options or None,
        )
    )
    return client, result, statuses


def open_document(client: Any, uri: str, text: str, language_id: str = "python") -> None:
    """didOpen of `text` at `uri` (version 1) through pytest-lsp's client."""
    from lsprotocol import types

    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id=language_id, version=1, text=text
            )
        )
    )


async def wait_for(predicate: Callable[[], Any], timeout: float = 120.0) -> bool:
    """Polls `predicate` on the running loop until it holds or `timeout` seconds pass."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return bool(predicate())


def status_of(statuses: list[dict]) -> str | None:
    """The state of the last `codet5/status` (None before the first)."""
    return statuses[-1]["state"] if statuses else None
