"""A stand-in language server that always offers the same few inline completions.

For editor tests of what a client does with several items (cycling with the next/previous
keys) whatever the model happens to suggest: `python -m tests.fake_inline_server A B C`
answers every textDocument/inlineCompletion with the items A, B, C (empty range at the
cursor), in that order; a leading `serve` is ignored, so that an editor can start it as it
starts `codet5-lsp serve`. It is a test double of the server's protocol, not of the model.
"""

from __future__ import annotations

import sys

from lsprotocol import types
from pygls.lsp.server import LanguageServer


def main(texts: list[str]) -> None:
    server = LanguageServer("fake-inline", "0")

    @server.feature(types.INITIALIZED)
    def initialized(ls: LanguageServer, params: types.InitializedParams) -> None:
        ls.protocol.notify("codet5/status", {"state": "ready", "message": "fake", "model": "fake"})

    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    def inline(ls: LanguageServer, params: types.InlineCompletionParams):
        here = types.Range(start=params.position, end=params.position)
        return types.InlineCompletionList(
            items=[types.InlineCompletionItem(insert_text=text, range=here) for text in texts]
        )

    server.start_io()


if __name__ == "__main__":
    # Started as editors start codet5-lsp (`<path> serve <args>`): the verb is no item.
    main(sys.argv[2:] if sys.argv[1:2] == ["serve"] else sys.argv[1:])
