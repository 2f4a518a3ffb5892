"""textDocument/hover: a one-sentence summary of the function under the cursor.

Async on the event loop; the summary model runs on an engine thread (SummaryService), and
a model call is followed by background summaries of the neighbouring functions.
"""

from __future__ import annotations

from lsprotocol import types

from codet5_lsp.server.handlers.functions import function_at, summarize
from codet5_lsp.server.language_server import CodeT5Server
from codet5_lsp.server.summaries import hover_markdown
from codet5_lsp.server.syntax import neighbour_functions


async def hover(ls: CodeT5Server, params: types.HoverParams) -> types.Hover | None:
    ls.summaries.note_activity()
    doc = ls.documents.get(params.text_document.uri)
    definition = await function_at(doc, params.position)
    if definition is None:
        return None  # leave the hover to other language servers
    summary = await summarize(ls, definition)
    ls.summaries.note_activity()  # the quiet period counts from the answer, not the ask
    if summary is None:  # a short note while the summary model loads, not a silent null
        note = ls.summaries.unavailable_note()
        return (
            types.Hover(contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=note))
            if note
            else None
        )
    if not summary.from_cache:
        # After a model call, summarize the neighbours in the background once the editor
        # has been quiet for a moment, so hovers and keystrokes right after stay fast.
        ls.summaries.schedule_prefetch(lambda: neighbour_functions(doc, definition))
    start, end = doc.position_at(definition.name_start), doc.position_at(definition.name_end)
    return types.Hover(
        contents=types.MarkupContent(
            kind=types.MarkupKind.Markdown, value=hover_markdown(summary, definition.name)
        ),
        range=types.Range(start=start, end=end),
    )
