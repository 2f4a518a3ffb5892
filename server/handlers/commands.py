"""workspace/executeCommand: the server's own commands (names and payloads: protocol.py).

`accepted`, `debug_document_text` and `debug_stats` run on the event loop and return at once.
`show_context` is async: it awaits an out-of-date tree in slices, then builds the prompt on
the loop (the same context step a completion runs before it hands over to the engine thread;
no model call).
"""

from __future__ import annotations

from typing import Any

from lsprotocol import types

from codet5_lsp.server.errors import ModelNotReadyError
from codet5_lsp.server.language_server import CodeT5Server
from codet5_lsp.server.pipeline import prompt_for
from codet5_lsp.server.protocol import (
    AcceptedArguments,
    ContextPart,
    DebugStatsResult,
    DocumentTextArguments,
    DocumentTextResult,
    ShowContextArguments,
    ShowContextResult,
)
from codet5_lsp.server.show_context import shown_parts


def accepted(ls: CodeT5Server, *args: Any) -> None:
    """The user accepted suggestion `id`: statistics, and the line after it is needed next,
    so its speculation goes first."""
    suggestion_id = AcceptedArguments.from_arguments(args).suggestion_id
    if suggestion_id is None:
        return
    if ls.stats is not None:
        ls.stats.record_accepted(suggestion_id)
    ls.pipeline.speculator.promote(suggestion_id)


async def show_context(ls: CodeT5Server, *args: Any) -> dict[str, Any]:
    """Everything the model sees for a position, as parts by kind (show_context.py)."""
    arguments = ShowContextArguments.from_arguments(args)
    doc = ls.documents.get(arguments.uri)
    engine = ls.models.completion_engine()
    if engine is None:
        state, error = ls.models.state()
        raise ModelNotReadyError(
            f"codet5.showContext: the model is not ready ({state}"
            + (f": {error}" if error else "")
            + ")"
        )
    await doc.parse_cooperatively()
    saved = doc.context_cache.copy()  # leave no trace: the next completion sees the same context
    position = types.Position(line=arguments.position.line, character=arguments.position.character)
    try:
        ctx, mode, request = prompt_for(doc, position, engine, ls.settings, ls.other_documents(doc))
    finally:
        doc.context_cache = saved
    parts = shown_parts(
        ctx, request.encoder_tokens, request.decoder_prefix, engine.tokenizer, request.heal_tokens
    )
    return ShowContextResult(parts=[ContextPart(**part) for part in parts], mode=mode).to_json()


def debug_document_text(ls: CodeT5Server, *args: Any) -> dict[str, Any]:
    """The server's copy of a document (tests check it against the editor's)."""
    doc = ls.documents.get(DocumentTextArguments.from_arguments(args).uri)
    return DocumentTextResult(uri=doc.uri, version=doc.version, text=doc.text).to_json()


def debug_stats(ls: CodeT5Server, *args: Any) -> dict[str, Any]:
    counters = ls.pipeline.counters()
    return DebugStatsResult(
        completion_requests=int(counters.pop("completionRequests")),
        cache_hits=int(counters.pop("cacheHits")),
        model_calls=int(counters.pop("modelCalls")),
        documents=len(ls.documents),
        pending_futures=ls.pending_futures(),
        speculation=counters,
    ).to_json()
