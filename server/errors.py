"""The errors a handler lets reach the client, and their one translation to LSP.

Why one family: a handler should not need to know JSON-RPC error codes. Code anywhere in the
server raises a subclass of `ServerError` (a bad position, a URI that is not open, unusable
command arguments, a bad setting, a model that is not ready), and `translate_errors`, applied
to every handler when it is registered (server/handlers/__init__.py), turns it into the LSP
answer once:

    InvalidParamsError   -> JSON-RPC error -32602 (InvalidParams) for a request
        InvalidPositionError (positions.py), UnknownDocumentError (documents.py),
        ShowContextError (show_context.py), SettingsError (settings.py)
    RequestFailedError   -> LSP error -32803 (RequestFailed) for a request
        ModelNotReadyError (below)
    any ServerError in a notification -> window/showMessage (Error), since a notification has
        no answer to carry it

The message is the exception's text, unchanged. Anything that is not a `ServerError` is a bug
or an engine failure; the handlers that call the model turn those into "no suggestion"
themselves (handlers/completion.py), and pygls answers the rest with InternalError.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from lsprotocol import types
from pygls.exceptions import JsonRpcException

log = logging.getLogger(__name__)

INVALID_PARAMS = -32602  # JSON-RPC InvalidParams
REQUEST_FAILED = -32803  # LSP RequestFailed


class ServerError(Exception):
    """Something the client is told about; `code` is its JSON-RPC error code."""

    code = REQUEST_FAILED


class InvalidParamsError(ServerError):
    """The request's parameters cannot be used (a position past the end, a closed URI)."""

    code = INVALID_PARAMS


class RequestFailedError(ServerError):
    """The parameters are fine but the server cannot do it now (the model is not ready)."""

    code = REQUEST_FAILED


class ModelNotReadyError(RequestFailedError):
    """A request that needs the completion model while it is loading or failed to load."""


F = TypeVar("F", bound=Callable[..., Any])


def to_jsonrpc(error: ServerError) -> JsonRpcException:
    """The JSON-RPC error the client receives for `error`."""
    return JsonRpcException(message=str(error), code=error.code)


def translate_errors(handler: F, *, notification: bool) -> F:
    """Wrap an LSP handler (sync or async) so that a `ServerError` it raises becomes the
    client's error response (a request) or an error message (a notification).

    The wrapper keeps the handler's signature (`functools.wraps`): pygls finds the `ls`
    parameter and the command arguments through it, and sees an async handler as async.
    """

    def report(ls: Any, error: ServerError) -> None:
        log.warning("%s: %s", handler.__name__, error)
        ls.window_show_message(
            types.ShowMessageParams(type=types.MessageType.Error, message=f"codet5-lsp: {error}")
        )

    if inspect.iscoroutinefunction(handler):

        @functools.wraps(handler)
        async def translated_async(ls: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return await handler(ls, *args, **kwargs)
            except ServerError as error:
                if not notification:
                    raise to_jsonrpc(error) from None
                report(ls, error)
                return None

        return translated_async  # type: ignore[return-value]

    @functools.wraps(handler)
    def translated(ls: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return handler(ls, *args, **kwargs)
        except ServerError as error:
            if not notification:
                raise to_jsonrpc(error) from None
            report(ls, error)
            return None

    return translated  # type: ignore[return-value]
