"""One error family, translated once (server/errors.py), on every handler (handlers/)."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from codet5_lsp.server.documents import DocumentStore, UnknownDocumentError
from codet5_lsp.server.errors import (
    INVALID_PARAMS,
    REQUEST_FAILED,
    InvalidParamsError,
    ModelNotReadyError,
    ServerError,
    translate_errors,
)
from codet5_lsp.server.positions import InvalidPositionError
from codet5_lsp.server.settings import Settings, SettingsError
from codet5_lsp.server.show_context import ShowContextError


class _Client:
    def __init__(self) -> None:
        self.shown: list[types.ShowMessageParams] = []

    def window_show_message(self, params: types.ShowMessageParams) -> None:
        self.shown.append(params)


@pytest.mark.parametrize(
    "error, code",
    [
        (InvalidPositionError("line 9 is past the end"), INVALID_PARAMS),
        (UnknownDocumentError("file:///a.py is not open"), INVALID_PARAMS),
        (ShowContextError("bad arguments"), INVALID_PARAMS),
        (SettingsError("setting 'device': 'tpu' is not one of auto, cpu, cuda"), INVALID_PARAMS),
        (ModelNotReadyError("the model is not ready (loading)"), REQUEST_FAILED),
    ],
)
def test_each_error_becomes_its_lsp_error_with_its_message(error, code):
    assert isinstance(error, ServerError)

    def handler(ls: Any, params: Any) -> None:
        raise error

    with pytest.raises(JsonRpcException) as caught:
        translate_errors(handler, notification=False)(_Client(), None)
    assert caught.value.code == code
    assert caught.value.message == str(error)


def test_the_errors_keep_their_builtin_bases():
    """Callers that catch ValueError / KeyError still do."""
    assert issubclass(InvalidPositionError, ValueError)
    assert issubclass(SettingsError, ValueError)
    assert issubclass(UnknownDocumentError, KeyError)
    with pytest.raises(InvalidParamsError, match="not open"):
        DocumentStore().get("file:///nowhere.py")
    with pytest.raises(InvalidParamsError, match="device"):
        Settings().merged({"device": "tpu"})


def test_a_notification_shows_the_error_instead():
    client = _Client()

    def handler(ls: Any, params: Any) -> None:
        raise InvalidPositionError("line 9 is past the end")

    assert translate_errors(handler, notification=True)(client, None) is None
    assert [(m.type, m.message) for m in client.shown] == [
        (types.MessageType.Error, "codet5-lsp: line 9 is past the end")
    ]


def test_other_exceptions_pass_through_and_async_stays_async():
    async def handler(ls: Any, *args: Any) -> str:
        raise RuntimeError("engine failure")

    wrapped = translate_errors(handler, notification=False)
    assert inspect.iscoroutinefunction(wrapped)
    # pygls finds the server parameter and the command arguments through the signature.
    assert list(inspect.signature(wrapped).parameters) == ["ls", "args"]
    with pytest.raises(RuntimeError, match="engine failure"):
        asyncio.run(wrapped(_Client()))


def test_every_route_is_declared_as_it_runs():
    from codet5_lsp.server.handlers import ROUTES, Route, Runs, register
    from codet5_lsp.server.lsp import create_server

    awaits = {r.method for r in ROUTES if r.runs is Runs.AWAITS}
    assert {types.TEXT_DOCUMENT_INLINE_COMPLETION, types.TEXT_DOCUMENT_HOVER} <= awaits
    assert types.TEXT_DOCUMENT_DID_CHANGE not in awaits

    async def slow(ls: Any, params: Any) -> None:
        return None

    with pytest.raises(TypeError, match="ON_LOOP"):
        register(create_server(Settings()), (Route("x/y", slow, Runs.ON_LOOP),))
