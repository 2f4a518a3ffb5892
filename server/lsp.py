"""Builds the language server: the server object (server/language_server.py) with every
handler registered (server/handlers/). `codet5-lsp serve` (server/cli.py) runs it.

The rooms, from the wire inwards:
    transport.py        framing, malformed messages, pygls overrides (pinned pygls version)
    language_server.py  CodeT5Server: the session's state and what it tells the client
    handlers/           one module per concern; which run on the loop and which await work
                        off it: handlers/__init__.py
    errors.py           the errors handlers let reach the client, translated once
    protocol.py         codet5/status and the codet5.* commands, typed, shared with clients
"""

from __future__ import annotations

from codet5_lsp.server.handlers import register
from codet5_lsp.server.language_server import CodeT5Server
from codet5_lsp.server.settings import Settings


def create_server(settings: Settings) -> CodeT5Server:
    server = CodeT5Server(settings)
    register(server)
    return server
