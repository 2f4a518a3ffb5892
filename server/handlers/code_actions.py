"""textDocument/codeAction and codeAction/resolve: "Insert generated docstring".

Both async on the event loop. The action is offered cheaply (a tree lookup); the summary,
a model call on an engine thread, is computed only on resolve.
"""

from __future__ import annotations

from lsprotocol import types

from codet5_lsp.server.docstrings import docstring_insertion
from codet5_lsp.server.handlers.functions import function_at, summarize
from codet5_lsp.server.language_server import CodeT5Server
from codet5_lsp.server.protocol import DocstringActionData
from codet5_lsp.server.syntax import detect_indent_unit

INSERT_DOCSTRING_TITLE = "Insert generated docstring"


async def code_action(ls: CodeT5Server, params: types.CodeActionParams) -> list[types.CodeAction]:
    """Offer the action cheaply; the summary is computed on codeAction/resolve."""
    doc = ls.documents.get(params.text_document.uri)
    definition = await function_at(doc, params.range.start)
    if definition is None or definition.docstring:
        return []
    data = DocstringActionData(
        uri=doc.uri,
        line=params.range.start.line,
        character=params.range.start.character,
        version=doc.version,
    )
    return [
        types.CodeAction(
            title=INSERT_DOCSTRING_TITLE,
            kind=types.CodeActionKind.RefactorRewrite,
            data=data.to_json(),
        )
    ]


async def resolve_code_action(ls: CodeT5Server, action: types.CodeAction) -> types.CodeAction:
    data = DocstringActionData.from_json(action.data)
    doc = ls.documents.get(data.uri)
    position = types.Position(line=data.line, character=data.character)
    definition = await function_at(doc, position)
    if definition is None or definition.docstring or doc.version != data.version:
        return action  # the document changed: nothing to insert
    summary = await summarize(ls, definition)
    if summary is None:
        return action
    unit = detect_indent_unit(doc, definition.start_line)
    insertion = docstring_insertion(
        doc.language_id,
        summary.text,
        def_line=definition.start_line,
        def_indent=definition.def_indent,
        body_line=definition.body_line,
        body_indent=definition.body_indent,
        name=definition.name,
        indent_unit=unit,
    )
    at = types.Position(line=insertion.line, character=0)
    text = insertion.text
    if insertion.line >= doc.line_count:  # after the last line: start a new one
        at = doc.position_at(len(doc.text))
        text = "\n" + text.rstrip("\n")
    action.edit = types.WorkspaceEdit(
        changes={doc.uri: [types.TextEdit(range=types.Range(start=at, end=at), new_text=text)]}
    )
    return action
