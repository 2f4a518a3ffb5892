"""Loads engines in the background and reports their state, so the server answers at once.

Initialize and shutdown never wait for a model: the first load (download + conversion on first
run) happens on a thread; until it is ready, completions answer "no suggestion". A missing or
corrupt model is reported once (state "error" with a message naming the path) and the server
keeps serving; a configuration change retries.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

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


def engine_key(settings: Settings, model: str) -> EngineKey:
    return EngineKey(model, settings.revision, settings.device, settings.compute_type,
                     settings.cache_dir, settings.offline)


class _Slot:
    """One engine (for completions or summaries) and its loading state."""

    def __init__(self) -> None:
        self.key: EngineKey | None = None
        self.engine = None
        self.state: State = "idle"
        self.error: str | None = None
        self.ready = threading.Event()


class ModelManager:
    """Owns the completion engine and the summary engine (one engine when they are the same
    model)."""

    def __init__(self, settings: Settings,
                 on_state: Callable[[str, State, str], None] = lambda *a: None):
        self.settings = settings
        self._on_state = on_state
        self._lock = threading.Lock()
        self._slots: dict[EngineKey, _Slot] = {}
        self._closed = False  # after shutdown: never start loading again

    # -- queries -------------------------------------------------------------------------

    def completion_engine(self):
        """The engine if ready, else None (and loading is started if needed)."""
        return self._engine_for(self.settings.model)

    def summary_engine(self):
        model = self.settings.summary_model or self.settings.model
        engine = self._engine_for(model)
        if engine is None and self._slot_state(model) == "error" and model != self.settings.model:
            # The summary model cannot be had (offline, say): summarize with the completion
            # model when it is an encoder-decoder one.
            fallback = self._engine_for(self.settings.model)
            if fallback is not None and fallback.meta.family == "t5":
                return fallback
        return engine

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
        wanted = {engine_key(settings, settings.model),
                  engine_key(settings, settings.summary_model or settings.model)}
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

    def _slot_state(self, model: str) -> State:
        slot = self._slots.get(engine_key(self.settings, model))
        return slot.state if slot else "idle"

    def _engine_for(self, model: str):
        key = engine_key(self.settings, model)
        slot = self._start(key)
        return slot.engine if slot.state == "ready" else None

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
        threading.Thread(target=self._load, args=(key, slot), daemon=True,
                         name=f"codet5-load-{Path(key.model).name}").start()
        return slot

    def _load(self, key: EngineKey, slot: _Slot) -> None:
        try:
            from codet5_lsp.inference.engine import CompletionEngine, resolve_device, \
                default_compute_type
            from codet5_lsp.inference.models import resolve_model

            device = resolve_device(key.device)
            compute = default_compute_type(device) if key.compute_type == "auto" else key.compute_type
            files = resolve_model(key.model, quantization=_storage_quantization(compute),
                                  revision=key.revision,
                                  cache_dir=Path(key.cache_dir) if key.cache_dir else None,
                                  offline=key.offline, log=log.info)
            engine = CompletionEngine(files, device=device, compute_type=compute,
                                      intra_threads=self.settings.intra_threads)
        except Exception as exc:  # any failure: report, keep serving
            log.error("model %s failed to load: %s", key.model, exc)
            slot.error = str(exc)
            slot.state = "error"
            slot.ready.set()
            self._on_state(key.model, "error", str(exc))
            return
        slot.engine = engine
        slot.state = "ready"
        slot.ready.set()
        self._on_state(key.model, "ready", engine.description)


def _storage_quantization(compute_type: str) -> str:
    """How a conversion is stored: in the type it will run in (smaller, faster to load).

    Plain "int8" would keep a bf16 checkpoint's other weights in bf16 (int8_bfloat16), which
    the CPU then converts back on every load; store int8_float32 instead.
    """
    return {"int8": "int8_float32", "default": "none"}.get(compute_type, compute_type)
