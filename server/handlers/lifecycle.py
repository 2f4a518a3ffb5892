"""Session lifecycle and settings: initialize, initialized, shutdown,
workspace/didChangeConfiguration. All run on the event loop and return at once (model
loading starts on loader threads)."""

from __future__ import annotations

import asyncio
from typing import Any

from lsprotocol import types

from codet5_lsp.server.language_server import CodeT5Server


def initialize(ls: CodeT5Server, params: types.InitializeParams) -> None:
    ls.loop = _running_loop()
    opts = params.initialization_options
    if isinstance(opts, dict):
        ls.apply_settings(opts.get("codet5", opts))
    ls.documents.encoding = str(ls.workspace.position_encoding or "utf-16")


def initialized(ls: CodeT5Server, params: types.InitializedParams) -> None:
    ls.loop = asyncio.get_running_loop()
    ls.models.start_loading()


def shutdown(ls: CodeT5Server, params: Any) -> None:
    ls.models.close()


def did_change_configuration(ls: CodeT5Server, params: types.DidChangeConfigurationParams) -> None:
    settings = params.settings
    if isinstance(settings, dict):
        ls.apply_settings(settings.get("codet5", settings))


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
