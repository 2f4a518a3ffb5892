"""The wire: pygls's stdio transport and JSON-RPC handling, hardened, and its document sync
replaced. Nothing here knows about completions; server/language_server.py builds on it.

Why: pygls, left alone, loses every later message after one broken frame, leaves requests
with malformed params unanswered, leaks a future per didChange, and keeps a second copy of
every open document. The classes below fix that by overriding pygls internals.

Relies on pygls==2.1.1 exactly (pinned in pyproject.toml); re-check every item on an upgrade.
Private pygls names used or overridden here:
- `LanguageServerProtocol._execute_handler`, `._check_handler_result`, `._request_futures`
  (the future leaked per notification, CodeT5Protocol._execute_handler)
- `LanguageServerProtocol._send_response`, `._server`, `.fm.features` (answers and messages
  for what pygls cannot read, the document-sync handlers that only forward to ours)
- `structure_message` / `handle_message` (public but undocumented hooks) and the
  `lsp_text_document__did_open/change/close` builtin handlers, replaced with `@lsp_method`
- `pygls.io_.StdinAsyncReader`, `StdoutWriter`, `run_async` and `LanguageServer._stop_event`,
  `.thread_pool`, `.report_server_error` (HardenedLanguageServer.start_io: our own reader)
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import threading
from typing import Any, cast

from cattrs import transform_error
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.io_ import StdinAsyncReader, StdoutWriter, run_async
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol, lsp_method

from codet5_lsp.server.errors import INVALID_PARAMS

log = logging.getLogger(__name__)

# JSON-RPC error codes pygls does not send itself for messages it cannot read.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
# A Content-Length above this is a broken header, not a message to wait for.
MAX_MESSAGE_BYTES = 256 * 1024 * 1024


class _MalformedMessage:
    """Valid JSON that is not a valid message (missing fields, wrong param types). pygls would
    log and drop it, leaving a request unanswered; we answer it (see CodeT5Protocol)."""

    def __init__(
        self,
        msg_id: Any,
        method: Any,
        problem: str,
        code: int = INVALID_PARAMS,
        is_request: bool = True,
    ):
        self.id, self.method, self.problem, self.code = msg_id, method, problem, code
        self.is_request = is_request


def _valid_id(msg_id: Any) -> bool:
    return msg_id is None or (isinstance(msg_id, (int, str)) and not isinstance(msg_id, bool))


def _describe_structure_error(exc: BaseException) -> str:
    cause = exc.__cause__ or exc
    try:
        problems = transform_error(
            cause,
            format_exception=lambda e, _t: (
                "required field missing" if isinstance(e, KeyError) else str(e) or type(e).__name__
            ),
        )
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
            digits = line[len(self.HEADER) :].strip()
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
        if (
            "method" in data
            and "params" not in data
            and "jsonrpc" in data
            and self.get_message_type(data["method"]) is None
        ):
            data = {**data, "params": None}  # optional in JSON-RPC; unknown methods need it
        if "jsonrpc" in data and "method" in data and not _valid_id(data.get("id")):
            return _MalformedMessage(
                None,
                data["method"],
                f"the id must be a number or a string, got {json.dumps(data['id'])[:40]}",
                INVALID_REQUEST,
            )
        try:
            return super().structure_message(data)
        except JsonRpcException as exc:
            return _MalformedMessage(
                data.get("id"),
                data.get("method"),
                _describe_structure_error(exc),
                is_request="id" in data,
            )

    def handle_message(self, message: Any):
        if isinstance(message, _MalformedMessage):
            what = "params for" if message.code == INVALID_PARAMS else "request"
            self._reject(
                message.id,
                message.method,
                message.code,
                f"invalid {what} {message.method}: {message.problem}",
                message.is_request,
            )
        elif not hasattr(message, "jsonrpc"):  # a JSON value that is no message at all
            msg_id = message.get("id") if isinstance(message, dict) else None
            method = message.get("method") if isinstance(message, dict) else None
            self._reject(
                msg_id,
                method,
                INVALID_REQUEST,
                f"not a JSON-RPC 2.0 message: {str(message)[:120]}",
                not isinstance(message, dict) or "id" in message or "method" not in message,
            )
        else:
            super().handle_message(message)

    def _reject(self, msg_id: Any, method: Any, code: int, message: str, is_request: bool) -> None:
        """Answer a request we cannot run (id null when its id is unusable); for a
        notification, tell the user (a dropped edit leaves our copy of a document out of
        step). A malformed response to one of our requests is only logged."""
        log.error("rejected message: %s", message)
        if method is None and msg_id is not None:
            return
        if is_request:
            # JSON-RPC answers a request whose id is unusable with id null; pygls's
            # annotation allows only str | int.
            self._send_response(
                msg_id if _valid_id(msg_id) else None,  # type: ignore[arg-type]
                error=types.ResponseError(code=code, message=message),
            )
        elif isinstance(method, str) and not method.startswith("$/"):
            self._server.window_show_message(
                types.ShowMessageParams(
                    type=types.MessageType.Error, message=f"codet5-lsp: ignored {message}"
                )
            )

    @lsp_method(types.TEXT_DOCUMENT_DID_OPEN)
    def lsp_text_document__did_open(self, params: types.DidOpenTextDocumentParams):
        yield from self._user(types.TEXT_DOCUMENT_DID_OPEN, params)

    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params: types.DidChangeTextDocumentParams):
        yield from self._user(types.TEXT_DOCUMENT_DID_CHANGE, params)

    @lsp_method(types.TEXT_DOCUMENT_DID_CLOSE)
    def lsp_text_document__did_close(self, params: types.DidCloseTextDocumentParams):
        yield from self._user(types.TEXT_DOCUMENT_DID_CLOSE, params)

    def pending_futures(self) -> int:
        """Requests and notifications pygls still tracks (codet5.debugStats: a leak grows)."""
        return len(self._request_futures)


class HardenedLanguageServer(LanguageServer):
    """pygls's LanguageServer over our protocol, with a stdio loop that survives broken
    frames and a parse error answered rather than only logged."""

    def pending_futures(self) -> int:
        """Requests and notifications pygls still tracks (codet5.debugStats: a leak grows)."""
        return cast(CodeT5Protocol, self.protocol).pending_futures()

    def start_io(self, stdin=None, stdout=None) -> None:
        """pygls's stdio loop, with a reader that resynchronizes after a broken frame."""
        self._stop_event = threading.Event()
        reader = _ResyncingReader(StdinAsyncReader(stdin or sys.stdin.buffer, self.thread_pool))
        self.protocol.set_writer(StdoutWriter(stdout or sys.stdout.buffer))
        try:
            asyncio.run(
                run_async(
                    stop_event=self._stop_event,
                    reader=reader,
                    protocol=self.protocol,
                    logger=log,
                    error_handler=self.report_server_error,
                )
            )
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
                self.protocol._send_response(
                    None,  # type: ignore[arg-type]  # id null
                    error=types.ResponseError(code=PARSE_ERROR, message=text),
                )
                self.window_show_message(
                    types.ShowMessageParams(
                        type=types.MessageType.Error, message=f"codet5-lsp: {text}"
                    )
                )
            except Exception:
                log.debug("could not report a parse error", exc_info=True)
            return
        super().report_server_error(error, source)
