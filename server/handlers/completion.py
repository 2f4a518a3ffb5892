"""textDocument/inlineCompletion and textDocument/completion: one suggestion, two shapes.

Async handlers on the event loop: the model runs on an engine thread (CompletionPipeline
awaits its future), so the loop keeps reading messages; `$/cancelRequest` cancels the
coroutine, and the cancel event stops the generation already running on the engine thread.
An engine failure is "no suggestion" (and a log message), never an error for the editor.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading

from lsprotocol import types

from codet5_lsp.server.documents import Document
from codet5_lsp.server.errors import ServerError
from codet5_lsp.server.language_server import CodeT5Server
from codet5_lsp.server.pipeline import Suggestion
from codet5_lsp.server.protocol import ACCEPT_COMMAND, ACCEPT_TITLE, AcceptedArguments

log = logging.getLogger(__name__)


async def inline_completion(
    ls: CodeT5Server, params: types.InlineCompletionParams
) -> types.InlineCompletionList:
    suggestion = await suggest(ls, params.text_document.uri, params.position)
    if suggestion is None:
        return types.InlineCompletionList(items=[])
    pos = params.position
    return types.InlineCompletionList(
        items=[
            types.InlineCompletionItem(
                insert_text=text,
                range=types.Range(start=pos, end=pos),
                command=_accept_command(suggestion),
            )
            for text in suggestion.texts
        ]
    )


async def completion(ls: CodeT5Server, params: types.CompletionParams) -> types.CompletionList:
    suggestion = await suggest(ls, params.text_document.uri, params.position)
    if suggestion is None:
        return types.CompletionList(is_incomplete=True, items=[])
    item = completion_item(ls.documents.get(params.text_document.uri), params.position, suggestion)
    return types.CompletionList(is_incomplete=True, items=[item])


async def suggest(ls: CodeT5Server, uri: str, position: types.Position) -> Suggestion | None:
    """The suggestion at `position`, or None (a file we skip, an engine failure)."""
    ls.summaries.note_activity()
    doc = ls.documents.get(uri)
    if doc.too_large or doc.binary:
        why = (
            f"larger than maxFileBytes ({ls.documents.max_bytes} bytes)"
            if doc.too_large
            else "binary (it contains NUL or control characters)"
        )
        ls.report_once(
            ls.reported_skipped,
            uri,
            f"no completions for {uri}: the file is {why}",
            types.MessageType.Warning,
        )
        return None
    cancel = threading.Event()
    try:
        suggestion = await ls.pipeline.complete(
            doc, position, cancel, open_documents=ls.other_documents(doc)
        )
    except asyncio.CancelledError:
        cancel.set()  # stops generation already running on the engine thread
        raise
    except ServerError:
        raise  # the request's own fault (a bad position): an LSP error (server/errors.py)
    except Exception as exc:  # engine failure: no suggestion, the server keeps serving
        log.exception("completion failed")
        ls.window_log_message(
            types.LogMessageParams(
                type=types.MessageType.Error, message=f"codet5-lsp: completion failed: {exc}"
            )
        )
        return None
    ls.summaries.note_activity()  # the quiet period counts from the answer, not the ask
    if suggestion is not None:
        ls.report_latency(suggestion.latency_ms)
        if ls.stats is not None:
            ls.stats.record_shown(suggestion.id, suggestion.latency_ms, doc.language_id)
    return suggestion


def completion_item(
    doc: Document, position: types.Position, suggestion: Suggestion
) -> types.CompletionItem:
    """One `textDocument/completion` item carrying the suggestion.

    Clients filter items by the word before the cursor, so the edit starts at that word and
    repeats it: label, filterText and newText all begin with what the user already typed.
    """
    offset = doc.offset_at(position)
    line_prefix = doc.text[doc.line_start(position.line) : offset]
    word = re.search(r"\w*$", line_prefix).group(0)  # type: ignore[union-attr]  # \w* matches
    start = doc.position_at(offset - len(word))
    text = word + suggestion.text
    return types.CompletionItem(
        label=text.split("\n", 1)[0].strip() or text.strip(),
        kind=types.CompletionItemKind.Text,
        detail="codet5-lsp",
        text_edit=types.TextEdit(range=types.Range(start=start, end=position), new_text=text),
        filter_text=text,
        command=_accept_command(suggestion),
        sort_text="0",
    )


def _accept_command(suggestion: Suggestion) -> types.Command:
    """Run by the client when the user accepts (handlers/commands.py: accepted)."""
    return types.Command(
        title=ACCEPT_TITLE,
        command=ACCEPT_COMMAND,
        arguments=AcceptedArguments(suggestion.id).as_arguments(),
    )
