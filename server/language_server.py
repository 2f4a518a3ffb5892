"""The server object: what one editor session holds (settings, documents, models, pipeline,
summaries, statistics) and what it tells the client unasked (`codet5/status`, messages).

The handlers (server/handlers/) receive it as `ls`; server/lsp.py builds it and registers
them. The wire itself (reading, framing, malformed messages) is server/transport.py's.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from lsprotocol import types

from codet5_lsp import __version__
from codet5_lsp.server.documents import Document, DocumentStore
from codet5_lsp.server.model_manager import ModelManager
from codet5_lsp.server.pipeline import CompletionPipeline
from codet5_lsp.server.protocol import STATUS_NOTIFICATION, StatusParams
from codet5_lsp.server.settings import Settings, SettingsError
from codet5_lsp.server.stats import StatsLog
from codet5_lsp.server.summaries import SummaryService
from codet5_lsp.server.transport import CodeT5Protocol, HardenedLanguageServer

log = logging.getLogger(__name__)


class CodeT5Server(HardenedLanguageServer):
    def __init__(self, settings: Settings):
        super().__init__(
            "codet5-lsp",
            __version__,
            protocol_cls=CodeT5Protocol,
            text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
        )
        self.settings = settings
        self.documents = DocumentStore(max_bytes=settings.max_file_bytes)
        self.models = ModelManager(settings, on_state=self._model_state_changed)
        self.pipeline = CompletionPipeline(self.models, settings)
        self.summaries = SummaryService(self.models, settings)
        self.stats: StatsLog | None = None  # set by `codet5-lsp serve` (server/cli.py)
        # The event loop the handlers run on, once the client has initialized; model loader
        # threads post their state changes onto it.
        self.loop: asyncio.AbstractEventLoop | None = None
        self._last_latency_ms: float | None = None
        # URIs already told about (a document out of step, one we do not complete): once each.
        self.reported_desync: set[str] = set()
        self.reported_skipped: set[str] = set()

    def report_once(
        self,
        seen: set[str],
        uri: str,
        message: str,
        kind: types.MessageType = types.MessageType.Error,
    ) -> None:
        """Show `message` unless this URI was already reported in `seen`."""
        if uri in seen:
            log.debug("%s", message)
            return
        seen.add(uri)
        log.warning("%s", message)
        self.window_show_message(
            types.ShowMessageParams(type=kind, message=f"codet5-lsp: {message}")
        )

    def other_documents(self, doc: Document) -> list[Document]:
        """The open documents other than `doc` (cross-file context: server/retrieval.py)."""
        return [self.documents.get(uri) for uri in self.documents if uri != doc.uri]

    # -- notifications to the client -------------------------------------------------------

    def _model_state_changed(self, model: str, state: str, message: str) -> None:
        """Called from loader threads: hop onto the event loop before writing."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(self._notify_state, model, state, message)

    def _notify_state(self, model: str, state: str, message: str) -> None:
        if model != self.settings.model:
            # The summary model: its state goes to the log; when it cannot load, hovers fall
            # back to the completion model (ModelManager.summary_engine).
            self.window_log_message(
                types.LogMessageParams(
                    type=types.MessageType.Warning if state == "error" else types.MessageType.Info,
                    message=f"codet5-lsp: summary model {model}: {state}: {message}",
                )
            )
            engine = self.models.completion_engine() if state != "loading" else None
            if engine is not None:  # the status item shows the summary model's new state
                self._notify_state(self.settings.model, "ready", engine.description)
            return
        summary = self.models.summary_status()
        engine = self.models.completion_engine() if state == "ready" else None
        params = StatusParams(
            state=state,  # type: ignore[arg-type]  # ModelManager sends loading/ready/error
            message=message,
            model=model,
            summary_model=summary["model"],
            summary_state=summary["state"],
            summary_message=summary.get("message") or None,
            device=engine.device if engine is not None else None,
            compute_type=engine.compute_type if engine is not None else None,
            latency_ms=(
                round(self._last_latency_ms, 1) if self._last_latency_ms is not None else None
            ),
        )
        try:
            self.protocol.notify(STATUS_NOTIFICATION, params.to_json())
            if state == "error":
                self.window_show_message(
                    types.ShowMessageParams(
                        type=types.MessageType.Error, message=f"codet5-lsp: {message}"
                    )
                )
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
        """Apply settings from the client; a bad value is reported (window/showMessage) and
        nothing of that update is applied: the session goes on with the settings it had."""
        try:
            new = self.settings.merged(overrides)
        except SettingsError as exc:
            self.window_show_message(
                types.ShowMessageParams(type=types.MessageType.Error, message=f"codet5-lsp: {exc}")
            )
            return
        self.settings = new
        self.documents.max_bytes = new.max_file_bytes
        self.pipeline.update_settings(new)
        self.summaries.update_settings(new)
        self.models.update(new)
