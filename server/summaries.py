"""Hover summaries: the function under the cursor, summarized by the encoder-decoder model.

Summaries are cached by (summary model, hash of the function's body without its docstring), so
an unchanged function is never summarized twice, in a bounded LRU. Interactive hovers run
before background work but after completions (engine priorities); summaries of the functions
around the cursor are prefetched at the lowest priority, once the editor has been quiet for
`summary_prefetch_delay_ms` (any request or edit pushes that back), and the engine preempts a
running prefetch when a completion or hover arrives. A cancelled hover stops its generation
within one decoding step.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from codet5_lsp.inference.generation import Priority
from codet5_lsp.inference.prompts import SummaryQuery
from codet5_lsp.server.lru import LruCache
from codet5_lsp.server.repetition import cut_repeated_words
from codet5_lsp.server.settings import Settings

if TYPE_CHECKING:
    from codet5_lsp.server.model_manager import ModelManager

log = logging.getLogger(__name__)

MAX_SOURCE_TOKENS = 512


@dataclass(frozen=True)
class Summary:
    text: str
    model: str
    from_cache: bool


def first_sentence(text: str) -> str:
    """The one-sentence summary: the first sentence of the first paragraph, tidied."""
    text = " ".join(text.strip().split("\n\n", 1)[0].split())
    match = re.search(r"(?<=[.!?])\s", text)
    return text[: match.start()] if match else text


class SummaryCache:
    """Bounded LRU of summaries keyed by (model, body hash)."""

    def __init__(self, capacity: int = 2048):
        self.capacity = capacity
        self._items: LruCache[tuple[str, str], str] = LruCache(capacity)

    def get(self, model: str, body_hash: str) -> str | None:
        return self._items.get((model, body_hash))

    def put(self, model: str, body_hash: str, summary: str) -> None:
        self._items.put((model, body_hash), summary)

    def __len__(self) -> int:
        return len(self._items)


class SummaryService:
    def __init__(
        self,
        models: "ModelManager",
        settings: Settings,
        capacity: int = 2048,
        clock: Callable[[], float] = time.monotonic,
    ):
        """`clock` (seconds) measures the prefetch quiet period: tests pass a fake one and call
        `run_pending_prefetch` themselves instead of waiting in real time."""
        self.models = models
        self.clock = clock
        self.settings = settings
        self.cache = SummaryCache(capacity)
        self.model_calls = 0
        self._inflight: dict[tuple[str, str], asyncio.Future] = {}
        self._pending_prefetch: Callable[[], Sequence] | None = None
        self._prefetch_timer: asyncio.TimerHandle | None = None
        self._quiet_since = clock()  # the last activity seen (by `clock`)

    def update_settings(self, settings: Settings) -> None:
        self.settings = settings

    async def summarize(
        self, definition, cancel: threading.Event | None = None, priority: Priority = Priority.HOVER
    ) -> Summary | None:
        """Summary of `definition` (a context.Definition), or None when no model is ready."""
        engine = self.models.summary_engine()
        if engine is None or not self.settings.summaries_enabled:
            return None
        model = engine.meta.source
        cached = self.cache.get(model, definition.body_hash)
        if cached is not None:
            return Summary(cached, model, True)
        key = (model, definition.body_hash)
        pending = self._inflight.get(key)
        if pending is not None:  # the same function is already being summarized
            text = await asyncio.shield(pending)
            return Summary(text, model, True) if text else None
        request = engine.summary_request(
            SummaryQuery(
                definition.source_without_docstring,
                max_source_tokens=MAX_SOURCE_TOKENS,
                max_new_tokens=self.settings.summary_max_tokens,
                priority=priority,
            )
        )
        cancel = cancel or threading.Event()
        loop = asyncio.get_running_loop()
        done: asyncio.Future = loop.create_future()
        self._inflight[key] = done
        self.model_calls += 1
        text = ""
        try:
            result = await asyncio.wrap_future(engine.submit(request, cancel))
            if result.stop_reason != "cancelled":
                text = cut_repeated_words(first_sentence(result.text))
        except asyncio.CancelledError:
            cancel.set()  # stops the generation on the engine thread
            raise
        finally:
            self._inflight.pop(key, None)
            done.set_result(text)
        if not text:
            return None
        self.cache.put(model, definition.body_hash, text)
        return Summary(text, model, False)

    def unavailable_note(self) -> str | None:
        """Hover text when no summary can be written yet because the summary model is still
        loading (the first seconds after start, or a first download), else None.

        A hover that answers null while the model loads looks like a feature that does not
        work; a short note says it is coming.
        """
        status = self.models.summary_status()
        if status["state"] in ("loading", "idle"):
            return f"*codet5-lsp: loading the summary model {_short(status['model'] or '')}…*"
        return None

    def schedule_prefetch(self, definitions: Callable[[], Sequence]) -> None:
        """Prefetch `definitions()` once the editor has been quiet for the configured delay.

        A newer schedule replaces an older one (the cursor moved on). `definitions` is called
        when the timer fires, on the loop, so it sees the document as it is then.
        """
        self._pending_prefetch = definitions
        self._restart_prefetch_timer()

    def note_activity(self) -> None:
        """The user did something (typed, hovered, asked for a completion): wait longer."""
        if self._pending_prefetch is not None:
            self._restart_prefetch_timer()

    def _restart_prefetch_timer(self) -> None:
        self._quiet_since = self.clock()
        self._wake_after(self.settings.summary_prefetch_delay_ms / 1000)

    def _wake_after(self, delay_s: float) -> None:
        if self._prefetch_timer is not None:
            self._prefetch_timer.cancel()
        loop = asyncio.get_running_loop()
        self._prefetch_timer = loop.call_later(delay_s, self.run_pending_prefetch)

    def run_pending_prefetch(self) -> None:
        """Start the scheduled prefetch if the editor has been quiet for the delay (by
        `clock`) and no urgent request is running; otherwise look again later. The loop's
        timer calls this; a test with a fake clock may call it directly."""
        if self._pending_prefetch is None:
            return
        remaining = self.settings.summary_prefetch_delay_ms / 1000 - (
            self.clock() - self._quiet_since
        )
        if remaining > 0:  # activity since the timer was set (or a clock ahead of the loop)
            self._wake_after(remaining)
            return
        engine = self.models.summary_engine()
        if engine is not None and engine.urgent_work_in_flight:
            self._restart_prefetch_timer()  # a slow request is still running: not quiet yet
            return
        if self._prefetch_timer is not None:
            self._prefetch_timer.cancel()
        provider, self._pending_prefetch, self._prefetch_timer = self._pending_prefetch, None, None
        try:
            definitions = provider()
        except Exception as exc:  # e.g. the document was closed meanwhile
            log.debug("prefetch skipped: %s", exc)
            return
        self.prefetch(definitions)

    def prefetch(self, definitions) -> None:
        """Summarize these definitions in the background (lowest priority), skipping cached."""
        engine = self.models.summary_engine()
        if engine is None or not self.settings.summaries_enabled:
            return
        for definition in definitions:
            if (
                self.cache.get(engine.meta.source, definition.body_hash) is None
                and (engine.meta.source, definition.body_hash) not in self._inflight
            ):
                task = asyncio.ensure_future(
                    self.summarize(definition, priority=Priority.BACKGROUND)
                )
                task.add_done_callback(_log_failure)


def _log_failure(task: asyncio.Future) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("background summary failed: %s", task.exception())


def _short(model: str) -> str:
    return model.rstrip("/").split("/")[-1] if "/" in model else model


def hover_markdown(summary: Summary, name: str) -> str:
    """Markdown shown on hover: the sentence, then the model that wrote it."""
    return f"{summary.text}\n\n*{name} — summary by {_short(summary.model)} (codet5-lsp)*"
