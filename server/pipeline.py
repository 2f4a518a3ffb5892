"""The completion pipeline: document -> context -> prompt -> engine -> post-processing.

Handlers (`handlers/completion.py`) stay thin: they parse params and call
`CompletionPipeline.complete`, which returns a `Suggestion` (or None for "no suggestion").
Everything slow happens on the engine's thread; this module only awaits it, so the LSP loop
never blocks.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from codet5_lsp.inference.engine_api import Engine
from codet5_lsp.inference.generation import GenerationRequest, Mode
from codet5_lsp.inference.prompts import (
    CompletionQuery,
    StopRule,
    block_stop_rule,
    line_stop_rule,
    next_line_stop_rule,
)
from codet5_lsp.server.context import CompletionContext, build_completion_context
from codet5_lsp.server.debounce import AdaptiveDebouncer
from codet5_lsp.server.documents import Document
from codet5_lsp.server.postprocess import postprocess
from codet5_lsp.server.settings import Settings
from codet5_lsp.server.speculation import Speculator, ends_line, split_next_line
from codet5_lsp.server.typethrough import TypeThroughCache

if TYPE_CHECKING:
    from codet5_lsp.server.model_manager import ModelManager

log = logging.getLogger(__name__)

# How long a completion waits for an out-of-date syntax tree before it uses plain-text
# context. An incremental re-parse takes a few milliseconds; only error recovery after an
# unclosed bracket in a long file takes far longer (bench/results/documents.md).
PARSE_WAIT_S = 0.05

# Inline suggestions offered at most (VS Code cycles them with Alt+]).
MAX_ALTERNATIVES = 3

# Context budget (prefix tokens) per device when `maxContextTokens` is 0, the default. The
# exact one-pass prefix costs grow with Q x K, so on CPU the budget drives latency, while the
# labmodel's quality at 256 and 128 is within noise of 384 (bench/results/
# context-budget-cpu.md). On a GPU the prefix pass is cheap: the labmodel's training window.
CONTEXT_BUDGETS = {"cpu": 256, "cuda": 384}
DEFAULT_CONTEXT_BUDGET = 384

# The text around the cursor that keys the type-through cache (and speculation's entries).
PREFIX_WINDOW_CHARS = 4000
SUFFIX_WINDOW_CHARS = 1000

_ids = itertools.count(1)


@dataclass(frozen=True)
class Suggestion:
    """Text to insert at the cursor, and how it was obtained (for stats and the status bar)."""

    id: str
    text: str
    latency_ms: float
    model_ms: float
    from_cache: bool = False
    mode: str = ""
    # Further distinct suggestions (n-best), post-processed like `text`, best first.
    alternatives: tuple[str, ...] = ()
    # The typed text token healing had the model reproduce before `text` (for stats/tests).
    healed: str = ""

    @property
    def texts(self) -> list[str]:
        """Every suggestion to offer, best first (one InlineCompletionItem each)."""
        return [self.text, *self.alternatives]


def stop_rule_for(ctx: CompletionContext, line_tokens: int = 0) -> StopRule:
    """Single line: stop at the line end (`line_tokens` > 0: at the end of the next line,
    the first keeping that budget: the same-call speculation source). Block: stop when a
    later line dedents out of it."""
    if not ctx.multiline:
        return next_line_stop_rule(line_tokens) if line_tokens > 0 else line_stop_rule
    indent = len(ctx.line_prefix) - len(ctx.line_prefix.lstrip())
    if ctx.line_prefix.strip():  # the opener is on the cursor's line: body is deeper
        return block_stop_rule(indent)
    return block_stop_rule(indent - 1)  # cursor in the body's indentation


class CompletionPipeline:
    def __init__(self, models: "ModelManager", settings: Settings):
        self.models = models
        self.settings = settings
        self.cache = TypeThroughCache()
        self.debouncer = _debouncer(settings)
        # Counters for `counters()` (codet5.debugStats; bench/typing.py).
        self.model_calls = 0
        self.completion_requests = 0
        self.cache_hits = 0
        self._running: dict[str, threading.Event] = {}  # per document: the latest request
        # The next line, computed while the user reads the shown one (server/speculation.py).
        self.speculator = Speculator(
            self, prompt_for, postprocess, PARSE_WAIT_S, SUFFIX_WINDOW_CHARS, PREFIX_WINDOW_CHARS
        )

    def update_settings(self, settings: Settings) -> None:
        old, self.settings = self.settings, settings
        if old != settings:  # cached suggestions were made under the old settings
            self.cache = TypeThroughCache()
            self.speculator.reset()
        if (old.debounce_ms, old.debounce_max_ms) != (
            settings.debounce_ms,
            settings.debounce_max_ms,
        ):
            self.debouncer = _debouncer(settings)

    def counters(self) -> dict[str, float]:
        """Requests seen, answered from the type-through cache, and sent to the model
        (`modelCalls`: real requests only; speculation's own counters beside them)."""
        return {
            "completionRequests": self.completion_requests,
            "cacheHits": self.cache_hits,
            "modelCalls": self.model_calls,
            **self.speculator.counters(),
        }

    def forget(self, uri: str) -> None:
        """A closed document: drop its cached suggestions and typing rhythm."""
        self.cache.invalidate(uri)
        self.debouncer.forget(uri)
        self.speculator.forget(uri)
        running = self._running.pop(uri, None)
        if running is not None:
            running.set()

    async def complete(
        self,
        doc: Document,
        position,
        cancel: threading.Event | None = None,
        *,
        debounce: bool = True,
        open_documents: Sequence[Document] = (),
    ) -> Suggestion | None:
        """A suggestion for `position` in `doc`, or None ("no suggestion").
        `open_documents`: the workspace's other open documents (context from other files)."""
        started = time.perf_counter()
        self.completion_requests += 1
        cancel = cancel or threading.Event()
        # Latest wins: a new request for a document supersedes (and stops) the one before it.
        previous = self._running.get(doc.uri)
        if previous is not None:
            previous.set()
        self._running[doc.uri] = cancel
        try:
            return await self._complete(doc, position, cancel, started, debounce, open_documents)
        finally:
            if self._running.get(doc.uri) is cancel:
                del self._running[doc.uri]

    async def _complete(
        self,
        doc: Document,
        position,
        cancel: threading.Event,
        started: float,
        debounce: bool,
        open_documents: Sequence[Document] = (),
    ) -> Suggestion | None:
        settings = self.settings
        if getattr(doc, "too_large", False) or getattr(doc, "binary", False):
            return None
        if doc.language_id in settings.disabled_languages:
            return None
        offset = doc.offset_at(position)  # raises InvalidPositionError for bad positions
        speculator = self.speculator
        speculator.drop_incompatible(doc, offset)
        served = self._from_cache(doc, offset, started, open_documents)
        if served is not None:
            return served
        if speculator.answers_nothing(doc, offset):
            return None  # the model's answer here is a line break (server/speculation.py)
        edits_seen = doc.edit_count
        if await speculator.wait_for(doc, offset, cancel, settings.request_timeout_ms / 1000):
            if cancel.is_set() or doc.edit_count != edits_seen:
                return None
            served = self._from_cache(doc, offset, started, open_documents)
            if served is not None:
                return served
            if speculator.answers_nothing(doc, offset):
                return None
        text = doc.text
        prefix_window, suffix_window = self._windows(text, offset)
        if debounce and not await self.debouncer.wait(doc.uri):
            return None
        if cancel.is_set():  # superseded while waiting
            return None
        if doc.edit_count != edits_seen:
            # Edited while we waited: the position may not exist any more, and the client
            # asks again for the new text.
            return None
        engine = self.models.completion_engine()
        if engine is None:
            return None
        # A long re-parse must neither hold the loop nor delay the suggestion: past the wait,
        # the context is built from plain text while the parse finishes in the background.
        await doc.parse_cooperatively(budget_s=PARSE_WAIT_S)
        if cancel.is_set() or doc.edit_count != edits_seen:
            return None
        # The same-call source: this request also generates the line after the shown one.
        same_call = speculator.same_call_wanted(doc, offset, engine.device)
        ctx, mode, request = prompt_for(
            doc, position, engine, settings, open_documents, next_line=same_call
        )
        if ctx.in_string_or_comment and ctx.mid_line:
            return None
        self.model_calls += 1
        future = engine.submit(request, cancel)
        try:
            result = await asyncio.wait_for(
                asyncio.wrap_future(future), settings.request_timeout_ms / 1000
            )
        except asyncio.TimeoutError:
            cancel.set()
            log.warning("completion timed out after %d ms", settings.request_timeout_ms)
            return None
        except asyncio.CancelledError:
            cancel.set()
            raise
        if result.stop_reason == "cancelled":
            return None
        final = postprocess(result.text, ctx)
        if not final:
            return None
        others: list[str] = []
        for text in result.alternatives:
            other = postprocess(text, ctx)
            if other and other != final and other not in others:
                others.append(other)
        self.cache.store(doc.uri, prefix_window, suffix_window, final, tuple(others))
        suggestion = Suggestion(
            f"s{next(_ids)}",
            final,
            _ms(started),
            result.model_ms,
            mode=mode,
            alternatives=tuple(others),
            healed=result.healed,
        )
        # Post-processing trims a single-line answer to its first line, so a same-call result
        # shows the same text; its next line, if any, is the speculation's first answer.
        raw, reason, next_line = result.text, result.stop_reason, None
        if isinstance(request.stop_rule, StopRule) and request.stop_rule.kind == "next_line":
            raw, reason, next_line = split_next_line(raw, reason)
        if not ctx.multiline and ends_line(raw, final, reason):
            speculator.after_shown(doc, offset, final, suggestion.id, open_documents, next_line)
        return suggestion

    @staticmethod
    def _windows(text: str, offset: int) -> tuple[str, str]:
        return (
            text[max(0, offset - PREFIX_WINDOW_CHARS) : offset],
            text[offset : offset + SUFFIX_WINDOW_CHARS],
        )

    def _from_cache(
        self, doc: Document, offset: int, started: float, open_documents: Sequence[Document]
    ) -> Suggestion | None:
        """The rest of a suggestion the user is typing through (or a speculation's answer
        after accept + Enter), with no model call; None on a miss."""
        prefix_window, suffix_window = self._windows(doc.text, offset)
        found = self.cache.lookup_all(doc.uri, prefix_window, suffix_window)
        if not found:
            return None
        cached = found[0]
        self.cache_hits += 1
        suggestion = Suggestion(
            f"c{next(_ids)}",
            cached,
            _ms(started),
            0.0,
            from_cache=True,
            alternatives=tuple(found[1:]),
        )
        step = self.speculator.note_served(doc, offset, cached)
        if step is not None and step.line_complete:  # keep the chain a line ahead
            self.speculator.after_shown(doc, offset, cached, suggestion.id, open_documents)
        return suggestion


def prompt_for(
    doc: Document,
    position,
    engine: Engine,
    settings: Settings,
    open_documents: Sequence[Document] = (),
    *,
    next_line: bool = False,
) -> tuple[CompletionContext, Mode, GenerationRequest]:
    """(context, mode, request) of a completion at `position`: the one path from the
    document to the model call, shared by completions and `codet5.showContext` (which shows
    exactly what this request holds). The context goes to the engine as text
    (`CompletionQuery`); the engine makes the tokens, with its model's own conventions.
    `next_line`: a single-line request also generates the line after it, with twice the
    line budget (the same-call speculation source; server/speculation.py)."""
    mode = engine.completion_mode(settings.completion_mode)
    # Only the infill prompt shows the model the text after the cursor: other modes skip
    # fitting it (one tokenizer call, ~10% of the context step).
    suffix_tokens = settings.max_suffix_tokens if mode == "infill" else 0
    budget = context_budget_for(engine, settings)
    ctx = build_completion_context(
        doc, position, engine.tokenizer.count, budget, suffix_tokens, open_documents
    )
    query = CompletionQuery(
        prefix=without_lone_surrogates(ctx.prefix),
        suffix=without_lone_surrogates(ctx.suffix),
        max_prefix_tokens=budget,
        max_suffix_tokens=suffix_tokens,
        max_new_tokens=settings.max_multiline_tokens
        if ctx.multiline
        else settings.max_new_tokens * (2 if next_line else 1),
        mode_setting=settings.completion_mode,
        stop_rule=stop_rule_for(ctx, settings.max_new_tokens if next_line else 0),
        heal=settings.token_healing,
        alternatives=alternatives_for(engine, settings),
        decoder_marker=settings.decoder_marker,
    )
    return ctx, mode, engine.completion_request(query)


def context_budget_for(engine: Engine, settings: Settings) -> int:
    """Prefix tokens of context: the setting, or per device (CONTEXT_BUDGETS)."""
    if settings.max_context_tokens > 0:
        return settings.max_context_tokens
    return CONTEXT_BUDGETS.get(engine.device, DEFAULT_CONTEXT_BUDGET)


def alternatives_for(engine: Engine, settings: Settings) -> int:
    """Suggestions per request: the setting, or per device (1 on CPU, where each alternative
    costs about one more continuation; 3 on a GPU, where a batch of them costs about one)."""
    if settings.alternatives > 0:
        return min(settings.alternatives, MAX_ALTERNATIVES)
    return 3 if engine.device == "cuda" else 1


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def without_lone_surrogates(text: str) -> str:
    """The prompt's copy of `text` with lone surrogates (legal in JSON, kept in the document)
    as U+FFFD: the tokenizer only takes valid Unicode."""
    return _LONE_SURROGATE.sub("\ufffd", text) if _LONE_SURROGATE.search(text) else text


def _debouncer(settings: Settings) -> AdaptiveDebouncer:
    return AdaptiveDebouncer(
        min_ms=settings.debounce_ms, max_ms=max(settings.debounce_ms, settings.debounce_max_ms)
    )


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000
