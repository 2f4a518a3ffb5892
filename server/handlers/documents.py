"""Document sync: didOpen, didChange, didClose. They run on the event loop and only update
our DocumentStore (text + tree; an edit re-parses lazily or in slices, never here in full).

A change the store rejects (a range outside the document, a URI that is not open) means our
copy is out of step with the editor's: that is said once per URI (a notification has no
answer to carry an error), and a fresh didOpen puts it right.
"""

from __future__ import annotations

from lsprotocol import types

from codet5_lsp.server.documents import UnknownDocumentError
from codet5_lsp.server.language_server import CodeT5Server
from codet5_lsp.server.positions import InvalidPositionError


def did_open(ls: CodeT5Server, params: types.DidOpenTextDocumentParams) -> None:
    doc = params.text_document
    ls.documents.open(doc.uri, doc.text, doc.language_id, doc.version)
    ls.reported_desync.discard(doc.uri)  # a fresh copy: in step again
    ls.reported_skipped.discard(doc.uri)


def did_change(ls: CodeT5Server, params: types.DidChangeTextDocumentParams) -> None:
    uri = params.text_document.uri
    if uri not in ls.documents:
        ls.report_once(
            ls.reported_desync,
            uri,
            f"didChange for {uri}, which is not open; ignored (open the file to get completions)",
        )
        return
    ls.pipeline.debouncer.note_keystroke(uri)
    ls.summaries.note_activity()
    try:
        ls.documents.change(uri, params.text_document.version, params.content_changes)
    except (UnknownDocumentError, InvalidPositionError) as exc:
        # Our copy can no longer be trusted: say so (once); the client resends on reopen.
        ls.report_once(
            ls.reported_desync, uri, f"didChange rejected: {exc}; reopen the file to resynchronize"
        )


def did_close(ls: CodeT5Server, params: types.DidCloseTextDocumentParams) -> None:
    uri = params.text_document.uri
    ls.documents.close(uri)
    ls.pipeline.forget(uri)
    ls.reported_desync.discard(uri)
    ls.reported_skipped.discard(uri)
