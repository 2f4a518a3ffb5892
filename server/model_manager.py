"""Loads engines in the background and reports their state, so the server answers at once.

Initialize and shutdown never wait for a model: the first load (download + conversion on first
run) happens on a thread; until it is ready, completions answer "no suggestion". A missing or
corrupt model is reported once (state "error" with a message naming the path) and the server
keeps serving; a configuration change retries.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

from codet5_lsp.inference.engine_api import Engine
from codet5_lsp.server.settings import Settings

log = logging.getLogger(__name__)

State = Literal["idle", "loading", "ready", "error"]


@dataclass(frozen=True)
class EngineKey:
    model: str
    revision: str | None
    device: str
    compute_type: str
    cache_dir: str | None
    offline: bool
    backend: str | None = None  # a team server (remote engine) instead of a local model
    backend_token_file: str | None = None


def engine_key(settings: Settings, model: str) -> EngineKey:
    return EngineKey(
        model,
        settings.revision,
        settings.device,
        settings.compute_type,
        settings.cache_dir,
        settings.offline,
        settings.backend or None,
        settings.backend_token_file,
    )


class _Slot:
    """One engine (for completions or summaries) and its loading state."""

    def __init__(self) -> None:
        self.key: EngineKey | None = None
        self.engine: Engine | None = None
        self.state: State = "idle"
        self.error: str | None = None
        self.ready = threading.Event()


class ModelManager:
    """Owns the completion engine and the summary engine (one engine when they are the same
    model)."""

    def __init__(
        self, settings: Settings, on_state: Callable[[str, State, str], None] = lambda *a: None
    ):
        self.settings = settings
        self._on_state = on_state
        self._lock = threading.Lock()
        self._slots: dict[EngineKey, _Slot] = {}
        self._closed = False  # after shutdown: never start loading again

    # -- queries -------------------------------------------------------------------------

    def completion_engine(self) -> Engine | None:
        """The engine if ready, else None (and loading is started if needed)."""
        return self._engine_for(self.settings.model)

    def summary_engine(self) -> Engine | None:
        model = self.settings.summary_model or self.settings.model
        engine = self._engine_for(model)
        if engine is None and self._slot_state(model) == "error" and model != self.settings.model:
            # The summary model cannot be had (offline, say): summarize with the completion
            # model when it can summarize.
            fallback = self._engine_for(self.settings.model)
            if fallback is not None and fallback.can_summarize:
                return fallback
        return engine

    def summary_status(self) -> dict[str, str | None]:
        """What hovers will use, for doctor, the status item and the hover itself.

        Keys: ``model`` (the summary model asked for), ``state`` ("off", "idle", "loading",
        "ready", "error", or "fallback": it failed and hovers use the completion model),
        ``message`` (the error, when there is one) and ``used`` (the model that writes
        summaries now, or None).
        """
        model = self.settings.summary_model or self.settings.model
        if not self.settings.summaries_enabled:
            return {"model": model, "state": "off", "message": None, "used": None}
        state, error = self.state(model)
        used = model if state == "ready" else None
        if state == "error" and model != self.settings.model:
            fallback = self._slots.get(engine_key(self.settings, self.settings.model))
            if (
                fallback is not None
                and fallback.state == "ready"
                and fallback.engine is not None
                and fallback.engine.can_summarize
            ):
                return {
                    "model": model,
                    "state": "fallback",
                    "message": error,
                    "used": self.settings.model,
                }
        return {"model": model, "state": state, "message": error, "used": used}

    def state(self, model: str | None = None) -> tuple[State, str | None]:
        slot = self._slots.get(engine_key(self.settings, model or self.settings.model))
        if slot is None:
            return "idle", None
        return slot.state, slot.error

    def wait_ready(self, timeout: float | None = None, model: str | None = None) -> bool:
        key = engine_key(self.settings, model or self.settings.model)
        return self._start(key).ready.wait(timeout)

    # -- changes -------------------------------------------------------------------------

    def update(self, settings: Settings) -> None:
        """Apply new settings; engines whose key changed are reloaded lazily."""
        self.settings = settings
        wanted = {
            engine_key(settings, settings.model),
            engine_key(settings, settings.summary_model or settings.model),
        }
        with self._lock:
            for key in list(self._slots):
                if key not in wanted or self._slots[key].state == "error":
                    slot = self._slots.pop(key)
                    if slot.engine is not None:
                        slot.engine.close()
        self.start_loading()

    def start_loading(self) -> None:
        """Start loading the completion model, and the summary model when summaries are on."""
        self._start(engine_key(self.settings, self.settings.model))
        if self.settings.summaries_enabled and self.settings.summary_model:
            self._start(engine_key(self.settings, self.settings.summary_model))

    def close(self) -> None:
        """Close every engine; later queries answer None instead of loading a model again
        (a request still running at shutdown must not start a load the exit then cuts)."""
        with self._lock:
            self._closed = True
            for slot in self._slots.values():
                if slot.engine is not None:
                    slot.engine.close()
            self._slots.clear()

    # -- internals -----------------------------------------------------------------------

    def _with_knob(self, model: str, message: str) -> str:
        """Say which flag or setting names this model, when the message asks for a path."""
        if not message.endswith(" instead"):
            return message
        if model == self.settings.model:
            return f"{message} (--model PATH, setting `model`)"
        return (
            f"summary model: {message} (--summary-model PATH, setting `summaryModel`; "
            "hovers use the completion model meanwhile when it is a T5 one)"
        )

    def _slot_state(self, model: str) -> State:
        slot = self._slots.get(engine_key(self.settings, model))
        return slot.state if slot else "idle"

    def _engine_for(self, model: str) -> Engine | None:
        key = engine_key(self.settings, model)
        slot = self._start(key)
        if slot.state != "ready" or slot.engine is None or not slot.engine.healthy:
            return None  # loading, failed, or a team server that is down (it says when back)
        return slot.engine

    def _start(self, key: EngineKey) -> _Slot:
        with self._lock:
            slot = self._slots.get(key)
            if slot is not None:
                return slot
            slot = _Slot()
            slot.key = key
            if self._closed:
                slot.state, slot.error = "error", "the server is shutting down"
                slot.ready.set()
                return slot
            self._slots[key] = slot
            slot.state = "loading"
        self._on_state(key.model, "loading", f"loading {key.model}")
        threading.Thread(
            target=self._load,
            args=(key, slot),
            daemon=True,
            name=f"codet5-load-{Path(key.model).name}",
        ).start()
        return slot

    def _load(self, key: EngineKey, slot: _Slot) -> None:
        try:
            if key.backend:  # generation on a team server (docs/team.md)
                from codet5_lsp.inference.remote import connect

                remote = connect(
                    key.backend,
                    key.backend_token_file,
                    role="completion" if key.model == self.settings.model else "summary",
                    on_state=lambda state, msg: self._on_state(key.model, cast(State, state), msg),
                    closed=lambda: self._closed,
                    time_budget_s=lambda: self.settings.request_timeout_ms / 1000,
                )
                return self._loaded(slot, remote)
            from codet5_lsp.inference.engine import load_engine

            engine: Engine = load_engine(
                key.model,
                device=key.device,
                compute_type=key.compute_type,
                revision=key.revision,
                cache_dir=Path(key.cache_dir) if key.cache_dir else None,
                offline=key.offline,
                intra_threads=self.settings.intra_threads,
                log=log.info,
            )
        except Exception as exc:  # any failure: report, keep serving
            message = self._with_knob(key.model, str(exc))
            log.error("model %s failed to load: %s", key.model, message)
            slot.error = message
            slot.state = "error"
            slot.ready.set()
            self._on_state(key.model, "error", message)
            return
        self._loaded(slot, engine)

    def _loaded(self, slot: _Slot, engine: Engine) -> None:
        slot.engine = engine
        slot.state = "ready"
        slot.ready.set()
        assert slot.key is not None
        self._on_state(slot.key.model, "ready", engine.description)
