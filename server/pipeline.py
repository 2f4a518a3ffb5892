"""The completion pipeline: document -> context -> prompt -> engine -> post-processing.

Handlers in `lsp.py` stay thin: they parse params and call `CompletionPipeline.complete`,
which returns a `Suggestion` (or None for "no suggestion"). Everything slow happens on the
engine's thread; this module only awaits it, so the LSP loop never blocks.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from codet5_lsp.inference.generation import Mode
from codet5_lsp.inference.prompts import block_stop_rule, build_completion_request, line_stop_rule
from codet5_lsp.server.context import CompletionContext, build_completion_context
from codet5_lsp.server.debounce import AdaptiveDebouncer
from codet5_lsp.server.documents import Document
from codet5_lsp.server.postprocess import postprocess
from codet5_lsp.server.settings import Settings
from codet5_lsp.server.typethrough import TypeThroughCache

if TYPE_CHECKING:
    from codet5_lsp.server.model_manager import ModelManager

log = logging.getLogger(__name__)

# Line completions come from the decoder-only mode (design card; it is also the mode the
# labmodel and CodeT5+'s CLM pre-training teach). With the parallel-prefix rewrite
# (docs/ctranslate2-t5-prefix/) it is exact and runs the context in one pass; see
# docs/performance.md for the measured speed and quality of all modes.
DEFAULT_T5_MODE: Mode = "decoder"

# How long a completion waits for an out-of-date syntax tree before it uses plain-text
# context. An incremental re-parse is ~1-5 ms; only error recovery after an unclosed bracket
# in a long file takes longer (0.1-4 s measured, bench/results/documents.md).
PARSE_WAIT_S = 0.05

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


def choose_mode(setting: str, family: str) -> Mode:
    """The completion mode actually served for a model family."""
    if family == "codegen":
        return "causal"  # the CodeGen decoder of codet5p-2b/6b/16b, through ctranslate2.Generator
    if setting == "auto":
        return DEFAULT_T5_MODE
    return setting  # type: ignore[return-value]


def stop_rule_for(ctx: CompletionContext):
    """Single line: stop at the line end. Block: stop when a later line dedents out of it."""
    if not ctx.multiline:
        return line_stop_rule
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

    def update_settings(self, settings: Settings) -> None:
        old, self.settings = self.settings, settings
        if (old.debounce_ms, old.debounce_max_ms) != (settings.debounce_ms, settings.debounce_max_ms):
            self.debouncer = _debouncer(settings)

    def counters(self) -> dict[str, int]:
        """Requests seen, answered from the type-through cache, and sent to the model."""
        return {"completionRequests": self.completion_requests, "cacheHits": self.cache_hits,
                "modelCalls": self.model_calls}

    def forget(self, uri: str) -> None:
        """A closed document: drop its cached suggestions and typing rhythm."""
        self.cache.invalidate(uri)
        self.debouncer.forget(uri)
        running = self._running.pop(uri, None)
        if running is not None:
            running.set()

    async def complete(self, doc: Document, position, cancel: threading.Event | None = None,
                       *, debounce: bool = True) -> Suggestion | None:
        """A suggestion for `position` in `doc`, or None ("no suggestion")."""
        started = time.perf_counter()
        self.completion_requests += 1
        cancel = cancel or threading.Event()
        # Latest wins: a new request for a document supersedes (and stops) the one before it.
        previous = self._running.get(doc.uri)
        if previous is not None:
            previous.set()
        self._running[doc.uri] = cancel
        try:
            return await self._complete(doc, position, cancel, started, debounce)
        finally:
            if self._running.get(doc.uri) is cancel:
                del self._running[doc.uri]

    async def _complete(self, doc: Document, position, cancel: threading.Event, started: float,
                        debounce: bool) -> Suggestion | None:
        settings = self.settings
        if getattr(doc, "too_large", False) or getattr(doc, "binary", False):
            return None
        if doc.language_id in settings.disabled_languages:
            return None
        offset = doc.offset_at(position)  # raises InvalidPositionError for bad positions
        text = doc.text
        prefix_window, suffix_window = text[max(0, offset - 4000):offset], text[offset:offset + 1000]
        cached = self.cache.lookup(doc.uri, prefix_window, suffix_window)
        if cached:
            self.cache_hits += 1
            return Suggestion(f"c{next(_ids)}", cached, _ms(started), 0.0, from_cache=True)
        edits_seen = doc.edit_count
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
        tokenizer = engine.tokenizer
        meta = engine.meta
        mode = choose_mode(settings.completion_mode, meta.family)
        # Only the infill prompt shows the model the text after the cursor: other modes skip
        # fitting it (one tokenizer call, ~10% of the context step).
        suffix_tokens = settings.max_suffix_tokens if mode == "infill" else 0
        ctx = build_completion_context(doc, position, tokenizer.count,
                                       settings.max_context_tokens, suffix_tokens)
        if ctx.in_string_or_comment and ctx.mid_line:
            return None
        request = build_completion_request(
            mode, without_lone_surrogates(ctx.prefix), without_lone_surrogates(ctx.suffix),
            tokenizer,
            max_prefix_tokens=settings.max_context_tokens,
            max_suffix_tokens=suffix_tokens,
            max_new_tokens=settings.max_multiline_tokens if ctx.multiline else settings.max_new_tokens,
            bos=meta.bos_token, eos=meta.eos_token, sentinel=meta.sentinel_token,
            next_sentinel=meta.next_sentinel_token, decoder_marker=settings.decoder_marker,
            stop_rule=stop_rule_for(ctx),
        )
        self.model_calls += 1
        future = engine.submit(request, cancel)
        try:
            result = await asyncio.wait_for(asyncio.wrap_future(future),
                                            settings.request_timeout_ms / 1000)
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
        self.cache.store(doc.uri, prefix_window, suffix_window, final)
        return Suggestion(f"s{next(_ids)}", final, _ms(started), result.model_ms, mode=mode)


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def without_lone_surrogates(text: str) -> str:
    """The prompt's copy of `text` with lone surrogates (legal in JSON, kept in the document)
    as U+FFFD: the tokenizer only takes valid Unicode."""
    return _LONE_SURROGATE.sub("\ufffd", text) if _LONE_SURROGATE.search(text) else text


def _debouncer(settings: Settings) -> AdaptiveDebouncer:
    return AdaptiveDebouncer(min_ms=settings.debounce_ms,
                             max_ms=max(settings.debounce_ms, settings.debounce_max_ms))


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000
