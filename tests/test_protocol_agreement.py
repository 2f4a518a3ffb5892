"""The custom protocol (server/protocol.py) and its two clients agree on every name.

Read from the clients' sources: the VS Code extension (editors/vscode/src/*.ts) and the
Neovim plugin (editors/neovim/lua/codet5/*.lua). A renamed notification, command or field
on either side, without the same change on the other, fails here instead of leaving a
status bar blank or a command unanswered in the editor.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from codet5_lsp.server import protocol as P

REPO = Path(__file__).resolve().parents[1]
VSCODE = REPO / "editors" / "vscode"
NEOVIM = REPO / "editors" / "neovim" / "lua" / "codet5"


def _ts(name: str) -> str:
    return (VSCODE / "src" / name).read_text()


def _lua(name: str) -> str:
    return (NEOVIM / name).read_text()


def _all_ts() -> str:
    return "\n".join(p.read_text() for p in sorted((VSCODE / "src").glob("*.ts")))


def _all_lua() -> str:
    return "\n".join(p.read_text() for p in sorted(NEOVIM.glob("*.lua")))


def _block(source: str, opening: str) -> str:
    """The text from `opening` to its matching closing brace."""
    start = source.index(opening)
    depth, i = 0, source.index("{", start)
    for j in range(i, len(source)):
        depth += {"{": 1, "}": -1}.get(source[j], 0)
        if depth == 0:
            return source[i : j + 1]
    raise AssertionError(f"unbalanced braces after {opening!r}")


def _interface_fields(source: str, name: str) -> set[str]:
    """Field names of `export interface <name> { ... }`."""
    body = _block(source, f"export interface {name} ")
    return set(re.findall(r"^\s*(\w+)\??\s*:", body, re.M))


def _lua_reads(source: str, variable: str) -> set[str]:
    """Fields read as `<variable>.field` in Lua source."""
    return set(re.findall(rf"\b{variable}\.(\w+)", source))


def _string_list(source: str, name: str) -> list[str]:
    """The string literals of a TS union type or list named `name`."""
    match = re.search(rf"{name}\s*=\s*([^;]+);", source)
    assert match, f"{name} not found"
    return re.findall(r'"([^"]+)"', match.group(1))


# -- names -------------------------------------------------------------------------------


def test_the_server_registers_exactly_the_commands_protocol_py_names():
    from codet5_lsp.server.lsp import create_server
    from codet5_lsp.server.settings import Settings

    server = create_server(Settings())
    assert sorted(server.protocol.fm.commands) == sorted(P.SERVER_COMMANDS)


def test_both_clients_listen_to_the_status_notification():
    vscode = set(re.findall(r'onNotification\(\s*"([^"]+)"', _all_ts()))
    neovim = set(re.findall(r'\["(\w+/\w+)"\]\s*=', _all_lua()))
    assert P.STATUS_NOTIFICATION in vscode, vscode
    assert P.STATUS_NOTIFICATION in neovim, neovim
    custom = {name for name in vscode | neovim if name.startswith("codet5/")}
    assert custom == {P.STATUS_NOTIFICATION}, (
        f"a client listens for a notification the server never sends: {custom}"
    )


def _client_commands() -> tuple[set[str], set[str], set[str]]:
    """(codet5.* ids in the extension, in the plugin, contributed by package.json)."""
    contributed = {
        c["command"]
        for c in json.loads((VSCODE / "package.json").read_text())["contributes"]["commands"]
    }
    # Lua names its modules codet5.*: only strings given as a command count there.
    return (
        set(re.findall(r'"(codet5\.\w+)"', _all_ts())),
        set(re.findall(r'command\s*=\s*"(codet5\.\w+)"', _all_lua())),
        contributed,
    )


def test_every_command_a_client_sends_is_one_the_server_runs():
    vscode, neovim, contributed = _client_commands()
    # VS Code's own commands (the palette, the status item) never reach the server.
    assert not contributed & set(P.SERVER_COMMANDS), (
        "a VS Code command id equal to a server command: vscode-languageclient registers "
        f"the server's commands itself, so the two would collide: {contributed}"
    )
    assert vscode - contributed <= set(P.SERVER_COMMANDS), vscode - contributed
    assert neovim <= set(P.SERVER_COMMANDS), neovim
    # Those the clients rely on by name.
    assert {P.ACCEPT_COMMAND, P.SHOW_CONTEXT_COMMAND} <= vscode
    assert P.SHOW_CONTEXT_COMMAND in neovim
    assert "codet5.toggle" in contributed  # the status item's click (extension.ts)


def test_neovim_runs_the_command_a_suggestion_carries_as_sent():
    """The plugin's own renderer accepts by running the item's command (codet5.accepted with
    the suggestion id) exactly as the server sent it: name and arguments."""
    ghost = _lua("ghost.lua")
    assert re.search(r"command\s*=\s*command\.command", ghost)
    assert re.search(r"arguments\s*=\s*command\.arguments", ghost)
    assert "workspace/executeCommand" in ghost
    assert P.AcceptedArguments("s1").as_arguments() == ["s1"]
    assert P.AcceptedArguments.from_arguments((["s1"],)).suggestion_id == "s1"
    assert P.AcceptedArguments.from_arguments(("s1",)).suggestion_id == "s1"


# -- fields ------------------------------------------------------------------------------


def test_codet5_status_fields():
    server = set(P.wire_fields(P.StatusParams))
    status_ts = _ts("status.ts")
    declared = _interface_fields(status_ts, "StatusParams")
    parse = status_ts[status_ts.index("export function parseStatus") :]
    keys = re.search(r"for \(const key of \[([^\]]*)\]", parse)
    assert keys, "parseStatus no longer copies the summary fields by a list of keys"
    read = set(re.findall(r"\bp\.(\w+)", parse)) | set(re.findall(r'"(\w+)"', keys.group(1)))
    lua = _lua_reads(_all_lua(), "status")
    assert {"state", "message", "latencyMs", "model"} <= declared & read & lua, (
        declared,
        read,
        lua,
    )
    assert declared <= server, (
        f"VS Code declares fields the server never sends: {declared - server}"
    )
    assert read <= server, f"VS Code reads fields the server never sends: {read - server}"
    assert lua <= server, f"Neovim reads fields the server never sends: {lua - server}"


def test_codet5_status_states_are_ones_vs_code_knows():
    """parseStatus turns an unknown state into an error status."""
    from typing import get_args

    known = set(_string_list(_ts("status.ts"), "export type ServerState"))
    assert set(get_args(P.ModelState)) <= known, known


def test_show_context_arguments_and_reply():
    arguments = set(P.wire_fields(P.ShowContextArguments))
    ts = _ts("extension.ts")
    sent_ts = re.search(r"command:\s*SHOW_CONTEXT_SERVER_COMMAND,\s*arguments:\s*\[\{([^}]*)\}", ts)
    assert sent_ts, "extension.ts no longer sends codet5.showContext arguments as expected"
    assert set(re.findall(r"(\w+):", sent_ts.group(1))) == arguments
    lua = _lua("init.lua")
    sent_lua = re.search(r'command = "codet5\.showContext",\s*arguments = \{ \{([^}]*)\}', lua)
    assert sent_lua, "init.lua no longer sends codet5.showContext arguments as expected"
    assert set(re.findall(r"(\w+)\s*=", sent_lua.group(1))) == arguments
    assert set(P.wire_fields(P.Position)) == {"line", "character"}  # an LSP Position

    reply = set(P.wire_fields(P.ShowContextResult))
    assert "parts" in reply
    assert re.search(r"\.parts\b", _ts("context.ts")) and re.search(r"result\.parts", lua)
    part = set(P.wire_fields(P.ContextPart))
    assert _interface_fields(_ts("context.ts"), "ContextPart") == part
    assert _lua_reads(_lua("text.lua"), "part") == part


@pytest.mark.parametrize("args", [(), ([],), ({"uri": 1},), ([{"uri": "file:///a.py"}],)])
def test_unusable_show_context_arguments_are_invalid_params(args):
    from codet5_lsp.server.errors import INVALID_PARAMS, InvalidParamsError

    with pytest.raises(InvalidParamsError) as caught:
        P.ShowContextArguments.from_arguments(args)
    assert caught.value.code == INVALID_PARAMS


def test_payloads_are_camel_case_and_leave_out_nulls():
    status = P.StatusParams(
        state="ready", message="m", model="x", latency_ms=12.5, compute_type="int8"
    )
    assert status.to_json() == {
        "state": "ready",
        "message": "m",
        "model": "x",
        "computeType": "int8",
        "latencyMs": 12.5,
    }
    stats = P.DebugStatsResult(
        completion_requests=1,
        cache_hits=2,
        model_calls=3,
        documents=4,
        pending_futures=0,
        speculation={"speculationHits": 5},
    )
    assert stats.to_json() == {
        "completionRequests": 1,
        "cacheHits": 2,
        "modelCalls": 3,
        "documents": 4,
        "pendingFutures": 0,
        "speculationHits": 5,
    }
