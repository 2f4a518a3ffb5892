"""The engine: the one place that owns CTranslate2 objects and the threads that call them.

Requests are queued by priority (completions before background summaries) and run on the
engine's worker thread, never on the LSP message loop. A request carries a cancel event; the
per-token callback checks it, so a cancelled or superseded request stops within one decoding
step. Background requests (priority >= BACKGROUND_PRIORITY) are preempted the same way when a
more urgent request arrives, and queued again. Compatible queued requests (same mode, same
forced-prefix length) are run as one batch.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import queue
import random
import threading
import time
import weakref
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import ctranslate2

from codet5_lsp.inference.generation import (BACKGROUND_PRIORITY, GenerationRequest,
                                              GenerationResult)
from codet5_lsp.inference.healing import HealingPolicy, TokenHealer, consistent, covers
from codet5_lsp.inference.models import ModelError, ModelFiles
from codet5_lsp.inference.tokenizer import CodeTokenizer

log = logging.getLogger(__name__)

MAX_BATCH = 8


class EngineError(RuntimeError):
    """Generation failed (model error, out of memory); the server answers with no suggestion."""


def cuda_device_count() -> int:
    try:
        return ctranslate2.get_cuda_device_count()
    except Exception:  # pragma: no cover - broken CUDA install
        return 0


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if cuda_device_count() > 0 else "cpu"
    return device


def supported_compute_types(device: str) -> set[str]:
    try:
        return set(ctranslate2.get_supported_compute_types(device))
    except Exception:
        return set()


def default_compute_type(device: str) -> str:
    """Fastest exact-enough type per device, from our measurements (docs/performance.md).

    CPU: int8 (int8 matmuls; several times faster than float32 on 2 cores). CUDA: bfloat16
    where supported, because T5 in float16 can overflow to NaN (ctranslate2 #1074); else
    float32. int8 on an H100 is slower than 16-bit at batch 1.
    """
    if device == "cpu":
        return "int8"
    types = supported_compute_types(device)
    if "bfloat16" in types:
        return "bfloat16"
    return "float32"


def ctranslate2_info() -> dict[str, object]:
    return {
        "ctranslate2": ctranslate2.__version__,
        "cuda_devices": cuda_device_count(),
        "cpu_compute_types": sorted(supported_compute_types("cpu")),
        "cuda_compute_types": sorted(supported_compute_types("cuda")) if cuda_device_count() else [],
    }


PROBE_PREFIX_LENGTHS = (4, 6, 9, 12, 14, 17, 20, 25, 31, 40)
PROBE_NEW_TOKENS = 6


def one_pass_prefix_mismatches(folder: Path, lengths: tuple[int, ...] = PROBE_PREFIX_LENGTHS,
                                new_tokens: int = PROBE_NEW_TOKENS, seed: int = 1) -> int:
    """For how many random prefixes the T5 model in `folder` continues differently when a forced
    decoder prefix goes through in one pass (`return_alternatives`) than when it is fed one
    token per step (ctranslate2's exact path). Tokens only: the two paths report scores on
    different scales."""
    from codet5_lsp.inference.prefix_probe import PROBE_ENCODER_INPUT, PROBE_VOCAB, probe_tokens

    translator = ctranslate2.Translator(str(folder), device="cpu", intra_threads=1)
    rng = random.Random(seed)
    mismatches = 0
    try:
        for length in lengths:
            prefix = probe_tokens([rng.randrange(3, PROBE_VOCAB) for _ in range(length)])
            total = length + new_tokens
            common = dict(target_prefix=[prefix], beam_size=1, max_decoding_length=total,
                          min_decoding_length=total)
            steps = translator.translate_batch([PROBE_ENCODER_INPUT], **common)[0]
            one_pass = translator.translate_batch([PROBE_ENCODER_INPUT], return_alternatives=True,
                                                  num_hypotheses=1, **common)[0]
            mismatches += steps.hypotheses[0] != one_pass.hypotheses[0]
        return mismatches
    finally:
        translator.unload_model()
        del translator


_PROBE_SCRIPT = """
import sys
sys.modules["torch"] = None  # ctranslate2.specs imports torch when it can: 1.5 s and 300 MB
import tempfile
from pathlib import Path
from codet5_lsp.inference.engine import one_pass_prefix_mismatches
from codet5_lsp.inference.prefix_probe import build_probe_model
with tempfile.TemporaryDirectory(prefix="codet5-prefix-probe-") as tmp:
    print(one_pass_prefix_mismatches(build_probe_model(Path(tmp) / "model")))
"""


def _ctranslate2_fingerprint() -> str:
    """Identifies the installed ctranslate2 build (a patched one may keep the version)."""
    import hashlib

    folder = Path(ctranslate2.__file__).resolve().parent
    libraries = set(folder.rglob("*.so*"))
    try:  # the loaded libctranslate2 may live elsewhere (a wheel's .libs, a source build)
        with open("/proc/self/maps") as maps:
            libraries.update(Path(line.split()[-1]) for line in maps
                             if "libctranslate2" in line.rsplit("/", 1)[-1])
    except OSError:
        pass
    h = hashlib.sha256(f"{ctranslate2.__version__}\0{folder}".encode())
    for path in sorted(libraries):
        try:
            st = path.stat()
        except OSError:
            continue
        h.update(f"{path}\0{st.st_size}\0{int(st.st_mtime)}\n".encode())
    return h.hexdigest()[:16]


@functools.lru_cache(maxsize=1)
def native_t5_prefix_is_exact() -> bool:
    """Whether the installed ctranslate2 itself runs a T5 decoder prefix in one exact pass.

    Stock ctranslate2 4.8.5 does not (docs/ctranslate2-t5-prefix/), so T5 models are converted
    with our rewrite (`t5_prefix_fix`), which costs 2.5-3x on the prefix pass. A build with the
    one-line upstream patch, or a release with the fix, passes this probe; conversions then skip
    the rewrite and run at ctranslate2's full speed.

    The probe (a tiny random T5 run both ways, `prefix_probe`) runs once per ctranslate2 build,
    in a subprocess where torch cannot be imported (building specs would otherwise load torch
    into the server: 1.5 s and hundreds of MB), and its answer is kept in the user cache."""
    import json
    import subprocess
    import sys

    import platformdirs

    record = (Path(platformdirs.user_cache_dir("codet5-lsp"))
              / f"ctranslate2-prefix-probe-{_ctranslate2_fingerprint()}.json")
    try:
        return bool(json.loads(record.read_text())["one_pass_exact"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:
        done = subprocess.run([sys.executable, "-c", _PROBE_SCRIPT], capture_output=True,
                              text=True, timeout=120, env=dict(os.environ,
                                                               PYTHONPATH=os.pathsep.join(sys.path)))
        mismatches = int(done.stdout.strip().splitlines()[-1])
    except Exception:  # a probe that cannot run proves nothing: keep the safe rewrite
        log.warning("ctranslate2 prefix probe failed; using the T5 prefix rewrite",
                    exc_info=True)
        return False
    exact = mismatches == 0
    try:
        record.parent.mkdir(parents=True, exist_ok=True)
        tmp = record.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"one_pass_exact": exact, "mismatches": mismatches,
                                   "ctranslate2": ctranslate2.__version__}) + "\n")
        os.replace(tmp, record)
    except OSError:
        pass
    return exact


class _UrgentWork:
    """Process-wide count of urgent (non-background) requests queued or running, in every
    engine. The completion and summary models are often two engines (two worker threads);
    background work in one must yield to a completion in the other too, so a background job
    starts only when this count is zero, and a new urgent request preempts background jobs
    running anywhere."""

    def __init__(self) -> None:
        self._count = 0
        self._changed = threading.Condition()
        self.engines: weakref.WeakSet["CompletionEngine"] = weakref.WeakSet()

    def begin(self, priority: int) -> None:
        with self._changed:
            self._count += 1
        for engine in list(self.engines):
            engine._preempt_background_for(priority)

    def end(self) -> None:
        with self._changed:
            self._count -= 1
            self._changed.notify_all()

    @property
    def busy(self) -> bool:
        return self._count > 0

    def wait_until_idle(self, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self._count == 0, timeout)


URGENT_WORK = _UrgentWork()


@dataclass(order=True)
class _Job:
    priority: int
    seq: int
    request: GenerationRequest = field(compare=False)
    cancel: threading.Event = field(compare=False)
    future: Future = field(compare=False)


class CompletionEngine:
    """Loads one converted model and runs generation requests on its own worker thread."""

    def __init__(self, model: ModelFiles, *, device: str = "auto", compute_type: str = "auto",
                 intra_threads: int = 0, max_batch: int = MAX_BATCH):
        self.model = model
        self.meta = model.metadata
        self.device = resolve_device(device)
        self.compute_type = default_compute_type(self.device) if compute_type == "auto" else compute_type
        self.max_batch = max_batch
        self.tokenizer = CodeTokenizer(model.tokenizer_file)
        self.healer = TokenHealer(self.tokenizer)
        self.healing_policy = HealingPolicy.for_device(self.device)
        if intra_threads <= 0:
            # All cores up to ctranslate2's default of 4: on 2 cores a second thread makes a
            # 220m-shaped completion 1.2x faster when idle and costs ~3% with another process
            # spinning on one core (bench/results/prefix-cost-cpu.md). Background work never
            # runs beside urgent work (URGENT_WORK), so two engines do not oversubscribe.
            intra_threads = max(1, min(4, os.cpu_count() or 1))
        path = str(model.folder)
        # A model converted without the rewrite for a fixed ctranslate2 (native_prefix), now
        # loaded by a build that is not fixed: its one pass would be wrong, so feed the prefix
        # step by step (exact, slower).
        self._one_pass_ok = self.meta.parallel_prefix and (
            not self.meta.native_prefix or native_t5_prefix_is_exact())
        if self.meta.parallel_prefix and not self._one_pass_ok:
            log.warning("%s was converted for a ctranslate2 that runs T5 prefixes in one exact "
                        "pass, but ctranslate2 %s does not: using the exact step-by-step path "
                        "(slow); convert the model again", path, ctranslate2.__version__)
        try:
            if self.meta.family == "codegen":
                self._generator = ctranslate2.Generator(path, device=self.device,
                                                        compute_type=self.compute_type,
                                                        intra_threads=intra_threads)
                self._translator = None
            else:
                self._translator = ctranslate2.Translator(path, device=self.device,
                                                          compute_type=self.compute_type,
                                                          intra_threads=intra_threads)
                self._generator = None
        except Exception as exc:
            raise ModelError(f"cannot load model {path} on {self.device}/{self.compute_type}: "
                             f"{exc}") from exc
        self._queue: queue.PriorityQueue[_Job] = queue.PriorityQueue()
        self._seq = itertools.count()
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

    def submit(self, request: GenerationRequest,
               cancel: threading.Event | None = None) -> Future:
        """Queue a request; the future resolves to a GenerationResult or raises EngineError."""
        if self._closed:
            raise EngineError("engine is closed")
        job = _Job(request.priority, next(self._seq), request, cancel or threading.Event(),
                   Future())
        if request.priority < BACKGROUND_PRIORITY:
            URGENT_WORK.begin(request.priority)
            job.future.add_done_callback(lambda _f: URGENT_WORK.end())
        self._queue.put(job)
        return job.future

    def _preempt_background_for(self, priority: int) -> None:
        """Stop the running batch at its next token if it is background work less urgent
        than `priority` (it is queued again)."""
        with self._state_lock:
            running = self._running_priority
            if (running is not None and running >= BACKGROUND_PRIORITY
                    and priority < running):
                self._preempt.set()

    def generate(self, request: GenerationRequest,
                 cancel: threading.Event | None = None) -> GenerationResult:
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
        self._queue.put(_Job(-1, -1, None, threading.Event(), Future()))  # type: ignore[arg-type]
        self._worker.join(timeout=30)
        while True:  # whatever is still queued will never run: say so to its waiters
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
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

    # -- worker ----------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job.request is None:
                return
            batch = [job] + self._compatible_waiting(job)
            # A preempted job comes back with its future already running.
            live = [j for j in batch if not j.cancel.is_set()
                    and (j.future.running() or j.future.set_running_or_notify_cancel())]
            for j in batch:
                if j not in live and not j.future.done():
                    j.future.set_result(GenerationResult([], "", "cancelled", 0.0))
            if not live:
                continue
            if job.priority >= BACKGROUND_PRIORITY and not self._wait_for_no_urgent_work():
                for j in live:  # urgent work elsewhere: look again after it
                    self._queue.put(j)
                continue
            with self._state_lock:
                self._running_priority = job.priority
                self._preempt.clear()
                # Urgent work that arrived (here or in another engine) since the wait above:
                # its preempt call may have found nothing running yet.
                if job.priority >= BACKGROUND_PRIORITY and (
                        URGENT_WORK.busy or self._more_urgent_waiting(job.priority)):
                    self._preempt.set()
            try:
                results = self._generate_batch([j.request for j in live],
                                               [j.cancel for j in live], self._preempt)
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
        while not URGENT_WORK.wait_until_idle(0.05):
            if self._closed or self._more_urgent_waiting(BACKGROUND_PRIORITY):
                return False
        return True

    def _more_urgent_waiting(self, priority: int) -> bool:
        with self._queue.mutex:
            return any(j.priority < priority for j in self._queue.queue)

    def _compatible_waiting(self, first: _Job) -> list[_Job]:
        """Drain queued jobs that can share a batch with `first`; put the others back."""
        taken: list[_Job] = []
        others: list[_Job] = []
        while len(taken) + 1 < self.max_batch:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job.request is None:
                others.append(job)
                break
            r, f = job.request, first.request
            # One-pass prefixes (return_alternatives) are not merged: ctranslate2 decodes such
            # a batch one example after another (no gain) and reports every example's tokens
            # to the callback as batch 0, so stop rules would cut the wrong request.
            if (r.mode == f.mode and len(r.decoder_prefix) == len(f.decoder_prefix)
                    and r.priority == f.priority and _plain(r) and _plain(f)
                    and not self._one_pass(f)):
                taken.append(job)
            else:
                others.append(job)
        for job in others:
            self._queue.put(job)
        return taken

    def _generate_batch(self, requests: list[GenerationRequest],
                        cancels: list[threading.Event],
                        preempt: threading.Event | None = None) -> list[GenerationResult | None]:
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
                [r.decoder_prefix for r in requests], max_length=max_new, sampling_topk=1,
                beam_size=1, include_prompt_in_result=False, callback=on_token,
                end_token=list({self.meta.eos_token, *requests[0].end_tokens}))
            sequences = [o.sequences[0] for o in outputs]
        else:
            kwargs = dict(beam_size=1, max_input_length=0, callback=on_token,
                          max_decoding_length=prefix_len + max_new,
                          end_token=list({self.meta.eos_token, *requests[0].end_tokens}))
            if prefix_len:
                kwargs["target_prefix"] = [r.decoder_prefix for r in requests]
                if one_pass:
                    kwargs.update(return_alternatives=True, num_hypotheses=1)
            outputs = self._translator.translate_batch(
                [r.encoder_tokens for r in requests], **kwargs)
            sequences = [o.hypotheses[0][prefix_len:] for o in outputs]
        elapsed = (time.perf_counter() - start) * 1000
        results = []
        for i, (req, seq) in enumerate(zip(requests, sequences)):
            seq = seq[: req.max_new_tokens]
            reason = stopped[i] or ("length" if len(seq) >= req.max_new_tokens else "eos")
            if reason == "preempted":
                results.append(None)
                continue
            if reason == "cancelled":
                results.append(GenerationResult([], "", "cancelled", elapsed, prefix_len))
                continue
            results.append(GenerationResult(list(seq), self.tokenizer.decode_tokens(list(seq)),
                                            reason, elapsed, prefix_len,
                                            extra={"batch_size": len(requests)}))
        return results

    # -- token healing and n-best ----------------------------------------------------------

    def _generate_healed(self, request: GenerationRequest, cancel: threading.Event,
                         preempt: threading.Event | None) -> GenerationResult | None:
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
            hyps, stop = self._decode_call(request, prefix, width, request.max_new_tokens,
                                           cancel, preempt)
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
        rest = removed[len("".join(forced)):]
        while rest:
            if len(forced) >= MAX_CONSTRAINED_STEPS or len(forced) >= request.max_new_tokens:
                return GenerationResult([], "", "empty", _ms_since(start), len(prefix))
            token, stop = self._constrained_token(request, prefix + forced, rest, cancel,
                                                  preempt)
            passes += 1
            if stop:
                return self._stopped(stop, start, len(prefix))
            if token is None or not consistent(token, rest):
                return GenerationResult([], "", "empty", _ms_since(start), len(prefix))
            forced.append(token)
            rest = "" if covers(token, rest) else rest[len(token):]
        hyps, stop = self._decode_call(request, prefix + forced, wanted,
                                       request.max_new_tokens - len(forced), cancel, preempt)
        passes += 1
        if stop:
            return self._stopped(stop, start, len(prefix))
        return self._healed_result(request, forced, hyps, removed_text, start, passes)

    def _stopped(self, stop: str, start: float, prefix_len: int) -> GenerationResult | None:
        if stop == "preempted":
            return None
        return GenerationResult([], "", "cancelled", _ms_since(start), prefix_len)

    def _healed_result(self, request: GenerationRequest, forced: list[str],
                       hyps: list[list[str]], removed_text: str, start: float,
                       passes: int) -> GenerationResult:
        """The best hypothesis as the result and the other distinct ones as alternatives, each
        cut where the stop rule fires and with the healed text removed from its front."""
        finals: list[tuple[list[str], str, str]] = []
        seen: set[str] = set()
        for hyp in hyps:
            tokens, reason = self._cut(request, forced + hyp)
            text = self.tokenizer.decode_tokens(tokens)
            if not text.startswith(removed_text):
                continue  # an alternative that does not reproduce the typed text
            text = text[len(removed_text):]
            if text in seen:
                continue
            seen.add(text)
            finals.append((tokens, text, reason))
            if len(finals) >= max(1, request.alternatives):
                break
        elapsed = _ms_since(start)
        if not finals:
            return GenerationResult([], "", "empty", elapsed, len(request.decoder_prefix))
        tokens, text, reason = finals[0]
        return GenerationResult(tokens, text, reason, elapsed,  # type: ignore[arg-type]
                                len(request.decoder_prefix),
                                extra={"batch_size": 1, "passes": passes},
                                alternatives=[t for _, t, _ in finals[1:]],
                                healed=removed_text)

    def _cut(self, request: GenerationRequest, tokens: list[str]) -> tuple[list[str], str]:
        """Tokens up to where generation would have stopped, and why."""
        specials = self.healer.special
        for i, token in enumerate(tokens):
            if token in specials:  # eos or an end token (returned with return_end_token)
                return tokens[:i], "eos"
            if i + 1 >= request.max_new_tokens:
                return tokens[:i + 1], "length"
            rule = request.stop_rule
            if rule is not None and rule(self.tokenizer.decode_tokens(tokens[:i + 1])):
                return tokens[:i + 1], "stop_rule"
        return tokens, "eos"

    def _constrained_token(self, request: GenerationRequest, prefix: list[str], rest: str,
                           cancel: threading.Event, preempt: threading.Event | None
                           ) -> tuple[str | None, str]:
        """The best next token consistent with `rest` (one step, the others suppressed)."""
        suppress = self.healer.disallowed(rest)
        if len(suppress) == self.healer.size:  # no token can reproduce `rest`
            return None, ""
        hyps, stop = self._decode_call(request, prefix, 1, 1, cancel, preempt,
                                       suppress=suppress)
        if stop:
            return None, stop
        return (hyps[0][0] if hyps and hyps[0] else None), ""

    def _decode_call(self, request: GenerationRequest, prefix: list[str], width: int,
                     max_new: int, cancel: threading.Event, preempt: threading.Event | None,
                     suppress: list[str] | None = None) -> tuple[list[list[str]], str]:
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
        track = {"step": -1, "index": 0, "alive": list(range(width)), "finished": []}
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
            kwargs: dict = dict(max_length=max_new, sampling_topk=1, beam_size=1,
                                include_prompt_in_result=False, callback=on_token,
                                end_token=ends, return_end_token=True)
            if width > 1:
                # With alternatives the Generator's max_length counts the prompt but one
                # token (measured, ctranslate2 4.8.5).
                kwargs.update(return_alternatives=True, num_hypotheses=width,
                              max_length=max_new + max(len(prefix) - 1, 0))
            if suppress:
                kwargs["suppress_sequences"] = [[t] for t in suppress]
            outputs = self._generator.generate_batch([prefix], **kwargs)
            hyps = [list(seq) for seq in outputs[0].sequences]
        else:
            # min_decoding_length=0: the default (1) forbids eos as the first new token,
            # which greedy decoding (and so the reference) allows.
            kwargs = dict(beam_size=1, max_input_length=0, callback=on_token,
                          max_decoding_length=len(prefix) + max_new, min_decoding_length=0,
                          end_token=ends, return_end_token=True)
            if prefix:
                kwargs["target_prefix"] = [prefix]
            if alternatives_mode:
                kwargs.update(return_alternatives=True, num_hypotheses=width)
            if suppress:
                kwargs["suppress_sequences"] = [[t] for t in suppress]
            outputs = self._translator.translate_batch([request.encoder_tokens], **kwargs)
            hyps = [list(h[len(prefix):]) for h in outputs[0].hypotheses]
        return hyps, stopped[0]

    def _one_pass(self, request: GenerationRequest) -> bool:
        """Whether the forced prefix can go through the decoder in one exact pass.

        Only for T5 models converted with the parallel-prefix rewrite (see
        docs/ctranslate2-t5-prefix/), or without it for a ctranslate2 build that passes
        `native_t5_prefix_is_exact`; plain conversions use the exact step-by-step path.
        """
        return (self._translator is not None and len(request.decoder_prefix) > 1
                and self._one_pass_ok)


# Constrained steps before giving up on a prompt tail the model will not reproduce.
MAX_CONSTRAINED_STEPS = 8


def _plain(request: GenerationRequest) -> bool:
    """A request the batched path runs as it is (no healing, one suggestion)."""
    return not request.heal_tokens and request.alternatives <= 1


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000
