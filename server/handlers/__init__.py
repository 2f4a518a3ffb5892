"""Every LSP method and command the server answers, and the one place they are registered.

One module per concern, plain module-level functions taking the server as `ls`:

    lifecycle.py     initialize, initialized, shutdown, didChangeConfiguration
    documents.py     didOpen, didChange, didClose
    completion.py    inlineCompletion, completion
    hover.py         hover
    code_actions.py  codeAction, codeAction/resolve
    commands.py      codet5.accepted, codet5.showContext, codet5.debugDocumentText,
                     codet5.debugStats (payloads: server/protocol.py)
    functions.py     the function at a position and its summary (hover, code actions)

Where they run: every handler runs on the one asyncio event loop. `ON_LOOP` handlers are
plain functions that return at once (bookkeeping, no parsing in full, no model). `AWAITS`
handlers are coroutines: whatever may take long, they await without holding the loop:
model calls run on engine threads (the pipeline's and SummaryService's futures), and a
re-parse of an edited file runs in slices (Document.parse_cooperatively). pygls cancels an
awaiting coroutine on `$/cancelRequest`; no handler runs on pygls's thread pool, where
cancellation would not reach it.

Errors: each handler is wrapped once here by errors.translate_errors, so a ServerError it
raises becomes the LSP error (requests) or an error message (notifications).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from lsprotocol import types

from codet5_lsp.server.errors import translate_errors
from codet5_lsp.server.handlers import (
    code_actions,
    commands,
    completion,
    documents,
    hover,
    lifecycle,
)
from codet5_lsp.server.language_server import CodeT5Server
from codet5_lsp.server.protocol import (
    ACCEPT_COMMAND,
    DEBUG_STATS_COMMAND,
    DEBUG_TEXT_COMMAND,
    SHOW_CONTEXT_COMMAND,
)


class Runs(Enum):
    """How a handler uses the event loop (register checks it against the function)."""

    ON_LOOP = "returns at once, on the event loop"
    AWAITS = "a coroutine on the event loop that awaits long work done off it"


ON_LOOP, AWAITS = Runs.ON_LOOP, Runs.AWAITS


@dataclass(frozen=True)
class Route:
    """One LSP method (or, with `command=True`, one workspace/executeCommand command)."""

    method: str
    handler: Callable[..., Any]
    runs: Runs
    options: Any = None
    command: bool = False


ROUTES: tuple[Route, ...] = (
    Route(types.INITIALIZE, lifecycle.initialize, ON_LOOP),
    Route(types.INITIALIZED, lifecycle.initialized, ON_LOOP),
    Route(types.SHUTDOWN, lifecycle.shutdown, ON_LOOP),
    Route(types.WORKSPACE_DID_CHANGE_CONFIGURATION, lifecycle.did_change_configuration, ON_LOOP),
    Route(types.TEXT_DOCUMENT_DID_OPEN, documents.did_open, ON_LOOP),
    Route(types.TEXT_DOCUMENT_DID_CHANGE, documents.did_change, ON_LOOP),
    Route(types.TEXT_DOCUMENT_DID_CLOSE, documents.did_close, ON_LOOP),
    Route(
        types.TEXT_DOCUMENT_INLINE_COMPLETION,
        completion.inline_completion,
        AWAITS,
        types.InlineCompletionOptions(),
    ),
    Route(
        types.TEXT_DOCUMENT_COMPLETION,
        completion.completion,
        AWAITS,
        types.CompletionOptions(trigger_characters=[".", "(", " "]),
    ),
    Route(types.TEXT_DOCUMENT_HOVER, hover.hover, AWAITS),
    Route(
        types.TEXT_DOCUMENT_CODE_ACTION,
        code_actions.code_action,
        AWAITS,
        types.CodeActionOptions(
            code_action_kinds=[types.CodeActionKind.RefactorRewrite], resolve_provider=True
        ),
    ),
    Route(types.CODE_ACTION_RESOLVE, code_actions.resolve_code_action, AWAITS),
    Route(DEBUG_TEXT_COMMAND, commands.debug_document_text, ON_LOOP, command=True),
    Route(SHOW_CONTEXT_COMMAND, commands.show_context, AWAITS, command=True),
    Route(DEBUG_STATS_COMMAND, commands.debug_stats, ON_LOOP, command=True),
    Route(ACCEPT_COMMAND, commands.accepted, ON_LOOP, command=True),
)


def register(server: CodeT5Server, routes: tuple[Route, ...] = ROUTES) -> None:
    """Register every route on `server`, each wrapped by errors.translate_errors."""
    for route in routes:
        if inspect.iscoroutinefunction(route.handler) != (route.runs == AWAITS):
            raise TypeError(
                f"{route.method}: {route.handler.__name__} is declared "
                f"{route.runs.name} but is {'' if route.runs == ON_LOOP else 'not '}"
                "a coroutine function"
            )
        handler = translate_errors(route.handler, notification=_is_notification(route))
        if route.command:
            server.command(route.method)(handler)
        else:
            server.feature(route.method, route.options)(handler)


def _is_notification(route: Route) -> bool:
    """A client -> server notification: no response to carry an error."""
    if route.command:
        return False
    request_type, response_type = types.METHOD_TO_TYPES[route.method][:2]
    return response_type is None
