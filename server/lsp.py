"""LSP handlers: parse params, call the pipeline, format the result. Nothing else lives here.

The text of open documents lives only in our `DocumentStore` (text + tree-sitter tree): the
protocol class below replaces pygls's built-in document sync, which would keep and rebuild a
second copy of every document on each edit.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol, lsp_method

from codet5_lsp import __version__
from codet5_lsp.server.context import definition_at, detect_indent_unit
from codet5_lsp.server.docstrings import docstring_insertion
from codet5_lsp.server.documents import DocumentStore, UnknownDocumentError
from codet5_lsp.server.model_manager import ModelManager
from codet5_lsp.server.pipeline import CompletionPipeline, Suggestion
from codet5_lsp.server.positions import InvalidPositionError
from codet5_lsp.server.settings import Settings, SettingsError
from codet5_lsp.server.summaries import SummaryService, hover_markdown

log = logging.getLogger(__name__)

ACCEPT_COMMAND = "codet5.accepted"
INSERT_DOCSTRING_TITLE = "Insert generated docstring"
STATUS_NOTIFICATION = "codet5/status"


class CodeT5Protocol(LanguageServerProtocol):
    """pygls protocol whose document sync feeds only our DocumentStore."""

    def _user(self, method: str, params: Any):
        handler = self.fm.features.get(method)
        if handler is not None:
            yield handler, (params,), None

    @lsp_method(types.TEXT_DOCUMENT_DID_OPEN)
    def lsp_text_document__did_open(self, params: types.DidOpenTextDocumentParams):
        yield from self._user(types.TEXT_DOCUMENT_DID_OPEN, params)

    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params: types.DidChangeTextDocumentParams):
        yield from self._user(types.TEXT_DOCUMENT_DID_CHANGE, params)

    @lsp_method(types.TEXT_DOCUMENT_DID_CLOSE)
    def lsp_text_document__did_close(self, params: types.DidCloseTextDocumentParams):
        yield from self._user(types.TEXT_DOCUMENT_DID_CLOSE, params)


class CodeT5Server(LanguageServer):
    def __init__(self, settings: Settings):
        super().__init__("codet5-lsp", __version__, protocol_cls=CodeT5Protocol,
                         text_document_sync_kind=types.TextDocumentSyncKind.Incremental)
        self.settings = settings
        self.documents = DocumentStore(max_bytes=settings.max_file_bytes)
        self.models = ModelManager(settings, on_state=self._model_state_changed)
        self.pipeline = CompletionPipeline(self.models, settings)
        self.summaries = SummaryService(self.models, settings)
        self._last_latency_ms: float | None = None
        self.stats = None  # set by create_server

    # -- notifications to the client -------------------------------------------------------

    def _model_state_changed(self, model: str, state: str, message: str) -> None:
        """Called from loader threads: hop onto the event loop before writing."""
        loop = getattr(self, "_loop", None)
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(self._notify_state, model, state, message)

    def _notify_state(self, model: str, state: str, message: str) -> None:
        if model != self.settings.model:
            # The summary model: its state goes to the log; when it cannot load, hovers fall
            # back to the completion model (ModelManager.summary_engine).
            self.window_log_message(types.LogMessageParams(
                type=types.MessageType.Warning if state == "error" else types.MessageType.Info,
                message=f"codet5-lsp: summary model {model}: {state}: {message}"))
            return
        params: dict[str, Any] = {"state": state, "message": message, "model": model}
        if self._last_latency_ms is not None:
            params["latencyMs"] = round(self._last_latency_ms, 1)
        try:
            self.protocol.notify(STATUS_NOTIFICATION, params)
            if state == "error":
                self.window_show_message(types.ShowMessageParams(
                    type=types.MessageType.Error, message=f"codet5-lsp: {message}"))
        except Exception:  # the client may be gone
            log.debug("could not send status", exc_info=True)

    def apply_settings(self, overrides: dict[str, Any] | None) -> None:
        try:
            new = self.settings.merged(overrides)
        except SettingsError as exc:
            self.window_show_message(types.ShowMessageParams(
                type=types.MessageType.Error, message=f"codet5-lsp: {exc}"))
            return
        self.settings = new
        self.documents.max_bytes = new.max_file_bytes
        self.pipeline.update_settings(new)
        self.summaries.update_settings(new)
        self.models.update(new)


def create_server(settings: Settings) -> CodeT5Server:
    server = CodeT5Server(settings)

    @server.feature(types.INITIALIZE)
    def initialize(ls: CodeT5Server, params: types.InitializeParams) -> None:
        ls._loop = asyncio.get_running_loop() if _has_loop() else None
        opts = params.initialization_options
        if isinstance(opts, dict):
            ls.apply_settings(opts.get("codet5", opts))
        ls.documents.encoding = str(ls.workspace.position_encoding or "utf-16")

    @server.feature(types.INITIALIZED)
    def initialized(ls: CodeT5Server, params: types.InitializedParams) -> None:
        ls._loop = asyncio.get_running_loop()
        ls.models.start_loading()

    @server.feature(types.SHUTDOWN)
    def shutdown(ls: CodeT5Server, params: Any) -> None:
        ls.models.close()

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    def did_change_configuration(ls: CodeT5Server,
                                 params: types.DidChangeConfigurationParams) -> None:
        settings = params.settings
        if isinstance(settings, dict):
            ls.apply_settings(settings.get("codet5", settings))

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: CodeT5Server, params: types.DidOpenTextDocumentParams) -> None:
        doc = params.text_document
        ls.documents.open(doc.uri, doc.text, doc.language_id, doc.version)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: CodeT5Server, params: types.DidChangeTextDocumentParams) -> None:
        ls.pipeline.debouncer.note_keystroke(params.text_document.uri)
        try:
            ls.documents.change(params.text_document.uri, params.text_document.version,
                                params.content_changes)
        except (UnknownDocumentError, InvalidPositionError) as exc:
            # Our copy can no longer be trusted: say so; the client resends on reopen.
            log.error("didChange rejected: %s", exc)
            ls.window_show_message(types.ShowMessageParams(
                type=types.MessageType.Error,
                message=f"codet5-lsp: {exc}; reopen the file to resynchronize"))

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: CodeT5Server, params: types.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        ls.documents.close(uri)
        ls.pipeline.forget(uri)

    async def suggest(ls: CodeT5Server, uri: str, position: types.Position) -> Suggestion | None:
        try:
            doc = ls.documents.get(uri)
        except UnknownDocumentError as exc:
            raise JsonRpcInvalidParams(str(exc)) from None
        cancel = threading.Event()
        try:
            suggestion = await ls.pipeline.complete(doc, position, cancel)
        except InvalidPositionError as exc:
            raise JsonRpcInvalidParams(str(exc)) from None
        except asyncio.CancelledError:
            cancel.set()  # stops generation already running on the engine thread
            raise
        except Exception as exc:  # engine failure: no suggestion, the server keeps serving
            log.exception("completion failed")
            ls.window_log_message(types.LogMessageParams(
                type=types.MessageType.Error, message=f"codet5-lsp: completion failed: {exc}"))
            return None
        if suggestion is not None:
            ls._last_latency_ms = suggestion.latency_ms
            if ls.stats is not None:
                ls.stats.record_shown(suggestion.id, suggestion.latency_ms, doc.language_id)
        return suggestion

    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(ls: CodeT5Server, params: types.InlineCompletionParams):
        suggestion = await suggest(ls, params.text_document.uri, params.position)
        if suggestion is None:
            return types.InlineCompletionList(items=[])
        pos = params.position
        return types.InlineCompletionList(items=[types.InlineCompletionItem(
            insert_text=suggestion.text,
            range=types.Range(start=pos, end=pos),
            command=types.Command(title="codet5: accepted", command=ACCEPT_COMMAND,
                                  arguments=[suggestion.id]),
        )])

    @server.feature(types.TEXT_DOCUMENT_COMPLETION,
                    types.CompletionOptions(trigger_characters=[".", "(", " "]))
    async def completion(ls: CodeT5Server, params: types.CompletionParams):
        suggestion = await suggest(ls, params.text_document.uri, params.position)
        if suggestion is None:
            return types.CompletionList(is_incomplete=True, items=[])
        pos = params.position
        first_line = suggestion.text.split("\n", 1)[0]
        return types.CompletionList(is_incomplete=True, items=[types.CompletionItem(
            label=first_line.strip() or suggestion.text.strip(),
            kind=types.CompletionItemKind.Text,
            detail="codet5-lsp",
            text_edit=types.TextEdit(range=types.Range(start=pos, end=pos),
                                     new_text=suggestion.text),
            filter_text=_filter_text(ls, params.text_document.uri, pos),
            command=types.Command(title="codet5: accepted", command=ACCEPT_COMMAND,
                                  arguments=[suggestion.id]),
            sort_text="0",
        )])

    def document_or_error(ls: CodeT5Server, uri: str):
        try:
            return ls.documents.get(uri)
        except UnknownDocumentError as exc:
            raise JsonRpcInvalidParams(str(exc)) from None

    def function_at(doc, position):
        try:
            definition = definition_at(doc, position)
        except InvalidPositionError as exc:
            raise JsonRpcInvalidParams(str(exc)) from None
        if definition is None or definition.kind not in ("function", "method"):
            return None
        return definition

    async def summarize(ls: CodeT5Server, definition):
        cancel = threading.Event()
        try:
            return await ls.summaries.summarize(definition, cancel)
        except asyncio.CancelledError:
            cancel.set()  # the client cancelled the hover: stop its generation
            raise
        except Exception as exc:
            log.exception("summary failed")
            ls.window_log_message(types.LogMessageParams(
                type=types.MessageType.Error, message=f"codet5-lsp: summary failed: {exc}"))
            return None

    @server.feature(types.TEXT_DOCUMENT_HOVER)
    async def hover(ls: CodeT5Server, params: types.HoverParams):
        doc = document_or_error(ls, params.text_document.uri)
        definition = function_at(doc, params.position)
        if definition is None:
            return None  # leave the hover to other language servers
        summary = await summarize(ls, definition)
        if summary is None:
            return None
        start, end = doc.position_at(definition.name_start), doc.position_at(definition.name_end)
        return types.Hover(
            contents=types.MarkupContent(kind=types.MarkupKind.Markdown,
                                         value=hover_markdown(summary, definition.name)),
            range=types.Range(start=start, end=end))

    @server.feature(types.TEXT_DOCUMENT_CODE_ACTION, types.CodeActionOptions(
        code_action_kinds=[types.CodeActionKind.RefactorRewrite], resolve_provider=True))
    def code_action(ls: CodeT5Server, params: types.CodeActionParams):
        """Offer the action cheaply; the summary is computed on codeAction/resolve."""
        doc = document_or_error(ls, params.text_document.uri)
        definition = function_at(doc, params.range.start)
        if definition is None or definition.docstring:
            return []
        return [types.CodeAction(
            title=INSERT_DOCSTRING_TITLE, kind=types.CodeActionKind.RefactorRewrite,
            data={"uri": doc.uri, "line": params.range.start.line,
                  "character": params.range.start.character, "version": doc.version})]

    @server.feature(types.CODE_ACTION_RESOLVE)
    async def resolve_code_action(ls: CodeT5Server, action: types.CodeAction):
        data = action.data if isinstance(action.data, dict) else {}
        try:
            doc = ls.documents.get(str(data.get("uri")))
        except UnknownDocumentError as exc:
            raise JsonRpcInvalidParams(str(exc)) from None
        position = types.Position(line=int(data.get("line", 0)),
                                  character=int(data.get("character", 0)))
        definition = function_at(doc, position)
        if definition is None or definition.docstring or doc.version != data.get("version"):
            return action  # the document changed: nothing to insert
        summary = await summarize(ls, definition)
        if summary is None:
            return action
        unit = detect_indent_unit(doc, definition.start_line)
        insertion = docstring_insertion(
            doc.language_id, summary.text, def_line=definition.start_line,
            def_indent=definition.def_indent, body_line=definition.body_line,
            body_indent=definition.body_indent, name=definition.name, indent_unit=unit)
        at = types.Position(line=insertion.line, character=0)
        text = insertion.text
        if insertion.line >= doc.line_count:  # after the last line: start a new one
            at = doc.position_at(len(doc.text))
            text = "\n" + text.rstrip("\n")
        action.edit = types.WorkspaceEdit(changes={doc.uri: [
            types.TextEdit(range=types.Range(start=at, end=at), new_text=text)]})
        return action

    @server.command(ACCEPT_COMMAND)
    def accepted(ls: CodeT5Server, *args: Any) -> None:
        ids = [a for a in (args[0] if args and isinstance(args[0], list) else args)]
        if ls.stats is not None and ids:
            ls.stats.record_accepted(str(ids[0]))

    return server


def _filter_text(ls: CodeT5Server, uri: str, pos: types.Position) -> str | None:
    try:
        doc = ls.documents.get(uri)
        line = doc.line_text(pos.line)
    except Exception:
        return None
    return line


def _has_loop() -> bool:
    try:
        asyncio.get_running_loop()
        return True
    except RuntimeError:
        return False
