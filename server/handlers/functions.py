"""The function at a position and its summary: what hovers and docstring actions share."""

from __future__ import annotations

import asyncio
import logging
import threading

from lsprotocol import types

from codet5_lsp.server.documents import Document
from codet5_lsp.server.language_server import CodeT5Server
from codet5_lsp.server.summaries import Summary
from codet5_lsp.server.syntax import Definition, definition_at

log = logging.getLogger(__name__)


async def function_at(doc: Document, position: types.Position) -> Definition | None:
    """The function or method at `position`, or None. Awaits an out-of-date tree in slices
    (Document.parse_cooperatively), so a long re-parse does not hold the loop. A position
    outside the document raises InvalidPositionError (an LSP InvalidParams error)."""
    await doc.parse_cooperatively()
    definition = definition_at(doc, position)
    if definition is None or definition.kind not in ("function", "method"):
        return None
    return definition


async def summarize(ls: CodeT5Server, definition: Definition) -> Summary | None:
    """The summary of `definition`, computed on an engine thread; None when the model
    failed (logged, and said in a log message to the client)."""
    cancel = threading.Event()
    try:
        return await ls.summaries.summarize(definition, cancel)
    except asyncio.CancelledError:
        cancel.set()  # the client cancelled the hover: stop its generation
        raise
    except Exception as exc:
        log.exception("summary failed")
        ls.window_log_message(
            types.LogMessageParams(
                type=types.MessageType.Error, message=f"codet5-lsp: summary failed: {exc}"
            )
        )
        return None
