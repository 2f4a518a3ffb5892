"""End-to-end: the packaged extension (codet5-lsp.vsix) inside real VS Code, in a real browser.

VS Code is code-server (VS Code for the browser), shown by Debian's Chromium and driven by
playwright-core through editors/vscode/test-real/drive.js, which types, runs commands and
reads back what the editor shows from its DOM. editors/ci-setup.sh installs all of it (into
$CODET5_VSCODE_TOOLS) and packages the .vsix; CI runs it.

What the user meets is compared with what `codet5-lsp serve` answers for the same document
and position: a second server on the same model and settings, asked by this test directly
(the "reference"). The saved file, not a picture, tells what Tab inserted.

Skip it locally with `-m "not vscode"` or CODET5_SKIP_VSCODE_REAL=1. A missing tool skips it
with what to install (`bash editors/ci-setup.sh`), except in CI (CI=true), where it fails.
CODET5_VSCODE_SCREENSHOT=PATH also saves the ghost-text screenshot there (the README's is
docs/vscode-ghost-text.png).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.lsp import LspPipe, start_process
from tests.support.paths import LABMODEL, REPO
from tests.support.paths import executable as _bin
from tests.support.polling import wait_until
from tests.support.sources import READ_LINES_SOURCE

pytestmark = pytest.mark.vscode

VSCODE = REPO / "editors" / "vscode"
DRIVER = VSCODE / "test-real" / "drive.js"
VSIX = VSCODE / "codet5-lsp.vsix"
TOOLS = Path(
    os.environ.get("CODET5_VSCODE_TOOLS") or Path.home() / ".cache" / "codet5-lsp" / "vscode-real"
)
OPT_OUT = "CODET5_SKIP_VSCODE_REAL"
READY_TIMEOUT_S = 240.0
STEP_TIMEOUT_S = 60.0  # also wait_until's default

SOURCE = READ_LINES_SOURCE.replace(
    "    with open(path)",
    '''    """Return the lines of a text file."""
    with open(path)''',
    1,
)

# The settings a user would set (README), written to the isolated profile's settings.json;
# the codet5.* ones are also what the reference server is initialized with.
CODET5_SETTINGS: dict[str, Any] = {
    "model": str(LABMODEL),
    "summaryModel": str(LABMODEL),
    "device": "cpu",
    "computeType": "int8",
    "completionMode": "auto",
    "maxNewTokens": 48,
    "debounceMs": 75,
    "alternatives": 3,  # n-best on CPU too, so that there is something to cycle
    "disabledLanguages": [],
    "summariesEnabled": True,
    "logLevel": "info",
}

# Lines typed at the end of the file for the cycling step, tried in order on the reference
# until one gets two or more items (n-best).
# (No brackets: VS Code would close them, and the document would differ from what was typed.)
CYCLE_CANDIDATES = [
    "    return ",
    "    total = ",
    "    for line in ",
    "    if ",
    "    lines = ",
    "    result = ",
]
# What the stand-in server (tests/fake_inline_server.py) offers for the last test.
FAKE_ITEMS = ["alpha()", "beta(1)", "gamma"]


# -- tools -----------------------------------------------------------------------------------


class Tools:
    def __init__(self) -> None:
        self.node24 = TOOLS / "node24" / "node_modules" / ".bin"
        self.code_server = TOOLS / "code-server" / "bin" / "code-server"
        self.playwright = TOOLS / "driver" / "node_modules" / "playwright-core"
        self.chromium = shutil.which("chromium") or "/usr/bin/chromium"
        self.node = shutil.which("node") or "node"

    def missing(self) -> list[str]:
        wanted = {
            "Node 24 (npm node@24)": self.node24 / "node",
            "code-server (npm code-server@4.139.1)": self.code_server,
            "playwright-core (npm)": self.playwright / "package.json",
            "chromium (apt)": Path(self.chromium),
            f"the packaged extension {VSIX.relative_to(REPO)}": VSIX,
        }
        missing = [name for name, path in wanted.items() if not path.exists()]
        if not shutil.which("node"):
            missing.append("node (>= 20) on PATH")
        return missing


@pytest.fixture(scope="module")
def tools() -> Tools:
    if os.environ.get(OPT_OUT) == "1":
        if os.environ.get("CI") == "true":
            pytest.fail(f"{OPT_OUT}=1 in CI: the real VS Code test must run there")
        pytest.skip(f"{OPT_OUT}=1: real VS Code test turned off by the developer")
    found = Tools()
    missing = found.missing()
    if missing:
        why = (
            "real VS Code test: missing " + ", ".join(missing) + f" (in {TOOLS}). "
            "Run `bash editors/ci-setup.sh` to install them."
        )
        if os.environ.get("CI") == "true":  # CI installs them: never skip there
            pytest.fail(why, pytrace=False)
        pytest.skip(why)  # the README's test command on a machine without them
    return found


# -- the reference server: plain JSON-RPC over stdio ------------------------------------------


class Reference:
    """What the server answers for a given text: the yardstick for what VS Code shows."""

    def __init__(self, client: LspPipe, uri: str):
        self.client, self.uri, self.version = client, uri, 1
        self.text: str | None = None

    def _sync(self, text: str) -> None:
        if self.text is None:
            self.client.notify(
                "textDocument/didOpen",
                {
                    "textDocument": {
                        "uri": self.uri,
                        "languageId": "python",
                        "version": self.version,
                        "text": text,
                    }
                },
            )
        elif text != self.text:
            self.version += 1
            self.client.notify(
                "textDocument/didChange",
                {
                    "textDocument": {"uri": self.uri, "version": self.version},
                    "contentChanges": [{"text": text}],
                },
            )
        self.text = text

    def inline_items(self, text: str, line: int, character: int) -> list[str]:
        """insertText of each item at (line, character), 0-based; ranges are checked to be
        empty at the cursor (what VS Code then shows as ghost text)."""
        self._sync(text)
        position = {"line": line, "character": character}
        result = self.client.result(
            "textDocument/inlineCompletion",
            {
                "textDocument": {"uri": self.uri},
                "position": position,
                "context": {"triggerKind": 1},
            },
        )
        items = (result or {}).get("items", result) or []
        texts = []
        for item in items:
            if item.get("range"):
                assert item["range"] == {"start": position, "end": position}, item
            texts.append(
                item["insertText"]
                if isinstance(item["insertText"], str)
                else item["insertText"]["value"]
            )
        return texts

    def hover(self, text: str, line: int, character: int) -> str | None:
        self._sync(text)
        result = self.client.result(
            "textDocument/hover",
            {"textDocument": {"uri": self.uri}, "position": {"line": line, "character": character}},
            timeout=120,
        )
        return result["contents"]["value"] if result else None


# -- the browser ------------------------------------------------------------------------------


class Driver:
    """drive.js over stdin/stdout, one JSON line each way."""

    def __init__(self, tools: Tools, env: dict[str, str], log: Path):
        self._log = log.open("wb")
        self.process = subprocess.Popen(
            [tools.node, str(DRIVER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
            start_new_session=True,
            text=True,
        )

    def __call__(self, op: str, **args: Any) -> dict:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        assert answer, f"drive.js ended (op {op}); see its log"
        reply = json.loads(answer)
        assert reply.pop("ok"), f"drive.js {op}: {reply.get('error')}"
        return reply

    def state(self) -> dict:
        return self("state")["state"]

    def close(self) -> None:
        with contextlib.suppress(AssertionError, OSError, ValueError):
            self("close")
        end_group(self.process)
        self._log.close()


def end_group(process: subprocess.Popen, grace: float = 10.0) -> None:
    """Terminate the process group `process` leads (code-server leaves watchers otherwise)."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Session:
    """Everything of one run: the profile folder, code-server, the browser, the reference."""

    def __init__(self, root: Path, driver: Driver, reference: Reference, source: Path):
        self.root, self.driver, self.reference, self.source = root, driver, reference, source
        self.stats = root / "stats.jsonl"
        self.settings = root / "data" / "User" / "settings.json"
        self.durations: dict[str, float] = {}

    def state(self) -> dict:
        return self.driver.state()

    def text(self, state: dict | None = None) -> str:
        return "\n".join((state or self.state())["lines"])

    def status_item(self, state: dict) -> dict | None:
        return next((s for s in state["status"] if "CodeT5" in s["text"]), None)

    def stats_events(self, kind: str) -> list[dict]:
        if not self.stats.exists():
            return []
        events = [json.loads(line) for line in self.stats.read_text().splitlines() if line]
        return [e for e in events if e.get("kind") == kind]

    def save_and_read(self) -> str:
        """Ctrl+S, then the file as VS Code wrote it (autosave is off)."""
        before = self.source.stat().st_mtime_ns
        self.driver("press", key="Control+S")
        wait_until("the file to be saved", lambda: self.source.stat().st_mtime_ns != before)
        time.sleep(0.2)
        return self.source.read_text()

    def new_line(self) -> None:
        """Cursor to a fresh, empty last line (no auto-indent: the typed text says it all)."""
        self.driver("press", key="Control+End")
        state = self.state()
        if state["lines"][-1] != "":
            self.driver("press", key="End")
            self.driver("press", key="Enter")
            # Drop whatever indentation VS Code put there.
            self.driver("press", key="Shift+Home")
            self.driver("press", key="Shift+Home")
            if self.state()["lines"][-1] != "":
                self.driver("press", key="Backspace")
        wait_until("an empty last line", lambda: self.state()["lines"][-1] == "")

    def type_and_wait_for_ghost(self, typed: str, at_once: bool = False) -> dict:
        """Type `typed` on the current (empty, last) line, key by key or `at_once` (one edit,
        as a paste); wait until ghost text stays put."""
        self.driver("insertText" if at_once else "type", text=typed)
        previous: list[Any] = [None]

        def settled():
            state = self.state()
            key = (state["ghost"], tuple(state["ghostLines"]), tuple(state["lines"]))
            ok = state["ghost"] and state["lines"][-1] == typed and key == previous[0]
            previous[0] = key
            return state if ok else None

        return self.wait_for_ghost(f"ghost text after typing {typed!r}", settled)

    def wait_for_ghost(self, what: str, probe: Callable[[], Any], tries: int = 3) -> Any:
        """wait_for, asking again (Trigger Inline Suggestion) when nothing came: on a busy
        machine the server may give up on a request (requestTimeoutMs), which by design shows
        no suggestion rather than a late one."""
        for attempt in range(1, tries + 1):
            try:
                return wait_until(what, probe, timeout=STEP_TIMEOUT_S / tries, interval=0.5)
            except AssertionError:
                if attempt == tries:
                    raise
                self.driver("command", title="Trigger Inline Suggestion")
        raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def session(tools: Tools, tmp_path_factory: pytest.TempPathFactory, shared_xdg_cache: Path):
    started = time.monotonic()
    root = tmp_path_factory.mktemp("vscode-real")
    workspace = root / "workspace"
    workspace.mkdir()
    source = workspace / f"example_{secrets.token_hex(3)}.py"  # a fresh file every run
    source.write_text(SOURCE)
    data, extensions = root / "data", root / "extensions"
    (data / "User").mkdir(parents=True)
    server_args = [
        "--offline",
        "--log-file",
        str(root / "server.log"),
        "--stats-file",
        str(root / "stats.jsonl"),
    ]
    # serverPath and serverArgs are machine-scoped: VS Code ignores them in the (local) User
    # settings when the extension runs on a remote, which code-server is; they go in the
    # Remote settings, as the README says.
    (data / "Machine").mkdir()
    (data / "Machine" / "settings.json").write_text(
        json.dumps(
            {
                "codet5.serverPath": _bin("codet5-lsp"),
                "codet5.serverArgs": server_args,
            },
            indent=2,
        )
    )
    settings = {
        **{f"codet5.{k}": v for k, v in CODET5_SETTINGS.items()},
        "files.autoSave": "off",
        "files.hotExit": "off",
        "security.workspace.trust.enabled": False,
        "workbench.startupEditor": "none",
        "workbench.tips.enabled": False,
        "telemetry.telemetryLevel": "off",
        "extensions.autoUpdate": False,
        "extensions.autoCheckUpdates": False,
        "update.mode": "none",
        # Ghost text only: the suggestion list would take Tab for itself.
        "editor.quickSuggestions": {"other": "off", "comments": "off", "strings": "off"},
        "editor.suggestOnTriggerCharacters": False,
        "editor.hover.delay": 300,
        "window.commandCenter": False,
        "chat.disableAIFeatures": True,
        "workbench.secondarySideBar.defaultVisibility": "hidden",
    }
    (data / "User" / "settings.json").write_text(json.dumps(settings, indent=2))

    password = secrets.token_urlsafe(18)
    env = dict(os.environ)
    env.update(
        {
            "PATH": f"{tools.node24}{os.pathsep}{env.get('PATH', '')}",
            "XDG_CACHE_HOME": str(shared_xdg_cache),  # the converted labmodel, shared with others
            "XDG_CONFIG_HOME": str(root / "config"),
            "XDG_DATA_HOME": str(root / "xdg-data"),
            "XDG_STATE_HOME": str(root / "state"),
            "HF_HUB_OFFLINE": "1",
            "PASSWORD": password,  # code-server's password, read from the environment only
        }
    )
    code_server = [
        str(tools.code_server),
        "--user-data-dir",
        str(data),
        "--extensions-dir",
        str(extensions),
    ]
    install = subprocess.run(
        [*code_server, "--install-extension", str(VSIX)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    listed = subprocess.run(
        [*code_server, "--list-extensions"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "codet5-lsp.codet5-lsp" in listed.stdout.split(), listed.stdout + listed.stderr

    port = free_port()
    server_log = (root / "code-server.log").open("wb")
    code = subprocess.Popen(
        [
            *code_server,
            "--auth",
            "password",
            "--bind-addr",
            f"127.0.0.1:{port}",
            "--disable-telemetry",
            "--disable-update-check",
            "--disable-workspace-trust",
            "--disable-getting-started-override",
            str(workspace),
        ],
        stdin=subprocess.DEVNULL,
        stdout=server_log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=workspace,
        start_new_session=True,
    )

    reference_env = dict(env)
    reference_env.pop("PASSWORD")
    client = start_process(
        [_bin("codet5-lsp"), "serve", "--offline", "--log-file", str(root / "reference.log")],
        reference_env,
        root / "reference.stderr",
    )
    driver_env = dict(
        os.environ,
        CODET5_CHROMIUM=tools.chromium,
        CODET5_CODE_URL=f"http://127.0.0.1:{port}/?folder={workspace}",
        CODET5_CODE_PASSWORD=password,
        CODET5_PLAYWRIGHT=str(tools.playwright),
        HOME=str(root / "browser-home"),
    )
    driver = None
    try:
        client.result(
            "initialize",
            {
                "processId": os.getpid(),
                "rootUri": workspace.as_uri(),
                "workspaceFolders": [{"uri": workspace.as_uri(), "name": workspace.name}],
                "capabilities": {
                    "textDocument": {
                        "inlineCompletion": {},
                        "hover": {"contentFormat": ["markdown", "plaintext"]},
                    }
                },
                # Same settings; only the timing differs: it answers at once and never gives up
                # (a busy machine must not turn its answer into "no suggestion").
                "initializationOptions": dict(
                    CODET5_SETTINGS, debounceMs=0, requestTimeoutMs=120000
                ),
            },
        )
        client.notify("initialized", {})
        wait_until("code-server to answer", lambda: _http_ok(port), 60)
        driver = Driver(tools, driver_env, root / "drive.log")
        driver("open")
        driver("openFile", name=source.name)
        result = Session(root, driver, Reference(client, source.as_uri()), source)
        result.durations["start"] = time.monotonic() - started
        yield result
    finally:
        if driver is not None:
            driver.close()
        end_group(code)
        server_log.close()
        client.close()
        for name in ("server.log", "code-server.log", "drive.log"):
            log = root / name
            if log.exists():
                sys.stderr.write(f"--- {name} (tail)\n{log.read_text(errors='replace')[-2500:]}\n")
        sys.stderr.write(f"real VS Code session: {time.monotonic() - started:.1f}s\n")


def _http_ok(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.")
    except OSError:
        return False


def _ghost_text(state: dict) -> str:
    """The ghost text as one string (first line inline, further lines below)."""
    return "\n".join([state["ghost"], *state["ghostLines"]])


def _wait_ready(session: Session) -> dict:
    def ready():
        state = session.state()
        item = session.status_item(state)
        if item and item["icon"] == "codicon-error":  # say why now, not after the timeout
            raise AssertionError(f"the status bar shows an error: {item['tooltip']}")
        return item and item["icon"] == "codicon-sparkle" and state

    return wait_until("the status bar to show CodeT5 ready", ready, READY_TIMEOUT_S, interval=0.5)


# -- the tests, in the order a user meets things -----------------------------------------------


def test_ghost_text_is_the_servers_suggestion_and_tab_inserts_exactly_it(session: Session):
    _wait_ready(session)
    session.new_line()
    typed = "    return "
    shown = session.type_and_wait_for_ghost(typed)
    before = session.text(shown)
    assert before == SOURCE + typed, "ghost text must not be in the document"
    row = len(shown["lines"])  # 1-based, the last line
    assert shown["cursor"] == [row, len(typed) + 1]

    items = session.reference.inline_items(before, row - 1, len(typed))
    assert items, "the reference server has no suggestion here"
    assert _ghost_text(shown) == items[0]

    shot = session.root / "ghost-text.png"
    session.driver("screenshot", path=str(shot))
    if os.environ.get("CODET5_VSCODE_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["CODET5_VSCODE_SCREENSHOT"])

    accepted_before = len(session.stats_events("accepted"))
    session.driver("press", key="Tab")
    expected = before + items[0]
    last = expected.split("\n")
    after = wait_until(
        "the suggestion in the document, the cursor after it",
        lambda: (
            (s := session.state())
            and session.text(s) == expected
            and s["cursor"] == [len(last), len(last[-1]) + 1]
            and s
        ),
    )
    assert after["ghost"] is None
    assert session.save_and_read() == expected
    # Accepting ran the item's command: the server counted the acceptance.
    wait_until(
        "codet5.accepted in the statistics",
        lambda: len(session.stats_events("accepted")) == accepted_before + 1,
    )


def test_status_bar_shows_ready_and_the_latency(session: Session):
    state = _wait_ready(session)
    item = session.status_item(state)
    assert item is not None
    match = re.fullmatch(r"CodeT5 (\d+ ms|\d+\.\d s)", item["text"])
    assert match, f"no latency in the status bar: {item}"
    # The figure is the median of the latencies the server reported after each completion,
    # which are the ones its statistics file records.
    latencies = [e["latency_ms"] for e in session.stats_events("shown")][-20:]
    assert latencies
    ordered = sorted(latencies)
    mid = len(ordered) // 2
    median = ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
    shown = match.group(1)
    # status.ts's formatLatency (Math.round: halves up, unlike Python's round).
    expected = f"{math.floor(median + 0.5)} ms" if median < 1000 else f"{median / 1000:.1f} s"
    assert shown == expected, (shown, latencies)
    # "ready" itself is in the tooltip.
    session.driver("hoverStatus", text="CodeT5")
    tooltip = wait_until(
        "the status item's tooltip",
        lambda: next((h for h in session.state()["hovers"] if h.startswith("CodeT5:")), None),
    )
    assert tooltip.splitlines()[0] == "CodeT5: ready", tooltip
    assert f"Latency: {expected}" in tooltip, tooltip
    session.driver("mouseAway")


def test_next_suggestion_key_cycles_the_items(session: Session):
    session.driver("press", key="Escape")
    text = session.save_and_read()
    base = text if text.endswith("\n") else text + "\n"
    chosen = None
    for typed in CYCLE_CANDIDATES:
        lines = (base + typed).split("\n")
        items = session.reference.inline_items(base + typed, len(lines) - 1, len(typed))
        if len(items) >= 2 and len(set(items)) == len(items):
            chosen = (typed, items)
            break
    if chosen is None:
        pytest.skip(
            "the server answered one item at every candidate position "
            f"({CYCLE_CANDIDATES}): nothing to cycle (n-best not in this build)"
        )
    typed, items = chosen
    # Alt+] makes VS Code ask again at the same position and cycle through that answer.
    lines = (base + typed).split("\n")
    again = session.reference.inline_items(base + typed, len(lines) - 1, len(typed))
    if len(again) < 2:
        pytest.xfail(
            f"server: asked again at the same position it answers {again} instead of "
            f"{items} (the type-through cache keeps only the best item), so VS Code "
            "has nothing to cycle with the real server; see the stand-in test below"
        )
    session.new_line()
    assert session.text() == base, "the document is not what the reference was asked about"
    # One edit, as a paste: typed key by key, the server answers from its type-through cache
    # (one item), which is a different question from the reference's.
    shown = session.type_and_wait_for_ghost(typed, at_once=True)
    assert _ghost_text(shown) == items[0]
    session.driver("press", key="Alt+BracketRight")  # editor.action.inlineSuggest.showNext
    second = wait_until(
        "the second item after Alt+]",
        lambda: (s := session.state()) and s["ghost"] and _ghost_text(s) == items[1] and s,
    )
    assert session.text(second) == base + typed
    session.driver("press", key="Alt+BracketLeft")  # showPrevious
    wait_until(
        "the first item again after Alt+[",
        lambda: (s := session.state()) and s["ghost"] and _ghost_text(s) == items[0] and s,
    )
    session.driver("press", key="Alt+BracketRight")
    wait_until(
        "the second item again",
        lambda: (s := session.state()) and s["ghost"] and _ghost_text(s) == items[1] and s,
    )
    session.driver("press", key="Tab")
    expected = base + typed + items[1]
    wait_until("the second item in the document", lambda: session.text() == expected)
    assert session.save_and_read() == expected


def test_hover_shows_the_summary(session: Session):
    session.driver("press", key="Escape")
    text = session.text()
    line = text.split("\n").index("def read_lines(path):")
    markdown = session.reference.hover(text, line, len("def read"))
    assert markdown, "the reference server has no hover on read_lines"
    summary = markdown.split("\n\n")[0].strip()
    assert summary

    def hover_text():
        session.driver("hoverWord", line=line + 1, word="read_lines")
        time.sleep(0.8)
        hovers = [h for h in session.state()["hovers"] if "summary by" in h]
        return hovers

    hovers = wait_until("the hover on read_lines", hover_text, interval=0.5)
    assert len(hovers) == 1, hovers  # one hover widget, not the same text twice
    rendered = " ".join(hovers[0].split())
    assert " ".join(_plain(summary).split()) in rendered, (summary, hovers[0])
    assert "read_lines — summary by labmodel (codet5-lsp)" in rendered
    session.driver("mouseAway")
    session.driver("press", key="Escape")


def _plain(markdown: str) -> str:
    """The text of simple markdown as rendered (emphasis and code marks dropped)."""
    return re.sub(r"[*_`]", "", markdown)


def test_toggle_turns_completions_off_and_on(session: Session):
    _wait_ready(session)
    session.driver("press", key="Escape")
    session.driver("command", title="CodeT5: Toggle Completions")
    off = wait_until(
        "the status bar to say off",
        lambda: (
            (s := session.state())
            and (i := session.status_item(s))
            and i["text"] == "CodeT5 off"
            and s
        ),
    )
    assert (session.status_item(off) or {}).get("icon") == "codicon-circle-slash"
    assert json.loads(session.settings.read_text())["codet5.enable"] is False

    shown_before = len(session.stats_events("shown"))
    session.new_line()
    typed = "    return "
    session.driver("type", text=typed)
    # Asked for explicitly too (this VS Code binds no key to it): still nothing.
    session.driver("command", title="Trigger Inline Suggestion")
    time.sleep(3.0)
    state = session.state()
    assert state["lines"][-1] == typed
    assert state["ghost"] is None, f"ghost text while off: {state['ghost']!r}"
    # Not even asked: the server generated nothing while completions were off.
    assert len(session.stats_events("shown")) == shown_before

    session.driver("command", title="CodeT5: Toggle Completions")
    wait_until(
        "the status bar to come back on",
        lambda: (
            (s := session.state())
            and (i := session.status_item(s))
            and i["text"] != "CodeT5 off"
            and i["icon"] == "codicon-sparkle"
        ),
    )
    assert json.loads(session.settings.read_text())["codet5.enable"] is True
    session.driver("command", title="Trigger Inline Suggestion")
    state = session.wait_for_ghost(
        "ghost text once on again", lambda: (s := session.state()) and s["ghost"] and s
    )
    items = session.reference.inline_items(session.text(state), len(state["lines"]) - 1, len(typed))
    assert _ghost_text(state) == items[0]


def test_next_suggestion_key_cycles_several_items_of_a_stand_in_server(session: Session):
    """Whatever the model offers: with a server that always sends three items, Alt+] and
    Alt+[ step through them and Tab inserts the one shown. Switching serverPath in the
    Remote settings also restarts the server (last test: the real server is gone after)."""
    wrapper = session.root / "fake-codet5-lsp"
    fake = Path(__file__).with_name("fake_inline_server.py")
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} {fake} "$@"\n')
    wrapper.chmod(0o755)
    machine = session.root / "data" / "Machine" / "settings.json"
    machine.write_text(
        json.dumps({"codet5.serverPath": str(wrapper), "codet5.serverArgs": FAKE_ITEMS}, indent=2)
    )
    wait_until(
        "the stand-in server to report ready",
        lambda: (
            (s := session.state())
            and (i := session.status_item(s))
            and "fake" in (i["tooltip"] or "")
            and i["icon"] == "codicon-sparkle"
        ),
        READY_TIMEOUT_S,
    )
    session.driver("press", key="Escape")
    base = session.save_and_read()
    base = base if base.endswith("\n") else base + "\n"
    session.new_line()
    typed = "    value = "
    shown = session.type_and_wait_for_ghost(typed)
    assert session.text(shown) == base + typed
    assert _ghost_text(shown) == FAKE_ITEMS[0]
    for key, index in [
        ("Alt+BracketRight", 1),
        ("Alt+BracketRight", 2),
        ("Alt+BracketRight", 0),
        ("Alt+BracketLeft", 2),
        ("Alt+BracketLeft", 1),
    ]:
        session.driver("press", key=key)
        want = FAKE_ITEMS[index]

        def shows_it(want: str = want) -> bool:
            return session.state()["ghost"] == want

        wait_until(f"item {index} after {key}", shows_it)
    assert session.text() == base + typed, "cycling must not touch the document"
    session.driver("press", key="Tab")
    expected = base + typed + FAKE_ITEMS[1]
    wait_until("the second item in the document", lambda: session.text() == expected)
    assert session.save_and_read() == expected
