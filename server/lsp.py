"""LSP handlers: parse params, call the pipeline, format the result. Nothing else lives here.

The text of open documents lives only in our `DocumentStore` (text + tree-sitter tree): the
protocol class below replaces pygls's built-in document sync, which would keep and rebuild a
second copy of every document on each edit.
"""

from __future__ import annotations

import asyncio
import re
import json
import logging
import sys
import threading
from typing import Any

from cattrs import transform_error
from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.io_ import StdinAsyncReader, StdoutWriter, run_async
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol, lsp_method

from codet5_lsp import __version__
from codet5_lsp.server.context import definition_at, detect_indent_unit
from codet5_lsp.server.docstrings import docstring_insertion
from codet5_lsp.server.documents import DocumentStore, UnknownDocumentError
from codet5_lsp.server.model_manager import ModelManager
from codet5_lsp.server.pipeline import CompletionPipeline, Suggestion, prompt_for
from codet5_lsp.server.show_context import ShowContextError, shown_parts
from codet5_lsp.server.show_context import parse_arguments as parse_context_arguments
from codet5_lsp.server.positions import InvalidPositionError
from codet5_lsp.server.settings import Settings, SettingsError
from codet5_lsp.server.summaries import SummaryService, hover_markdown, \
    summary_status_fields

log = logging.getLogger(__name__)

ACCEPT_COMMAND = "codet5.accepted"
INSERT_DOCSTRING_TITLE = "Insert generated docstring"
STATUS_NOTIFICATION = "codet5/status"
# Debug commands (workspace/executeCommand), for tests and benchmarks: the server's copy of a
# document ({"uri", "version", "text"}), and counters ({"completionRequests", "cacheHits",
# "modelCalls", "documents", "pendingFutures": requests/notifications pygls still tracks}).
DEBUG_TEXT_COMMAND = "codet5.debugDocumentText"
DEBUG_STATS_COMMAND = "codet5.debugStats"
# [{"uri", "position"}] -> {"parts": [{"kind", "tokens", "text"}, ...], "mode"}: what the model
# sees for a completion there (server/show_context.py).
SHOW_CONTEXT_COMMAND = "codet5.showContext"
REQUEST_FAILED = -32803  # LSP RequestFailed

# JSON-RPC error codes pygls does not send itself for messages it cannot read.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
INVALID_PARAMS = -32602
# A Content-Length above this is a broken header, not a message to wait for.
MAX_MESSAGE_BYTES = 256 * 1024 * 1024


class _MalformedMessage:
    """Valid JSON that is not a valid message (missing fields, wrong param types). pygls would
    log and drop it, leaving a request unanswered; we answer it (see CodeT5Protocol)."""

    def __init__(self, msg_id: Any, method: Any, problem: str, code: int = INVALID_PARAMS,
                 is_request: bool = True):
        self.id, self.method, self.problem, self.code = msg_id, method, problem, code
        self.is_request = is_request


def _valid_id(msg_id: Any) -> bool:
    return msg_id is None or (isinstance(msg_id, (int, str)) and not isinstance(msg_id, bool))


def _describe_structure_error(exc: BaseException) -> str:
    cause = exc.__cause__ or exc
    try:
        problems = transform_error(cause, format_exception=lambda e, _t: (
            "required field missing" if isinstance(e, KeyError) else str(e) or type(e).__name__))
    except Exception:
        problems = [str(cause)]
    return "; ".join(problems)[:500]


class _ResyncingReader:
    """pygls's stdin reader, made to find the next message after a broken frame.

    pygls's loop matches headers only at a line start; after a bad or short frame the next
    header follows body bytes on the same line and every later message would be lost. Here
    the header is cut out of such a line, and an absurd Content-Length is dropped (it would
    otherwise wait for gigabytes, or fail to allocate them and end the server).
    """

    HEADER = b"Content-Length:"

    def __init__(self, inner: StdinAsyncReader):
        self._inner = inner

    async def readline(self) -> bytes:
        line = await self._inner.readline()
        at = line.find(self.HEADER)
        if at > 0:
            log.warning("discarded %d bytes before a message header", at)
            line = line[at:]
        if at >= 0:
            digits = line[len(self.HEADER):].strip()
            if not digits.isdigit() or int(digits) > MAX_MESSAGE_BYTES:
                log.error("ignored a bad header: %r", line[:80])
                return b"X-Ignored-Header: bad Content-Length\r\n"
        return line

    def readexactly(self, n: int):
        return self._inner.readexactly(n)


class CodeT5Protocol(LanguageServerProtocol):
    """pygls protocol whose document sync feeds only our DocumentStore."""

    def _user(self, method: str, params: Any):
        handler = self.fm.features.get(method)
        if handler is not None:
            yield handler, (params,), None

    def _execute_handler(self, msg_id, handler, callback, args=None, kwargs=None):
        """pygls 2.1 files the future of a generator handler under a fresh id even for a
        notification and never removes it: one leaked future per didChange. Remove it when
        the notification is done."""
        if callback == self._check_handler_result:
            def done(future, msg_id=msg_id):
                self._request_futures.pop(msg_id, None)
                self._check_handler_result(future)
            callback = done
        super()._execute_handler(msg_id, handler, callback, args, kwargs)

    def structure_message(self, data: dict[str, Any]):
        if ("method" in data and "params" not in data and "jsonrpc" in data
                and self.get_message_type(data["method"]) is None):
            data = {**data, "params": None}  # optional in JSON-RPC; unknown methods need it
        if "jsonrpc" in data and "method" in data and not _valid_id(data.get("id")):
            return _MalformedMessage(None, data["method"], "the id must be a number or a "
                                     f"string, got {json.dumps(data['id'])[:40]}",
                                     INVALID_REQUEST)
        try:
            return super().structure_message(data)
        except JsonRpcException as exc:
            return _MalformedMessage(data.get("id"), data.get("method"),
                                     _describe_structure_error(exc),
                                     is_request="id" in data)

    def handle_message(self, message: Any):
        if isinstance(message, _MalformedMessage):
            what = "params for" if message.code == INVALID_PARAMS else "request"
            self._reject(message.id, message.method, message.code,
                         f"invalid {what} {message.method}: {message.problem}",
                         message.is_request)
        elif not hasattr(message, "jsonrpc"):  # a JSON value that is no message at all
            msg_id = message.get("id") if isinstance(message, dict) else None
            method = message.get("method") if isinstance(message, dict) else None
            self._reject(msg_id, method, INVALID_REQUEST,
                         f"not a JSON-RPC 2.0 message: {str(message)[:120]}",
                         not isinstance(message, dict) or "id" in message
                         or "method" not in message)
        else:
            super().handle_message(message)

    def _reject(self, msg_id: Any, method: Any, code: int, message: str,
                is_request: bool) -> None:
        """Answer a request we cannot run (id null when its id is unusable); for a
        notification, tell the user (a dropped edit leaves our copy of a document out of
        step). A malformed response to one of our requests is only logged."""
        log.error("rejected message: %s", message)
        if method is None and msg_id is not None:
            return
        if is_request:
            self._send_response(msg_id if _valid_id(msg_id) else None,
                                error=types.ResponseError(code=code, message=message))
        elif isinstance(method, str) and not method.startswith("$/"):
            self._server.window_show_message(types.ShowMessageParams(
                type=types.MessageType.Error, message=f"codet5-lsp: ignored {message}"))

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
        # URIs already told about (a document out of step, one we do not complete): once each.
        self._reported_desync: set[str] = set()
        self._reported_skipped: set[str] = set()

    # -- transport -------------------------------------------------------------------------

    def start_io(self, stdin=None, stdout=None) -> None:
        """pygls's stdio loop, with a reader that resynchronizes after a broken frame."""
        self._stop_event = threading.Event()
        reader = _ResyncingReader(StdinAsyncReader(stdin or sys.stdin.buffer, self.thread_pool))
        self.protocol.set_writer(StdoutWriter(stdout or sys.stdout.buffer))
        try:
            asyncio.run(run_async(stop_event=self._stop_event, reader=reader,
                                  protocol=self.protocol, logger=log,
                                  error_handler=self.report_server_error))
        except BrokenPipeError:
            log.error("connection to the client is lost; shutting down")
        except (KeyboardInterrupt, SystemExit):
            pass
        finally:
            self.shutdown()

    def report_server_error(self, error: Exception, source: Any) -> None:
        """A body that is not JSON gets the JSON-RPC parse error (id null) and a message."""
        if isinstance(error, ValueError) and source is JsonRpcException:
            text = f"could not parse a message from the client: {error}"
            log.error("%s", text)
            try:
                self.protocol._send_response(None, error=types.ResponseError(
                    code=PARSE_ERROR, message=text))
                self.window_show_message(types.ShowMessageParams(
                    type=types.MessageType.Error, message=f"codet5-lsp: {text}"))
            except Exception:
                log.debug("could not report a parse error", exc_info=True)
            return
        super().report_server_error(error, source)

    def report_once(self, seen: set[str], uri: str, message: str,
                    kind: types.MessageType = types.MessageType.Error) -> None:
        """Show `message` unless this URI was already reported in `seen`."""
        if uri in seen:
            log.debug("%s", message)
            return
        seen.add(uri)
        log.warning("%s", message)
        self.window_show_message(types.ShowMessageParams(type=kind,
                                                         message=f"codet5-lsp: {message}"))

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
            engine = self.models.completion_engine() if state != "loading" else None
            if engine is not None:  # the status item shows the summary model's new state
                self._notify_state(self.settings.model, "ready", engine.description)
            return
        params: dict[str, Any] = {"state": state, "message": message, "model": model}
        params.update(summary_status_fields(self.models.summary_status()))
        engine = self.models.completion_engine() if state == "ready" else None
        if engine is not None:
            params.update(device=engine.device, computeType=engine.compute_type)
        if self._last_latency_ms is not None:
            params["latencyMs"] = round(self._last_latency_ms, 1)
        try:
            self.protocol.notify(STATUS_NOTIFICATION, params)
            if state == "error":
                self.window_show_message(types.ShowMessageParams(
                    type=types.MessageType.Error, message=f"codet5-lsp: {message}"))
        except Exception:  # the client may be gone
            log.debug("could not send status", exc_info=True)

    def report_latency(self, latency_ms: float) -> None:
        """`codet5/status` after every completion, carrying its latency: the state changes
        rarely (load, error), so without this the status bar would never show a latency."""
        self._last_latency_ms = latency_ms
        engine = self.models.completion_engine()
        if engine is None:  # reloading since this completion started: that status says so
            return
        self._notify_state(self.settings.model, "ready", engine.description)

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
        ls._reported_desync.discard(doc.uri)  # a fresh copy: in step again
        ls._reported_skipped.discard(doc.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: CodeT5Server, params: types.DidChangeTextDocumentParams) -> None:
        uri = params.text_document.uri
        if uri not in ls.documents:
            ls.report_once(ls._reported_desync, uri, f"didChange for {uri}, which is not open; "
                           "ignored (open the file to get completions)")
            return
        ls.pipeline.debouncer.note_keystroke(uri)
        ls.summaries.note_activity()
        try:
            ls.documents.change(uri, params.text_document.version, params.content_changes)
        except (UnknownDocumentError, InvalidPositionError) as exc:
            # Our copy can no longer be trusted: say so (once); the client resends on reopen.
            ls.report_once(ls._reported_desync, uri,
                           f"didChange rejected: {exc}; reopen the file to resynchronize")

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: CodeT5Server, params: types.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        ls.documents.close(uri)
        ls.pipeline.forget(uri)
        ls._reported_desync.discard(uri)
        ls._reported_skipped.discard(uri)

    async def suggest(ls: CodeT5Server, uri: str, position: types.Position) -> Suggestion | None:
        ls.summaries.note_activity()
        try:
            doc = ls.documents.get(uri)
        except UnknownDocumentError as exc:
            raise JsonRpcInvalidParams(str(exc)) from None
        if doc.too_large or doc.binary:
            why = (f"larger than maxFileBytes ({ls.documents.max_bytes} bytes)" if doc.too_large
                   else "binary (it contains NUL or control characters)")
            ls.report_once(ls._reported_skipped, uri, f"no completions for {uri}: the file is "
                           f"{why}", types.MessageType.Warning)
            return None
        cancel = threading.Event()
        try:
            suggestion = await ls.pipeline.complete(doc, position, cancel,
                                                    open_documents=other_documents(ls, doc))
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
        ls.summaries.note_activity()  # the quiet period counts from the answer, not the ask
        if suggestion is not None:
            ls.report_latency(suggestion.latency_ms)
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
            insert_text=text,
            range=types.Range(start=pos, end=pos),
            command=types.Command(title="codet5: accepted", command=ACCEPT_COMMAND,
                                  arguments=[suggestion.id]),
        ) for text in suggestion.texts])

    @server.feature(types.TEXT_DOCUMENT_COMPLETION,
                    types.CompletionOptions(trigger_characters=[".", "(", " "]))
    async def completion(ls: CodeT5Server, params: types.CompletionParams):
        suggestion = await suggest(ls, params.text_document.uri, params.position)
        if suggestion is None:
            return types.CompletionList(is_incomplete=True, items=[])
        item = completion_item(ls.documents.get(params.text_document.uri), params.position,
                               suggestion)
        return types.CompletionList(is_incomplete=True, items=[item])

    def document_or_error(ls: CodeT5Server, uri: str):
        try:
            return ls.documents.get(uri)
        except UnknownDocumentError as exc:
            raise JsonRpcInvalidParams(str(exc)) from None

    async def function_at(doc, position):
        """The function or method at `position`, or None. Awaits an out-of-date tree in
        slices (Document.parse_cooperatively), so a long re-parse does not hold the loop."""
        await doc.parse_cooperatively()
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
        ls.summaries.note_activity()
        doc = document_or_error(ls, params.text_document.uri)
        definition = await function_at(doc, params.position)
        if definition is None:
            return None  # leave the hover to other language servers
        summary = await summarize(ls, definition)
        ls.summaries.note_activity()  # the quiet period counts from the answer, not the ask
        if summary is None:  # a short note while the summary model loads, not a silent null
            note = ls.summaries.unavailable_note()
            return types.Hover(contents=types.MarkupContent(
                kind=types.MarkupKind.Markdown, value=note)) if note else None
        if not summary.from_cache:
            # After a model call, summarize the neighbours in the background once the editor
            # has been quiet for a moment, so hovers and keystrokes right after stay fast.
            ls.summaries.schedule_prefetch(lambda: neighbour_functions(doc, definition))
        start, end = doc.position_at(definition.name_start), doc.position_at(definition.name_end)
        return types.Hover(
            contents=types.MarkupContent(kind=types.MarkupKind.Markdown,
                                         value=hover_markdown(summary, definition.name)),
            range=types.Range(start=start, end=end))

    @server.feature(types.TEXT_DOCUMENT_CODE_ACTION, types.CodeActionOptions(
        code_action_kinds=[types.CodeActionKind.RefactorRewrite], resolve_provider=True))
    async def code_action(ls: CodeT5Server, params: types.CodeActionParams):
        """Offer the action cheaply; the summary is computed on codeAction/resolve."""
        doc = document_or_error(ls, params.text_document.uri)
        definition = await function_at(doc, params.range.start)
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
        definition = await function_at(doc, position)
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

    @server.command(DEBUG_TEXT_COMMAND)
    def debug_document_text(ls: CodeT5Server, *args: Any) -> dict[str, Any]:
        uri = args[0][0] if args and isinstance(args[0], list) and args[0] else \
            (args[0] if args else None)
        doc = document_or_error(ls, str(uri))
        return {"uri": doc.uri, "version": doc.version, "text": doc.text}

    @server.command(SHOW_CONTEXT_COMMAND)
    async def show_context(ls: CodeT5Server, *args: Any) -> dict[str, Any]:
        """Everything the model sees for a position, as parts by kind (show_context.py)."""
        try:
            uri, line, character = parse_context_arguments(args)
        except ShowContextError as exc:
            raise JsonRpcInvalidParams(str(exc)) from None
        doc = document_or_error(ls, uri)
        engine = ls.models.completion_engine()
        if engine is None:
            state, error = ls.models.state()
            raise JsonRpcException(f"codet5.showContext: the model is not ready ({state}"
                                   + (f": {error}" if error else "") + ")", REQUEST_FAILED)
        await doc.parse_cooperatively()
        hints = dict(doc.hints)  # leave no trace: the next completion sees the same context
        try:
            ctx, mode, request = prompt_for(doc, types.Position(line=line, character=character),
                                            engine, ls.settings, other_documents(ls, doc))
        except InvalidPositionError as exc:
            raise JsonRpcInvalidParams(str(exc)) from None
        finally:
            doc.hints.clear()
            doc.hints.update(hints)
        return {"parts": shown_parts(ctx, request.encoder_tokens, request.decoder_prefix,
                                     engine.tokenizer, request.heal_tokens), "mode": mode}

    @server.command(DEBUG_STATS_COMMAND)
    def debug_stats(ls: CodeT5Server, *args: Any) -> dict[str, Any]:
        return {**ls.pipeline.counters(), "documents": len(ls.documents),
                "pendingFutures": len(ls.protocol._request_futures)}

    @server.command(ACCEPT_COMMAND)
    def accepted(ls: CodeT5Server, *args: Any) -> None:
        ids = [a for a in (args[0] if args and isinstance(args[0], list) else args)]
        if ls.stats is not None and ids:
            ls.stats.record_accepted(str(ids[0]))
        if ids:  # the line after the accepted one is needed next: its speculation goes first
            ls.pipeline.speculator.promote(str(ids[0]))

    return server


def completion_item(doc, position: types.Position, suggestion: Suggestion) -> types.CompletionItem:
    """One `textDocument/completion` item carrying the suggestion.

    Clients filter items by the word before the cursor, so the edit starts at that word and
    repeats it: label, filterText and newText all begin with what the user already typed.
    """
    offset = doc.offset_at(position)
    line_prefix = doc.text[doc.line_start(position.line):offset]
    word = re.search(r"\w*$", line_prefix).group(0)
    start = doc.position_at(offset - len(word))
    text = word + suggestion.text
    return types.CompletionItem(
        label=text.split("\n", 1)[0].strip() or text.strip(),
        kind=types.CompletionItemKind.Text,
        detail="codet5-lsp",
        text_edit=types.TextEdit(range=types.Range(start=start, end=position), new_text=text),
        filter_text=text,
        command=types.Command(title="codet5: accepted", command=ACCEPT_COMMAND,
                              arguments=[suggestion.id]),
        sort_text="0",
    )


def neighbour_functions(doc, definition, reach: int = 60) -> list:
    """The functions just above and below `definition` (for background summaries); none while
    the tree is out of date: background work must not start a (possibly long) parse on the
    event loop, and after an edit `definition`'s lines may be stale anyway."""
    if not doc.tree_is_current:
        return []
    found = []
    for lines in (range(definition.start_line - 1, max(-1, definition.start_line - 1 - reach), -1),
                  range(definition.end_line + 1, min(doc.line_count, definition.end_line + 1 + reach))):
        for line in lines:
            if not doc.line_text(line).strip():
                continue
            other = definition_at(doc, types.Position(line=line, character=len(
                doc.line_text(line)) - len(doc.line_text(line).lstrip())))
            if other is not None and other.kind in ("function", "method") and \
                    other.body_hash != definition.body_hash:
                found.append(other)
                break
    return found


def other_documents(ls: CodeT5Server, doc) -> list:
    """The open documents other than `doc` (cross-file context: server/retrieval.py)."""
    return [ls.documents.get(uri) for uri in ls.documents if uri != doc.uri]


def _has_loop() -> bool:
    try:
        asyncio.get_running_loop()
        return True
    except RuntimeError:
        return False
