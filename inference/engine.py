"""The engine: the one place that runs CTranslate2 models, on its own worker thread.

Requests are queued by priority (inference/scheduler.py: completions before background
summaries) and run on the engine's worker thread, never on the LSP message loop. A request
carries a cancel event; the per-token callback checks it, so a cancelled or superseded request
stops within one decoding step. Background requests (`Priority.BACKGROUND`) are preempted the
same way when a more urgent request arrives, and queued again. Compatible queued requests (same
mode, same forced-prefix length) are run as one batch; healed and n-best requests run alone.

Devices and compute types live in inference/devices.py, the probe that decides whether T5
prefixes may go through in one pass in inference/prefix_probe.py. `load_engine` is how the
server gets an engine for `--model`.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import ctranslate2

from codet5_lsp.inference import prefix_probe
from codet5_lsp.inference.devices import default_compute_type, resolve_device
from codet5_lsp.inference.engine_api import EngineRequests
from codet5_lsp.inference.generation import (
    GenerationRequest,
    GenerationResult,
    Priority,
    StopReason,
)
from codet5_lsp.inference.healing import HealingPolicy, TokenHealer, consistent, covers
from codet5_lsp.inference.models import (
    ModelError,
    ModelFiles,
    check_runtime,
    resolve_model,
    storage_quantization,
)
from codet5_lsp.inference.prompts import StopRule, line_stop_rule
from codet5_lsp.inference.scheduler import URGENT_WORK, Job, JobQueue, wait_for_no_urgent_work
from codet5_lsp.inference.tokenizer import CodeTokenizer

log = logging.getLogger(__name__)

MAX_BATCH = 8


class EngineError(RuntimeError):
    """Generation failed (model error, out of memory); the server answers with no suggestion."""


class CompletionEngine(EngineRequests):
    """Loads one converted model and runs generation requests on its own worker thread."""

    def __init__(
        self,
        model: ModelFiles,
        *,
        device: str = "auto",
        compute_type: str = "auto",
        intra_threads: int = 0,
        max_batch: int = MAX_BATCH,
    ):
        self.model = model
        self.meta = model.metadata
        self.device = resolve_device(device)
        self.compute_type = (
            default_compute_type(self.device) if compute_type == "auto" else compute_type
        )
        self.max_batch = max_batch
        self.tokenizer = CodeTokenizer(model.tokenizer_file)
        self.healer = TokenHealer(self.tokenizer)
        self.healing_policy = HealingPolicy.for_device(self.device)
        if intra_threads <= 0:
            # All cores up to ctranslate2's default of 4: on 2 cores a second thread makes a
            # 220m-shaped completion faster when idle and costs little with another process
            # spinning on one core (bench/results/prefix-cost-cpu.md). Background work never
            # runs beside urgent work (URGENT_WORK), so two engines do not oversubscribe.
            intra_threads = max(1, min(4, os.cpu_count() or 1))
        path = str(model.folder)
        # A model converted without the rewrite for a fixed ctranslate2 (native_prefix), now
        # loaded by a build that is not fixed: its one pass would be wrong, so feed the prefix
        # step by step (exact, slower).
        self._one_pass_ok = self.meta.parallel_prefix and (
            not self.meta.native_prefix or prefix_probe.native_t5_prefix_is_exact()
        )
        if self.meta.parallel_prefix and not self._one_pass_ok:
            log.warning(
                "%s was converted for a ctranslate2 that runs T5 prefixes in one exact "
                "pass, but ctranslate2 %s does not: using the exact step-by-step path "
                "(slow); convert the model again",
                path,
                ctranslate2.__version__,
            )
        # ctranslate2 objects (untyped): a Generator for CodeGen, a Translator for T5.
        self._generator: Any = None
        self._translator: Any = None
        try:
            if self.meta.family == "codegen":
                self._generator = ctranslate2.Generator(
                    path,
                    device=self.device,
                    compute_type=self.compute_type,
                    intra_threads=intra_threads,
                )
                self._translator = None
            else:
                self._translator = ctranslate2.Translator(
                    path,
                    device=self.device,
                    compute_type=self.compute_type,
                    intra_threads=intra_threads,
                )
                self._generator = None
        except Exception as exc:
            raise ModelError(
                f"cannot load model {path} on {self.device}/{self.compute_type}: {exc}"
            ) from exc
        self._queue = JobQueue()
        self._closed = False
        # The running batch's priority (None when idle) and the event that preempts it.
        self._state_lock = threading.Lock()
        self._running_priority: int | None = None
        self._preempt = threading.Event()
        self.preemptions = 0
        URGENT_WORK.engines.add(self)
        self._worker = threading.Thread(target=self._run, name="codet5-engine", daemon=True)
        self._worker.start()

    # -- public API ------------------------------------------------------------------------

    def submit(self, request: GenerationRequest, cancel: threading.Event | None = None) -> Future:
        """Queue a request; the future resolves to a GenerationResult or raises EngineError."""
        if self._closed:
            raise EngineError("engine is closed")
        return self._queue.submit(request, cancel or threading.Event()).future

    def preempt_background_for(self, priority: int) -> None:
        """Stop the running batch at its next token if it is background work less urgent
        than `priority` (it is queued again)."""
        with self._state_lock:
            running = self._running_priority
            if running is not None and Priority.is_background(running) and priority < running:
                self._preempt.set()

    def generate(
        self, request: GenerationRequest, cancel: threading.Event | None = None
    ) -> GenerationResult:
        """Blocking convenience for scripts and tests (still runs on the worker thread)."""
        return self.submit(request, cancel).result()

    def close(self) -> None:
        """Stop the worker and free the model here, in the caller's thread.

        ctranslate2 joins its own threads when a model is destroyed; destroying it from one of
        those threads (say, through the last reference held by a token callback) aborts the
        process ("Resource deadlock avoided"). So the models are released explicitly here, and
        callbacks never hold a reference to the engine.
        """
        if self._closed:
            return
        self._closed = True
        self._queue.stop()
        self._worker.join(timeout=30)
        while True:  # whatever is still queued will never run: say so to its waiters
            job = self._queue.get_nowait()
            if job is None:
                break
            if job.request is not None and not job.future.done():
                if not job.future.cancel():  # already running (a preempted job)
                    job.future.set_exception(EngineError("engine closed"))
        self._translator = None
        self._generator = None

    @property
    def urgent_work_in_flight(self) -> bool:
        """Whether a completion or hover is queued or running in any engine of the process."""
        return URGENT_WORK.busy

    @property
    def description(self) -> str:
        return f"{self.meta.source} ({self.device}, {self.compute_type})"

    @property
    def healthy(self) -> bool:
        """Always: a local engine that loaded keeps serving (errors fail single requests)."""
        return not self._closed

    # -- worker ----------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job.request is None:
                return
            batch = [job] + self._compatible_waiting(job)
            # A preempted job comes back with its future already running.
            live = [
                j
                for j in batch
                if not j.cancel.is_set()
                and (j.future.running() or j.future.set_running_or_notify_cancel())
            ]
            for j in batch:
                if j not in live and not j.future.done():
                    j.future.set_result(GenerationResult([], "", "cancelled", 0.0))
            if not live:
                continue
            if Priority.is_background(job.priority) and not self._wait_for_no_urgent_work():
                for j in live:  # urgent work elsewhere: look again after it
                    self._queue.put(j)
                continue
            with self._state_lock:
                self._running_priority = job.priority
                self._preempt.clear()
                # Urgent work that arrived (here or in another engine) since the wait above:
                # its preempt call may have found nothing running yet.
                if Priority.is_background(job.priority) and (
                    URGENT_WORK.busy or self._queue.more_urgent_waiting(job.priority)
                ):
                    self._preempt.set()
            try:
                results = self._generate_batch(
                    [j.request for j in live if j.request], [j.cancel for j in live], self._preempt
                )
            except Exception as exc:  # engine errors must never kill the worker
                log.exception("generation failed")
                err = EngineError(f"generation failed: {type(exc).__name__}: {exc}")
                for j in live:
                    j.future.set_exception(err)
                continue
            finally:
                with self._state_lock:
                    self._running_priority = None
            for j, r in zip(live, results):
                if r is None:  # preempted: run it again after the more urgent work
                    self.preemptions += 1
                    self._queue.put(j)
                else:
                    j.future.set_result(r)

    def _wait_for_no_urgent_work(self) -> bool:
        """Background jobs wait while any engine has urgent work; False: look at the queue
        again (something arrived here, or the engine is closing)."""
        return wait_for_no_urgent_work(
            lambda: self._closed or self._queue.more_urgent_waiting(Priority.BACKGROUND)
        )

    def _compatible_waiting(self, first: Job) -> list[Job]:
        """Queued jobs that can share a batch with `first` (the others stay queued)."""
        return self._queue.take_compatible(first, self.max_batch - 1, self._batchable)

    def _batchable(self, r: GenerationRequest, f: GenerationRequest) -> bool:
        # One-pass prefixes (return_alternatives) are not merged: ctranslate2 decodes such
        # a batch one example after another (no gain) and reports every example's tokens
        # to the callback as batch 0, so stop rules would cut the wrong request.
        return (
            r.mode == f.mode
            and len(r.decoder_prefix) == len(f.decoder_prefix)
            and r.priority == f.priority
            and _plain(r)
            and _plain(f)
            and not self._one_pass(f)
        )

    def _generate_batch(
        self,
        requests: list[GenerationRequest],
        cancels: list[threading.Event],
        preempt: threading.Event | None = None,
    ) -> list[GenerationResult | None]:
        """Run one batch; a None result means the request was preempted (run it again).
        A healed or n-best request runs alone (`_compatible_waiting`), by `_generate_healed`."""
        if len(requests) == 1 and not _plain(requests[0]):
            return [self._generate_healed(requests[0], cancels[0], preempt)]
        start = time.perf_counter()
        prefix_len = len(requests[0].decoder_prefix)
        max_new = max(r.max_new_tokens for r in requests)
        generated: list[list[str]] = [[] for _ in requests]
        stopped = [""] * len(requests)
        # With the one-pass prefix (return_alternatives), callbacks start after the first new
        # token; with the step-by-step prefix, they include one step per prefix token.
        one_pass = self._one_pass(requests[0])
        skip = 0 if (one_pass or self._generator is not None) else prefix_len
        decode = self.tokenizer.decode_tokens  # the callback must not reference the engine

        def on_token(step) -> bool:
            i = step.batch_id
            if cancels[i].is_set():
                stopped[i] = "cancelled"
                return True
            if preempt is not None and preempt.is_set():
                stopped[i] = "preempted"
                return True
            if step.step < skip:
                return False
            generated[i].append(step.token)
            rule = requests[i].stop_rule
            if len(generated[i]) >= requests[i].max_new_tokens:
                stopped[i] = stopped[i] or "length"
                return True
            if rule is not None and rule(decode(generated[i])):
                stopped[i] = "stop_rule"
                return True
            return False

        if self._generator is not None:
            outputs = self._generator.generate_batch(
                [r.decoder_prefix for r in requests],
                max_length=max_new,
                sampling_topk=1,
                beam_size=1,
                include_prompt_in_result=False,
                callback=on_token,
                end_token=list({self.meta.eos_token, *requests[0].end_tokens}),
            )
            sequences = [o.sequences[0] for o in outputs]
        else:
            kwargs = dict(
                beam_size=1,
                max_input_length=0,
                callback=on_token,
                max_decoding_length=prefix_len + max_new,
                end_token=list({self.meta.eos_token, *requests[0].end_tokens}),
            )
            if prefix_len:
                kwargs["target_prefix"] = [r.decoder_prefix for r in requests]
                if one_pass:
                    kwargs.update(return_alternatives=True, num_hypotheses=1)
            outputs = self._translator.translate_batch(
                [r.encoder_tokens for r in requests], **kwargs
            )
            sequences = [o.hypotheses[0][prefix_len:] for o in outputs]
        elapsed = (time.perf_counter() - start) * 1000
        results: list[GenerationResult | None] = []
        for i, (req, seq) in enumerate(zip(requests, sequences)):
            seq = seq[: req.max_new_tokens]
            reason = stopped[i] or ("length" if len(seq) >= req.max_new_tokens else "eos")
            if reason not in ("cancelled", "preempted"):
                first_line = self._first_line_cut(req, seq)
                if first_line is not None:
                    seq, reason = first_line
            if reason == "preempted":
                results.append(None)
                continue
            if reason == "cancelled":
                results.append(GenerationResult([], "", "cancelled", elapsed, prefix_len))
                continue
            results.append(
                GenerationResult(
                    list(seq),
                    self.tokenizer.decode_tokens(list(seq)),
                    cast(StopReason, reason),
                    elapsed,
                    prefix_len,
                    extra={"batch_size": len(requests)},
                )
            )
        return results

    # -- token healing and n-best ----------------------------------------------------------

    def _generate_healed(
        self, request: GenerationRequest, cancel: threading.Event, preempt: threading.Event | None
    ) -> GenerationResult | None:
        """Constrained greedy decoding for a healed prompt, and n-best alternatives.

        Exactly what greedy decoding gives when, until the backed-off text is reproduced, each
        step takes the best token *consistent* with it (`healing.consistent`), and afterwards
        the best token. The cheapest exact way found with ctranslate2 4.8.5 (no logits
        processors; `return_logits_vocab` is empty in the one-pass prefix path):

        1. *First pass* (unless the policy constrains word fragments first): the backed-off
           prompt in one pass, with `return_alternatives` giving the top-K first tokens, each
           continued greedily in one batch. Alternatives come best first, so the first one
           whose first token is consistent holds the constrained choice; when its text covers
           the backed-off text, every later token was unconstrained: exact in one pass.
        2. Otherwise, *constrained steps*: one new token with every inconsistent token
           suppressed (`suppress_sequences`, harmless for a single step), repeated while the
           chosen token covers only part of the text; then one pass continues from there.

        Costs per device: bench/results/quality-healing.md and HealingPolicy.
        """
        start = time.perf_counter()
        heal = list(request.heal_tokens)
        removed = "".join(heal)
        removed_text = self.tokenizer.decode_tokens(heal) if heal else ""
        prefix = list(request.decoder_prefix)
        wanted = max(1, request.alternatives)
        policy = self.healing_policy
        forced: list[str] = []
        passes = 0
        if not removed or not policy.constrain_first(removed):
            width = max(wanted, policy.first_pass_alternatives if removed else 1)
            hyps, stop = self._decode_call(
                request, prefix, width, request.max_new_tokens, cancel, preempt
            )
            passes += 1
            if stop:
                return self._stopped(stop, start, len(prefix))
            ranked = [h for h in hyps if h and (not removed or consistent(h[0], removed))]
            if not removed or (ranked and covers("".join(ranked[0]), removed)):
                return self._healed_result(request, [], ranked, removed_text, start, passes)
            if ranked:  # consistent but partial: its leading consistent tokens are exact
                done = ""
                for token in ranked[0]:
                    if covers(done + token, removed) or not removed.startswith(done + token):
                        break
                    forced.append(token)
                    done += token
        rest = removed[len("".join(forced)) :]
        while rest:
            if len(forced) >= MAX_CONSTRAINED_STEPS or len(forced) >= request.max_new_tokens:
                return GenerationResult([], "", "empty", _ms_since(start), len(prefix))
            chosen, stop = self._constrained_token(request, prefix + forced, rest, cancel, preempt)
            passes += 1
            if stop:
                return self._stopped(stop, start, len(prefix))
            if chosen is None or not consistent(chosen, rest):
                return GenerationResult([], "", "empty", _ms_since(start), len(prefix))
            forced.append(chosen)
            rest = "" if covers(chosen, rest) else rest[len(chosen) :]
        hyps, stop = self._decode_call(
            request, prefix + forced, wanted, request.max_new_tokens - len(forced), cancel, preempt
        )
        passes += 1
        if stop:
            return self._stopped(stop, start, len(prefix))
        return self._healed_result(request, forced, hyps, removed_text, start, passes)

    def _stopped(self, stop: str, start: float, prefix_len: int) -> GenerationResult | None:
        if stop == "preempted":
            return None
        return GenerationResult([], "", "cancelled", _ms_since(start), prefix_len)

    def _healed_result(
        self,
        request: GenerationRequest,
        forced: list[str],
        hyps: list[list[str]],
        removed_text: str,
        start: float,
        passes: int,
    ) -> GenerationResult:
        """The best hypothesis as the result and the other distinct ones as alternatives, each
        cut where the stop rule fires and with the healed text removed from its front."""
        finals: list[tuple[list[str], str, str]] = []
        seen: set[str] = set()
        line_request = _line_request(request)
        for hyp in hyps:
            tokens, reason = self._cut(request, forced + hyp)
            text = self.tokenizer.decode_tokens(tokens)
            # Alternatives are told apart by what is shown: with a "next_line" rule, the
            # first line as a "line" request cuts it (the same alternatives either way).
            shown = text
            if line_request is not None:
                shown = self.tokenizer.decode_tokens(self._cut(line_request, forced + hyp)[0])
            if not shown.startswith(removed_text):
                continue  # an alternative that does not reproduce the typed text
            text, shown = text[len(removed_text) :], shown[len(removed_text) :]
            if shown in seen:
                continue
            seen.add(shown)
            finals.append((tokens, text, reason))
            if len(finals) >= max(1, request.alternatives):
                break
        elapsed = _ms_since(start)
        if not finals:
            return GenerationResult([], "", "empty", elapsed, len(request.decoder_prefix))
        tokens, text, reason = finals[0]
        return GenerationResult(
            tokens,
            text,
            cast(StopReason, reason),
            elapsed,
            len(request.decoder_prefix),
            extra={"batch_size": 1, "passes": passes},
            alternatives=[t for _, t, _ in finals[1:]],
            healed=removed_text,
        )

    def _cut(self, request: GenerationRequest, tokens: list[str]) -> tuple[list[str], str]:
        """Tokens up to where generation would have stopped, and why."""
        first_line = self._first_line_cut(request, tokens)
        if first_line is not None:
            return first_line
        specials = self.healer.special
        for i, token in enumerate(tokens):
            if token in specials:  # eos or an end token (returned with return_end_token)
                return tokens[:i], "eos"
            if i + 1 >= request.max_new_tokens:
                return tokens[: i + 1], "length"
            rule = request.stop_rule
            if rule is not None and rule(self.tokenizer.decode_tokens(tokens[: i + 1])):
                return tokens[: i + 1], "stop_rule"
        return tokens, "eos"

    def _first_line_cut(
        self, request: GenerationRequest, tokens: list[str]
    ) -> tuple[list[str], str] | None:
        """With a "next_line" rule: a first line that ran past its own budget is cut there,
        as a "line" request with that budget cuts it ("length"), so the shown line does not
        depend on asking for the next one too; None otherwise (the first line ended at a
        line break or at eos within its budget, where the "next_line" cut agrees)."""
        line_request = _line_request(request)
        if line_request is None:
            return None
        cut, reason = self._cut(line_request, tokens)
        return (cut, reason) if reason == "length" else None

    def _constrained_token(
        self,
        request: GenerationRequest,
        prefix: list[str],
        rest: str,
        cancel: threading.Event,
        preempt: threading.Event | None,
    ) -> tuple[str | None, str]:
        """The best next token consistent with `rest` (one step, the others suppressed)."""
        suppress = self.healer.disallowed(rest)
        if len(suppress) == self.healer.size:  # no token can reproduce `rest`
            return None, ""
        hyps, stop = self._decode_call(request, prefix, 1, 1, cancel, preempt, suppress=suppress)
        if stop:
            return None, stop
        return (hyps[0][0] if hyps and hyps[0] else None), ""

    def _decode_call(
        self,
        request: GenerationRequest,
        prefix: list[str],
        width: int,
        max_new: int,
        cancel: threading.Event,
        preempt: threading.Event | None,
        suppress: list[str] | None = None,
    ) -> tuple[list[list[str]], str]:
        """One ctranslate2 call continuing `prefix` greedily: the generated tokens of `width`
        alternatives at the first free position (best first token first), and "" or why it
        stopped early ("cancelled", "preempted").

        Each alternative ends on its own at eos or max_new; the call stops once every
        alternative's stop rule has fired. (Line breaks cannot be end tokens: ctranslate2
        never expands an end token as an alternative, and a line break right after the
        prompt is often the model's answer.) The callback identifies alternatives by their
        order within a step, the order ctranslate2 keeps while alternatives finish (its
        `batch_id` is not reliable with return_alternatives); it does not see an
        alternative's first token, so a rule may fire a line late: the caller cuts exactly
        (`_cut`)."""
        rule = request.stop_rule
        ends = [self.meta.eos_token, *request.end_tokens]
        if self._generator is not None:
            alternatives_mode = width > 1
        elif len(prefix) > 1 and not self._one_pass_ok:
            width, alternatives_mode = 1, False  # one-pass prefix inexact: step by step
        else:
            alternatives_mode = True  # the prefix in one exact pass (or at most one token)
        skip = len(prefix) if (self._translator is not None and not alternatives_mode) else 0
        decode = self.tokenizer.decode_tokens  # the callback must not reference the engine
        seen: list[list[str]] = [[] for _ in range(width)]
        done = [False] * width
        track: dict[str, Any] = {
            "step": -1,
            "index": 0,
            "alive": list(range(width)),
            "finished": [],
        }
        stopped = [""]

        def on_token(step) -> bool:
            if cancel.is_set():
                stopped[0] = "cancelled"
                return True
            if preempt is not None and preempt.is_set():
                stopped[0] = "preempted"
                return True
            if step.step < skip or rule is None:
                return False
            if step.step != track["step"]:
                track["alive"] = [a for a in track["alive"] if a not in track["finished"]]
                track["finished"], track["index"], track["step"] = [], 0, step.step
            if track["index"] >= len(track["alive"]):
                return False  # callbacks not in the expected order: never stop on a guess
            h = track["alive"][track["index"]]
            track["index"] += 1
            seen[h].append(step.token)
            if step.is_last:
                track["finished"].append(h)
                done[h] = True
            elif not done[h] and rule(decode(seen[h])):
                done[h] = True
            return all(done[a] for a in track["alive"])

        if self._generator is not None:
            kwargs: dict = dict(
                max_length=max_new,
                sampling_topk=1,
                beam_size=1,
                include_prompt_in_result=False,
                callback=on_token,
                end_token=ends,
                return_end_token=True,
            )
            if width > 1:
                # With alternatives the Generator's max_length counts the prompt but one
                # token (measured, ctranslate2 4.8.5).
                kwargs.update(
                    return_alternatives=True,
                    num_hypotheses=width,
                    max_length=max_new + max(len(prefix) - 1, 0),
                )
            if suppress:
                kwargs["suppress_sequences"] = [[t] for t in suppress]
            outputs = self._generator.generate_batch([prefix], **kwargs)
            hyps = [list(seq) for seq in outputs[0].sequences]
        else:
            # min_decoding_length=0: the default (1) forbids eos as the first new token,
            # which greedy decoding (and so the reference) allows.
            kwargs = dict(
                beam_size=1,
                max_input_length=0,
                callback=on_token,
                max_decoding_length=len(prefix) + max_new,
                min_decoding_length=0,
                end_token=ends,
                return_end_token=True,
            )
            if prefix:
                kwargs["target_prefix"] = [prefix]
            if alternatives_mode:
                kwargs.update(return_alternatives=True, num_hypotheses=width)
            if suppress:
                kwargs["suppress_sequences"] = [[t] for t in suppress]
            outputs = self._translator.translate_batch([request.encoder_tokens], **kwargs)
            hyps = [list(h[len(prefix) :]) for h in outputs[0].hypotheses]
        return hyps, stopped[0]

    def _one_pass(self, request: GenerationRequest) -> bool:
        """Whether the forced prefix can go through the decoder in one exact pass.

        Only for T5 models converted with the parallel-prefix rewrite (see
        docs/ctranslate2-t5-prefix/), or without it for a ctranslate2 build that passes
        `native_t5_prefix_is_exact`; plain conversions use the exact step-by-step path.
        """
        return (
            self._translator is not None and len(request.decoder_prefix) > 1 and self._one_pass_ok
        )


# Constrained steps before giving up on a prompt tail the model will not reproduce.
MAX_CONSTRAINED_STEPS = 8


def _line_request(request: GenerationRequest) -> GenerationRequest | None:
    """For a request with a "next_line" stop rule (prompts.StopRule), the "line" request
    its first line must agree with: the first line's own budget, plus the healed tokens a
    line request also gets (prompts.build_completion_request); else None."""
    rule = request.stop_rule
    if not isinstance(rule, StopRule) or rule.kind != "next_line" or rule.line_tokens <= 0:
        return None
    return replace(
        request,
        stop_rule=line_stop_rule,
        max_new_tokens=rule.line_tokens + len(request.heal_tokens),
    )


def _plain(request: GenerationRequest) -> bool:
    """A request the batched path runs as it is (no healing, one suggestion)."""
    return not request.heal_tokens and request.alternatives <= 1


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def load_engine(
    model: str,
    *,
    device: str = "auto",
    compute_type: str = "auto",
    revision: str | None = None,
    cache_dir: Path | None = None,
    offline: bool = False,
    intra_threads: int = 0,
    log: Callable[[str], None] = lambda _msg: None,
) -> CompletionEngine:
    """The engine for `--model` (a hub id, a checkpoint folder or a converted folder):
    resolved, downloaded and converted as needed, stored in the type it will run in
    (`models.storage_quantization`), and loaded.

    Device and compute type are checked first: nothing is downloaded or converted for a GPU
    that is not there or a type the device cannot run. A conversion made for this call is
    removed again when loading it fails, so a failed attempt leaves nothing in the cache."""
    try:
        device, compute = check_runtime(device, compute_type)
    except ModelError as exc:
        raise ModelError(f"cannot load {model}: {exc}") from None
    files = resolve_model(
        model,
        quantization=storage_quantization(compute),
        revision=revision,
        cache_dir=cache_dir,
        offline=offline,
        log=log,
    )
    try:
        return CompletionEngine(
            files, device=device, compute_type=compute, intra_threads=intra_threads
        )
    except Exception:
        if files.fresh:
            shutil.rmtree(files.folder, ignore_errors=True)
        raise
