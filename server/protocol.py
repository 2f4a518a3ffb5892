"""The custom protocol between codet5-lsp and its editor clients: names and typed payloads.

Why here: the VS Code extension (editors/vscode/src/*.ts) and the Neovim plugin
(editors/neovim/lua/codet5/*.lua) read and send these by name; tests/test_protocol_agreement.py
reads their sources and fails when a name on either side changes without the other.

Fields are snake_case here and camelCase on the wire (`wire_name`); `to_json` leaves out fields
that are None, as clients treat a missing field and a null one alike.

    codet5/status            server -> client notification          StatusParams
    codet5.accepted          command, client -> server on accept    AcceptedArguments
    codet5.showContext       command: what the model sees           ShowContextArguments ->
                                                                    ShowContextResult
    codet5.debugDocumentText command (tests, benchmarks)            DocumentTextArguments ->
                                                                    DocumentTextResult
    codet5.debugStats        command (tests, benchmarks)            -> DebugStatsResult
    codeAction data          server -> client -> server on resolve  DocstringActionData

`codet5.toggle`, `codet5.restart`, `codet5.showLog` and `codet5.showContextAtCursor` are VS
Code commands of the extension alone; the server never sees them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

STATUS_NOTIFICATION = "codet5/status"
ACCEPT_COMMAND = "codet5.accepted"
SHOW_CONTEXT_COMMAND = "codet5.showContext"
DEBUG_TEXT_COMMAND = "codet5.debugDocumentText"
DEBUG_STATS_COMMAND = "codet5.debugStats"
# Every command the server registers (workspace/executeCommand), in the order it lists them.
SERVER_COMMANDS = (DEBUG_TEXT_COMMAND, SHOW_CONTEXT_COMMAND, DEBUG_STATS_COMMAND, ACCEPT_COMMAND)

ACCEPT_TITLE = "codet5: accepted"

ModelState = Literal["loading", "ready", "error"]


def wire_name(name: str) -> str:
    """snake_case field -> camelCase JSON key."""
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def wire_fields(cls: type) -> list[str]:
    """The JSON keys of a payload class (for the agreement test and for readers)."""
    return [wire_name(f.name) for f in dataclasses.fields(cls)]


def _to_json(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            wire_name(f.name): _to_json(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if getattr(value, f.name) is not None
        }
    if isinstance(value, (list, tuple)):
        return [_to_json(v) for v in value]
    return value


class _Payload:
    def to_json(self) -> dict[str, Any]:
        return _to_json(self)


def _first_argument(args: tuple[Any, ...]) -> Any:
    """The first command argument; pygls may hand the whole `arguments` list as one."""
    first = args[0] if args else None
    if isinstance(first, list):
        first = first[0] if first else None
    return first


@dataclass(frozen=True)
class StatusParams(_Payload):
    """`codet5/status`: the completion model's state, sent on every change of state and after
    every completion (carrying its latency), so a status bar can show both.

    summary_state: the hover-summary model's state: "loading", "ready", "error", "fallback"
    (it failed, the completion model writes summaries) or "off".
    """

    state: ModelState
    message: str
    model: str
    summary_model: str | None = None
    summary_state: str | None = None
    summary_message: str | None = None
    device: str | None = None
    compute_type: str | None = None
    latency_ms: float | None = None


@dataclass(frozen=True)
class AcceptedArguments(_Payload):
    """`codet5.accepted [suggestion id]`: the command carried by every suggestion, run by the
    client when the user accepts it (statistics; the next line's speculation goes first)."""

    suggestion_id: str | None

    @classmethod
    def from_arguments(cls, args: tuple[Any, ...]) -> AcceptedArguments:
        first = _first_argument(args)
        return cls(None if first is None else str(first))

    def as_arguments(self) -> list[Any]:
        return [self.suggestion_id]


@dataclass(frozen=True)
class Position(_Payload):
    line: int
    character: int


@dataclass(frozen=True)
class ShowContextArguments(_Payload):
    """`codet5.showContext [{"uri", "position": {"line", "character"}}]`."""

    uri: str
    position: Position

    @classmethod
    def from_arguments(cls, args: tuple[Any, ...]) -> ShowContextArguments:
        """Raises ShowContextError (an InvalidParamsError) naming what is wrong."""
        # The checks and their messages live with the feature (tested there).
        from codet5_lsp.server.show_context import parse_arguments

        uri, line, character = parse_arguments(args)
        return cls(uri, Position(line, character))


@dataclass(frozen=True)
class ContextPart(_Payload):
    """One part of what the model sees: its kind (server/show_context.py), its length in
    tokens, and its text exactly as the model reads it."""

    kind: str
    tokens: int
    text: str


@dataclass(frozen=True)
class ShowContextResult(_Payload):
    parts: list[ContextPart]
    mode: str


@dataclass(frozen=True)
class DocumentTextArguments(_Payload):
    """`codet5.debugDocumentText [uri]`."""

    uri: str

    @classmethod
    def from_arguments(cls, args: tuple[Any, ...]) -> DocumentTextArguments:
        # No usable uri: "None", which is not open (UnknownDocumentError says so).
        return cls(str(_first_argument(args)))


@dataclass(frozen=True)
class DocumentTextResult(_Payload):
    """The server's copy of a document."""

    uri: str
    version: int | None
    text: str


@dataclass(frozen=True)
class DebugStatsResult(_Payload):
    """Counters for tests and benchmarks. `pending_futures`: requests and notifications pygls
    still tracks (a leak shows as a number that grows); `speculation`: the speculator's own
    counters, sent beside the others (server/speculation.py)."""

    completion_requests: int
    cache_hits: int
    model_calls: int
    documents: int
    pending_futures: int
    speculation: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        plain = {
            wire_name(f.name): getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name != "speculation"
        }
        return {**plain, **self.speculation}


@dataclass(frozen=True)
class DocstringActionData(_Payload):
    """The `data` of an "Insert generated docstring" code action: where it was offered, so
    codeAction/resolve finds the function again, and the version, so a document edited in
    between gets no edit."""

    uri: str
    line: int
    character: int
    version: int | None

    @classmethod
    def from_json(cls, data: Any) -> DocstringActionData:
        data = data if isinstance(data, dict) else {}
        return cls(
            uri=str(data.get("uri")),
            line=int(data.get("line", 0)),
            character=int(data.get("character", 0)),
            version=data.get("version"),
        )
