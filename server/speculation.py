"""Speculation: the suggestion that follows the one just shown, computed while the user reads it.

A person reads ghost text for half a second or more before accepting it. Right after a line
suggestion S is shown at offset `off` of text T, the speculator builds the document as it
would be after accepting S and pressing Enter, T[:off] + S + "\\n" + I + T[off:] where I is the
indentation an editor inserts there (`auto_indent`: the line's own, one level deeper after a
block opener), runs the pipeline's own path on it at the cursor after I (`prompt_for` ->
engine at background priority -> `postprocess`) and stores the answer A in the pipeline's
type-through cache twice: after I (the very request the editor will send after accept +
Enter: served without a model call, and the same text a fresh request gives), and at column 0
as I + A (an editor that indents less, or not at all, sees its indentation typed through).
Typing along A works as for any shown suggestion.

Why not let the model write the indentation from column 0 (one request for every editor)?
Measured over LSP (bench/results/speculation-cpu.md, first run): a column-0 answer equals the
fresh request after the editor's auto-indent in only 11 of 16 cases. The context step treats
the two cursors differently (after "if x:" the indented cursor asks for a block), token
healing reproduces the typed indentation on a different path than the free one, and where the
model leaves the line blank at column 0 it writes code once the indentation is typed.

Bounds: background priority (a real request anywhere preempts it; the engine re-queues it);
one chain per document (a newer one replaces the older); at most `speculationDepth` (1-2)
lines beyond the one shown; a real request whose document can no longer reach the
hypothetical state cancels the chain. A real request that arrives while a matching
speculation still runs waits for it instead of starting a second model call, and the
editor's accept signal (`codet5.accepted`) moves it to urgent priority if it has not started.

Where the next line comes from (`speculationSource`): "separate" is the above, a second
model call on the forked document. "same_call" asks the shown request itself for two lines
(inference/prompts.py's "next_line" stop rule, twice the line budget): the first line is
post-processed and shown exactly as a one-line request's (the engine cuts it with the line's
own budget, and post-processing trims to the first line), and the model's next line becomes
the first step's answer, post-processed in the forked document's context by the same path
with only the model call skipped. The model's line carries its own indentation: when it
starts with the editor's auto-indent the answer is the rest; otherwise (a dedent, a blank
line at column 0), or where the forked cursor asks for a block, or when the second line did
not finish, the step makes the separate call after all. Deeper steps always do. "auto"
chooses per device (SOURCE_BY_DEVICE).

After an accept, the editor asks again at the end of the accepted line. The model ended that
line (the suggestion stopped at its line break), so the chain answers "no suggestion" there
without a model call: that request would otherwise delay the speculation it is waiting for.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from codet5_lsp.inference.generation import Priority

if TYPE_CHECKING:
    from codet5_lsp.server.documents import Document

log = logging.getLogger(__name__)

MAX_DEPTH = 2

Source = Literal["separate", "same_call"]
# `speculationSource: auto` per device. CPU: "separate". Measured over LSP with the labmodel
# (bench/results/speculation-source-cpu.md): the same call makes every eligible shown
# suggestion wait for a second line, and on CPU each generated token costs about as much as
# it does in the separate background call, which mostly runs while the user reads.
# cuda: not measured (no GPU in that run); the idea is that a GPU decodes the extra
# line for little more than the first, which `python -m bench.speculation --part source` on a
# GPU would show. Until then, the measured path.
SOURCE_BY_DEVICE: dict[str, Source] = {"cpu": "separate", "cuda": "separate"}


def resolve_source(setting: str, device: str) -> Source:
    """The source a `speculationSource` setting means on `device` ("auto": per device)."""
    if setting in ("separate", "same_call"):
        return setting  # type: ignore[return-value]
    return SOURCE_BY_DEVICE.get(device, "separate")


# How much of the hypothetical text before the cursor is compared with the real document:
# the type-through cache's own key window (typethrough.PREFIX_KEY_CHARS), plus a margin for
# a cursor still inside the shown line (typing along it, or at its end after an accept).
CHECK_CHARS = 2000
MARGIN_CHARS = 512


@dataclass
class Step:
    """One hypothetical state: the document after accepting the previous line and Enter."""

    hyp_offset: int  # column 0 of the new line (states are compared from there)
    hyp_window: str  # hypothetical text before it: the last CHECK_CHARS + MARGIN_CHARS
    suffix: str  # text after it (the pipeline's suffix window)
    doc: "Document"  # the hypothetical document (Document.fork_with_insert), indent included
    indent: str = ""  # the editor's likely auto-indent, where the request is made
    text: str | None = None  # indent + the post-processed answer once known ("" = none)
    line_complete: bool = False  # the answer ends at the model's line break
    blank: bool = False  # the answer after the indent is no suggestion
    multiline: bool = False
    model_ms: float = 0.0
    served: bool = False
    request: Any = None
    job: tuple[Future, threading.Event] | None = None
    outcome: asyncio.Future | None = None  # resolves to the engine future that answered
    promoted: bool = False
    # The model's next line from the shown request (same-call source): its raw text from
    # column 0, its own indentation and line break included; None: a model call computes it.
    given: str | None = None

    @property
    def done(self) -> bool:
        return self.text is not None


@dataclass
class Chain:
    uri: str
    steps: list[Step]
    target: int  # steps wanted in total (the shown line's depth)
    source_ids: set[str] = field(default_factory=set)
    settings: Any = None
    open_documents: Sequence["Document"] = ()
    task: asyncio.Task | None = None
    cancelled: bool = False


def relation(text: str, offset: int, step: Step) -> str | None:
    """How a real cursor at `offset` of `text` stands to `step`'s hypothetical state.

    "before": the text before the cursor is the hypothetical text up to there (the user is
    still in the shown line: typing along it, or at its end after accepting it);
    "after": the hypothetical text before the hypothetical cursor is there, and the cursor
    is at or after it (Enter was pressed; what follows it is auto-indent or typing);
    None: the document can no longer become the hypothetical one.
    Both need the text after the cursor to be the hypothetical suffix."""
    if text[offset : offset + len(step.suffix)] != step.suffix:
        return None
    window = step.hyp_window
    if offset < step.hyp_offset:
        back = step.hyp_offset - offset
        if back > MARGIN_CHARS or back > len(window):
            return None
        want = window[: len(window) - back][-CHECK_CHARS:]
        return "before" if text[max(0, offset - len(want)) : offset] == want else None
    want = window[-CHECK_CHARS:]
    start = step.hyp_offset - len(want)
    if start < 0:
        return None
    return "after" if text[start : step.hyp_offset] == want else None


def hypothetical_window(text: str, offset: int, line: str) -> str:
    """The last CHECK_CHARS + MARGIN_CHARS of text[:offset] + line + "\\n"."""
    keep = CHECK_CHARS + MARGIN_CHARS
    return (text[max(0, offset - keep) : offset] + line + "\n")[-keep:]


def rest_of_line_is_blank(text: str, offset: int) -> bool:
    end = text.find("\n", offset)
    return not text[offset : len(text) if end < 0 else end].strip()


class Speculator:
    """Per-document speculative chains for a `CompletionPipeline` (owned by it).

    `prompt_for` and `postprocess` are the pipeline's functions (passed in: this module sits
    beside the pipeline, not above it); the engine, settings and type-through cache are read
    from the pipeline when a step runs (settings changes replace the cache)."""

    def __init__(
        self,
        pipeline: Any,
        prompt_for: Callable,
        postprocess: Callable,
        parse_wait_s: float = 0.05,
        suffix_chars: int = 1000,
        prefix_chars: int = 4000,
    ):
        self.pipeline = pipeline
        self._prompt_for = prompt_for
        self._postprocess = postprocess
        self._parse_wait_s = parse_wait_s
        self.suffix_chars = suffix_chars
        self.prefix_chars = prefix_chars
        self.chains: dict[str, Chain] = {}
        # counters (codet5.debugStats, bench/typing.py)
        self.model_calls = 0  # speculative model calls submitted
        self.served = 0  # real requests answered from a speculation
        self.waited = 0  # real requests that waited for a running speculation
        self.line_ends = 0  # requests at the end of an accepted line, answered at once
        self.blank_lines = 0  # requests on a new line the model leaves blank, answered at once
        self.promotions = 0
        self.chains_started = 0
        self.same_call = 0  # steps answered from the shown request's own next line
        self.same_call_fallbacks = 0  # given next lines not usable: a model call instead
        self.same_call_block_fallbacks = 0  # ... because the forked cursor asks for a block
        self.total_ms = 0.0  # engine ms of every finished or cancelled speculative job
        self.served_ms = 0.0  # engine ms of the speculations that were served

    # -- settings ----------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        settings = self.pipeline.settings
        if not getattr(settings, "speculation", False):
            return 0
        return max(0, min(MAX_DEPTH, int(getattr(settings, "speculation_depth", 1))))

    def same_call_wanted(self, doc: "Document", offset: int, device: str) -> bool:
        """Whether a real request at `offset` should also generate the next line (the
        same-call source): speculation on, the source for `device` is "same_call", and the
        rest of the line is blank (only then is a line suggestion speculated)."""
        if self.depth <= 0:
            return False
        source = getattr(self.pipeline.settings, "speculation_source", "auto")
        return resolve_source(source, device) == "same_call" and rest_of_line_is_blank(
            doc.text, offset
        )

    def counters(self) -> dict[str, float]:
        pending = sum(s.model_ms for c in self.chains.values() for s in c.steps if not s.served)
        return {
            "speculativeModelCalls": self.model_calls,
            "speculationHits": self.served,
            "speculationWaits": self.waited,
            "speculationLineEnds": self.line_ends,
            "speculationBlankLines": self.blank_lines,
            "speculationPromotions": self.promotions,
            "speculationChains": self.chains_started,
            "speculationSameCall": self.same_call,
            "speculationSameCallFallbacks": self.same_call_fallbacks,
            "speculationSameCallBlockFallbacks": self.same_call_block_fallbacks,
            "speculativeMs": round(self.total_ms, 1),
            "discardedSpeculativeMs": round(max(0.0, self.total_ms - self.served_ms - pending), 1),
        }

    # -- the real request's side -------------------------------------------------------------

    def _related(self, doc: "Document", offset: int) -> list[tuple[Step, str]]:
        chain = self.chains.get(doc.uri)
        if chain is None:
            return []
        text = doc.text
        found = []
        for step in chain.steps:
            how = relation(text, offset, step)
            if how == "after" and step.done:
                extra = text[step.hyp_offset : offset]
                if step.blank and step.indent.startswith(extra):
                    pass  # auto-indent on a line the model leaves blank
                elif not (step.text or "").startswith(extra) and not (
                    step.line_complete and extra.startswith((step.text or "") + "\n")
                ):
                    how = None  # typed something else than the answer (or the next line)
            if how is not None:
                found.append((step, how))
        return found

    def drop_incompatible(self, doc: "Document", offset: int) -> None:
        """A real request: cancel this document's chain if the document can no longer reach
        any of its hypothetical states."""
        if doc.uri in self.chains and not self._related(doc, offset):
            self.cancel(doc.uri)

    def answers_nothing(self, doc: "Document", offset: int) -> bool:
        """Whether the model's answer here is already known to be a line break, i.e. no
        suggestion: at the end of a line the model ended (just accepted, or typed through),
        or on the new line after it, after the same indentation, when the speculation found
        no suggestion there."""
        text = doc.text
        for step, how in self._related(doc, offset):
            if how == "before" and step.hyp_offset - offset == 1:
                self.line_ends += 1
                return True
            if how == "after" and step.blank and text[step.hyp_offset : offset] == step.indent:
                if not step.served:
                    step.served = True
                    self.served_ms += step.model_ms
                self.blank_lines += 1
                return True
        return False

    def note_served(self, doc: "Document", offset: int, text: str) -> Step | None:
        """A type-through cache hit `text` at `offset`: the step it came from, if any."""
        whole = doc.text
        for step, how in self._related(doc, offset):
            if how == "after" and step.text and step.text == whole[step.hyp_offset : offset] + text:
                if not step.served:
                    step.served = True
                    self.served_ms += step.model_ms
                self.served += 1
                return step
        return None

    async def wait_for(
        self, doc: "Document", offset: int, cancel: threading.Event, timeout_s: float
    ) -> bool:
        """If a speculation for this spot is still running, promote it and wait for it.
        True when one finished (the caller looks in the cache again)."""
        pending = [s for s, how in self._related(doc, offset) if how == "after" and not s.done]
        if not pending:
            return False
        step = pending[0]
        self._promote_step(step)
        self.waited += 1
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        while not step.done and not cancel.is_set() and loop.time() < end:
            chain = self.chains.get(doc.uri)
            if chain is None or step not in chain.steps:
                return False
            await asyncio.sleep(0.005)
        return step.done

    def promote(self, suggestion_id: str) -> bool:
        """The editor's accept signal for a suggestion: its speculation goes first."""
        for chain in self.chains.values():
            if suggestion_id in chain.source_ids:
                for step in chain.steps:
                    if not step.done:
                        self._promote_step(step)
                        return True
                return False
        return False

    def _promote_step(self, step: Step) -> None:
        if step.promoted:
            return
        step.promoted = True
        if step.job is None:
            return  # not submitted yet: it will be, at the promoted priority
        job, cancel = step.job
        if job.running() or job.done():
            return  # started: restarting would throw its work away
        cancel.set()  # the queued background job; the same request goes in as urgent work
        self.promotions += 1
        self._submit(step, Priority.COMPLETION)  # promoted: the editor waits

    # -- starting and extending chains ---------------------------------------------------------

    def after_shown(
        self,
        doc: "Document",
        offset: int,
        text: str,
        suggestion_id: str,
        open_documents: Sequence["Document"] = (),
        next_line: str | None = None,
    ) -> None:
        """A suggestion `text` that ends at the model's line break was shown at `offset`:
        speculate the line after it (unless that state is already speculated). `next_line`:
        the model's next line from the same call (`split_next_line`), used instead of a model
        call where it fits. Never raises: the suggestion it follows is answered whatever
        happens here."""
        try:
            self._after_shown(doc, offset, text, suggestion_id, open_documents, next_line)
        except Exception:
            log.exception("speculation not started")

    def _after_shown(
        self,
        doc: "Document",
        offset: int,
        text: str,
        suggestion_id: str,
        open_documents: Sequence["Document"],
        next_line: str | None = None,
    ) -> None:
        depth = self.depth
        if depth <= 0 or not text or "\n" in text:
            return
        whole = doc.text
        if not rest_of_line_is_blank(whole, offset):
            return
        hyp_offset = offset + len(text) + 1
        window = hypothetical_window(whole, offset, text)
        suffix = whole[offset : offset + self.suffix_chars]
        chain = self.chains.get(doc.uri)
        if chain is not None and not chain.cancelled:
            for i, step in enumerate(chain.steps):
                if (step.hyp_offset, step.hyp_window, step.suffix) == (hyp_offset, window, suffix):
                    chain.source_ids.add(suggestion_id)
                    self._retire(chain, chain.steps[:i])
                    del chain.steps[:i]
                    chain.target = depth
                    if chain.task is None or chain.task.done():
                        chain.task = asyncio.get_running_loop().create_task(self._run(chain))
                    return
        self.cancel(doc.uri)
        line_start = whole.rfind("\n", 0, offset) + 1
        indent = auto_indent(whole[line_start:offset] + text, self._indent_unit(doc, offset))
        fork = doc.fork_with_insert(offset, text + "\n" + indent)
        step = Step(hyp_offset, window, suffix, fork, indent, given=next_line)
        self.chains_started += 1
        chain = Chain(
            doc.uri, [step], depth, {suggestion_id}, self.pipeline.settings, tuple(open_documents)
        )
        self.chains[doc.uri] = chain
        chain.task = asyncio.get_running_loop().create_task(
            self._run(chain), name=f"speculate {doc.uri}"
        )

    def cancel(self, uri: str) -> None:
        chain = self.chains.pop(uri, None)
        if chain is None:
            return
        chain.cancelled = True
        for step in chain.steps:
            self._stop(step)
        if chain.task is not None and not chain.task.done():
            chain.task.cancel()

    def forget(self, uri: str) -> None:
        self.cancel(uri)

    def reset(self) -> None:
        """Settings changed: speculations made under the old ones are worthless."""
        for uri in list(self.chains):
            self.cancel(uri)

    def _retire(self, chain: Chain, steps: list[Step]) -> None:
        for step in steps:
            self._stop(step)

    def _stop(self, step: Step) -> None:
        if step.job is not None:
            step.job[1].set()
        if step.outcome is not None and not step.outcome.done():
            step.outcome.cancel()

    # -- running steps -------------------------------------------------------------------------

    async def _run(self, chain: Chain) -> None:
        try:
            index = 0
            while index < len(chain.steps) and not chain.cancelled:
                step = chain.steps[index]
                if not step.done:
                    await self._compute(chain, step)
                if chain.cancelled or not step.done:
                    return
                index = chain.steps.index(step) + 1  # earlier steps may have been retired
                if (
                    index == len(chain.steps)
                    and len(chain.steps) < chain.target
                    and step.text
                    and step.line_complete
                    and not step.multiline
                ):
                    indent = auto_indent(step.text, self._indent_unit(step.doc, step.hyp_offset))
                    answer = step.text[len(step.indent) :]  # the step's doc holds its indent
                    chain.steps.append(
                        Step(
                            step.hyp_offset + len(step.text) + 1,
                            (step.hyp_window + step.text + "\n")[-(CHECK_CHARS + MARGIN_CHARS) :],
                            step.suffix,
                            step.doc.fork_with_insert(
                                step.hyp_offset + len(step.indent), answer + "\n" + indent
                            ),
                            indent,
                        )
                    )
        except asyncio.CancelledError:
            pass
        except Exception:  # speculation must never disturb real requests
            log.exception("speculation failed")
            self.cancel(chain.uri)

    async def _compute(self, chain: Chain, step: Step) -> None:
        pipeline = self.pipeline
        engine = pipeline.models.completion_engine()
        if engine is None:
            return
        fork = step.doc
        # Background work can wait for the whole (incremental) re-parse, so the context is
        # the one a request on the real document builds with its tree up to date.
        await fork.parse_cooperatively()
        if chain.cancelled:
            return
        at = step.hyp_offset + len(step.indent)
        position = fork.position_at(at)
        ctx, _mode, request = self._prompt_for(
            fork, position, engine, chain.settings, chain.open_documents
        )
        if chain.cancelled:
            return
        if ctx.in_string_or_comment and ctx.mid_line:
            step.text, step.blank = "", True
            return
        step.multiline = ctx.multiline
        given = given_answer(step.given, step.indent, ctx.multiline)
        if given is not None:  # the shown request's own next line: no model call
            self.same_call += 1
            self._finish(chain, step, ctx, at, given, "stop_rule", 0.0)
            return
        if step.given is not None:
            self.same_call_fallbacks += 1
            self.same_call_block_fallbacks += ctx.multiline
        step.request = request
        step.outcome = asyncio.get_running_loop().create_future()
        self.model_calls += 1
        # background work (any completion or hover preempts it) until promoted by an accept
        # signal or a waiting request
        self._submit(step, Priority.COMPLETION if step.promoted else Priority.BACKGROUND)
        job = await step.outcome
        result = job.result()
        if chain.cancelled or result.stop_reason == "cancelled":
            return
        self._finish(chain, step, ctx, at, result.text, result.stop_reason, result.model_ms)

    def _finish(
        self, chain: Chain, step: Step, ctx: Any, at: int, raw: str, reason: str, ms: float
    ) -> None:
        """The model's text `raw` at the step's cursor `at`, post-processed in the forked
        document's context `ctx` as any answer is, becomes the step's answer (and two
        type-through cache entries: after the indent, and at column 0)."""
        final = self._postprocess(raw, ctx) or ""
        step.model_ms = ms
        step.line_complete = not ctx.multiline and ends_line(raw, final, reason)
        step.blank = not final and reason != "cancelled"
        step.text = step.indent + final if final else ""
        if final and self.pipeline.settings == chain.settings:
            text = step.doc.text
            for where, answer in ((at, final), (step.hyp_offset, step.text)):
                self.pipeline.cache.store(
                    chain.uri, text[max(0, where - self.prefix_chars) : where], step.suffix, answer
                )

    @staticmethod
    def _indent_unit(doc: "Document", offset: int) -> str:
        from codet5_lsp.server.syntax import detect_indent_unit

        try:
            return detect_indent_unit(doc, doc.line_of(offset))
        except Exception:  # a document without usable indentation
            return "    "

    def _submit(self, step: Step, priority: Priority) -> None:
        engine = self.pipeline.models.completion_engine()
        if engine is None or step.outcome is None or step.outcome.done():
            return
        cancel = threading.Event()
        job = engine.submit(dataclasses.replace(step.request, priority=priority), cancel)
        step.job = (job, cancel)
        loop = asyncio.get_running_loop()

        def done(f: Future) -> None:  # on the engine's thread
            try:
                loop.call_soon_threadsafe(self._job_done, step, f)
            except RuntimeError:  # the loop is closed: the server is shutting down
                pass

        job.add_done_callback(done)

    def _job_done(self, step: Step, job: Future) -> None:
        if job.cancelled():
            return
        if job.exception() is None:
            self.total_ms += job.result().model_ms
        if step.job is None or step.job[0] is not job:
            return  # a job replaced by its promoted copy
        if step.outcome is not None and not step.outcome.done():
            step.outcome.set_result(job)


def split_next_line(raw: str, stop_reason: str) -> tuple[str, str, str | None]:
    """A same-call result (the "next_line" stop rule) as the two answers it holds: the
    first line's raw text and stop reason as a one-line request reports them (for
    `ends_line`), and the model's next line from column 0 (its indentation and line break
    included), or None where it did not finish one (out of tokens, or the model ended the
    text: the step then makes a separate call).

    One case differs from a one-line request: a first line cut by its own token budget on
    the token that holds its line break is "length" there and ended here, so speculation
    starts (with a separate call) where the one-line request would start none; the shown
    text is the same."""
    if stop_reason == "cancelled" or "\n" not in raw:
        return raw, stop_reason, None
    first, rest = raw.split("\n", 1)
    if stop_reason != "stop_rule" or "\n" not in rest:
        return first + "\n", "stop_rule", None
    return first + "\n", "stop_rule", rest[: rest.index("\n") + 1]


def given_answer(given: str | None, indent: str, multiline: bool) -> str | None:
    """The raw answer at a step's cursor (after the editor's auto-indent `indent`) that the
    same call's next line `given` provides, or None (a model call instead): none given; the
    forked cursor asks for a block (a one-line answer is not what a call there returns); or
    the model's line does not start with the editor's indentation (a dedent, a blank line at
    column 0: the model's line is not one the editor's cursor can continue)."""
    if given is None or multiline or not given.startswith(indent):
        return None
    return given[len(indent) :]


def ends_line(raw: str, final: str, stop_reason: str) -> bool:
    """Whether a suggestion `final` is the model's own line, ended by its line break: the
    stop rule fired at a line end and post-processing kept the line (its indentation and
    trailing spaces aside: the filters cap an indentation deeper than the block's). Only then
    is "the model's next line" the line after it, and its answer at the line's end the line
    break."""
    return (
        stop_reason == "stop_rule"
        and bool(final)
        and "\n" not in final
        and "\n" in raw
        and raw.split("\n", 1)[0].strip() == final.strip()
    )


BLOCK_OPENERS = (":", "{", "(", "[")


def auto_indent(line: str, unit: str = "    ") -> str:
    """The indentation an editor inserts after Enter at the end of `line`: the line's own,
    one unit deeper after a block opener or an open bracket (VS Code's rules for Python
    and C-like languages; Neovim's smartindent does the same for these)."""
    indent = line[: len(line) - len(line.lstrip(" \t"))]
    return indent + unit if line.rstrip().endswith(BLOCK_OPENERS) else indent
