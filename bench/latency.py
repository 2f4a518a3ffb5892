"""Latency of real line completions: our engine vs transformers vs CTranslate2's plain prefix path.

``python -m bench.latency [--device cpu|cuda] [--quick]`` writes
``bench/results/latency-<device>.json`` and ``.md``.

In one run, for the labmodel and for random-weight T5 models shaped like codet5p-220m and
codet5p-770m (built from a config with transformers, saved with the labmodel's tokenizer files,
converted with our ``convert_checkpoint``), at the held-out cases' cursor positions with
384-512 tokens of context:

- ``ours-default``: our ``CompletionEngine`` in the server's default mode (infill);
- ``ours-decoder``: the decoder-only mode with the one-pass prefix (parallel-prefix conversion);
- ``ct2-target-prefix``: the same decoder-only request on a plain conversion, where CTranslate2
  feeds ``target_prefix`` one token per step (the exact stock path);
- ``hf-infill`` / ``hf-decoder``: transformers ``generate``, fp32 on CPU, fp16 on GPU.

Plus, over LSP against ``codet5-lsp serve`` as a subprocess (stdio): round trip p50/p95,
throughput with 8 requests in flight on 8 documents, peak RSS of the server process (and GPU
memory on cuda). Timings on a shared machine are noisy: engines are compared within one run
(ratios), after warm-up, with medians.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

from bench.cases import Case, load_cases
from bench.quality import LABMODEL, bench_cache_dir, cpu_description, percentile, write_results

CONTEXT_TOKENS = 512
MIN_CONTEXT_TOKENS = 384
SUFFIX_TOKENS = 128
LAB_MAX_NEW_TOKENS = 48  # real model: the line stop rule ends it
RANDOM_MAX_NEW_TOKENS = 16  # random weights never end a line: a fixed, typical line length
WARMUP = 1  # requests run before timing starts, per engine
CONCURRENCY = 8

SHAPES: dict[str, dict[str, int]] = {
    "codet5p-220m-shaped": dict(
        d_model=768, num_layers=12, num_decoder_layers=12, num_heads=12, d_ff=3072, d_kv=64
    ),
    "codet5p-770m-shaped": dict(
        d_model=1024, num_layers=24, num_decoder_layers=24, num_heads=16, d_ff=4096, d_kv=64
    ),
}
QUICK_CASES = {"labmodel": 20, "codet5p-220m-shaped": 8, "codet5p-770m-shaped": 3}
FULL_CASES = {"labmodel": 60, "codet5p-220m-shaped": 24, "codet5p-770m-shaped": 8}
# CTranslate2's step-by-step prefix is ~10x slower than the rest: fewer cases, no warm-up
# (a 770m request takes ~40 s on 2 cores; first-call effects are lost in that).
QUICK_STEPWISE_CASES = {"labmodel": 10, "codet5p-220m-shaped": 3, "codet5p-770m-shaped": 2}
FULL_STEPWISE_CASES = {"labmodel": 30, "codet5p-220m-shaped": 8, "codet5p-770m-shaped": 4}
TOKENIZER_FILES = ("vocab.json", "merges.txt", "tokenizer_config.json", "LICENSE.txt")


# -- environment ----------------------------------------------------------------------------


def device_description(device: str) -> str:
    if device == "cuda":
        import torch

        return f"GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "GPU ?"
    return cpu_description()


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- models ---------------------------------------------------------------------------------


def random_t5_checkpoint(name: str, shape: dict[str, int], folder: Path) -> Path:
    """A random-weight T5 of `shape` with the labmodel's tokenizer (built once, then reused)."""
    if (folder / "config.json").is_file() and any(folder.glob("*.safetensors")):
        return folder
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    log(f"building random {name}")
    torch.manual_seed(0)
    config = T5Config(
        vocab_size=32100,
        feed_forward_proj="relu",
        tie_word_embeddings=True,
        decoder_start_token_id=0,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        relative_attention_num_buckets=32,
        relative_attention_max_distance=128,
        dropout_rate=0.0,
        **shape,
    )
    model = T5ForConditionalGeneration(config).eval()
    from codet5_lsp.inference.atomic import atomic_folder

    with atomic_folder(folder, overwrite=True) as work:
        model.save_pretrained(work.folder)
        for file in TOKENIZER_FILES:
            if (LABMODEL / file).is_file():
                shutil.copy(LABMODEL / file, work.folder / file)
    return folder


def converted(hf_folder: Path, dst: Path, quantization: str, *, parallel_prefix: bool):
    """Our conversion of `hf_folder`, cached in `dst` (the folder name carries the options)."""
    from codet5_lsp.inference.models import check_converted_folder, convert_checkpoint

    if (dst / "model.bin").is_file() and (dst / "codet5_lsp.json").is_file():
        return check_converted_folder(dst)
    log(f"converting {hf_folder.name} -> {dst.name}")
    return convert_checkpoint(
        hf_folder,
        dst,
        quantization=quantization,
        source=str(hf_folder),
        revision=None,
        parallel_prefix=parallel_prefix,
    )


def served_default_mode(family: str) -> str:
    """The mode the server serves by default (inference.prompts; infill if it cannot load)."""
    try:
        from codet5_lsp.inference.prompts import choose_mode
    except ImportError:  # the pipeline's dependencies are still being written
        return "infill"
    return choose_mode("auto", family)


def storage_quantization(device: str) -> tuple[str, str]:
    """(conversion quantization, compute type) our server uses by default on `device`."""
    from codet5_lsp.inference.devices import default_compute_type

    compute = default_compute_type(device)
    return ("int8" if compute.startswith("int8") else compute), compute


# -- cases and requests ---------------------------------------------------------------------


def long_context_cases(tokenizer, count: int) -> list[Case]:
    """Held-out cases with at least MIN_CONTEXT_TOKENS before the cursor (contexts 384-512)."""
    cases = [c for c in load_cases() if tokenizer.count(c.prefix[-6000:]) >= MIN_CONTEXT_TOKENS]
    return cases[: count + WARMUP]


def completion_request(mode: str, case: Case, tokenizer, meta, max_new: int, stop_rule):
    from codet5_lsp.inference.prompts import build_completion_request

    return build_completion_request(
        mode,
        case.prefix,
        case.suffix,
        tokenizer,
        max_prefix_tokens=CONTEXT_TOKENS,
        max_suffix_tokens=SUFFIX_TOKENS,
        max_new_tokens=max_new,
        bos=meta.bos_token,
        eos=meta.eos_token,
        sentinel=meta.sentinel_token,
        next_sentinel=meta.next_sentinel_token,
        stop_rule=stop_rule,
    )


@dataclass
class Timings:
    """Per-request wall times (ms) and generated token counts of one engine."""

    ms: list[float] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        total_s = sum(self.ms) / 1000
        return {
            "requests": len(self.ms),
            "p50_ms": _round(percentile(self.ms, 50)),
            "p95_ms": _round(percentile(self.ms, 95)),
            "mean_new_tokens": _round(sum(self.tokens) / len(self.tokens)) if self.tokens else None,
            "tokens_per_s": _round(sum(self.tokens) / total_s) if total_s else None,
        }


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


def time_ours(engine, requests: list, warmup: int = WARMUP) -> Timings:
    """Wall time of `engine.generate` (tokenization done beforehand, as for transformers)."""
    out = Timings()
    for i, request in enumerate(requests):
        start = time.perf_counter()
        result = engine.generate(request)
        elapsed = (time.perf_counter() - start) * 1000
        if i >= warmup:
            out.ms.append(elapsed)
            out.tokens.append(len(result.tokens))
            out.texts.append(result.text)
    return out


class HFRunner:
    """transformers `generate` on the same token ids: greedy, same limits and stop rule."""

    def __init__(self, hf_folder: Path, device: str, tokenizer):
        import torch
        from transformers import T5ForConditionalGeneration
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        dtype = torch.float16 if device == "cuda" else torch.float32
        self.torch = torch
        self.device = device
        self.dtype_name = "fp16" if device == "cuda" else "fp32"
        self.model = T5ForConditionalGeneration.from_pretrained(str(hf_folder), dtype=dtype)
        self.model.to(device).eval()
        self.tokenizer = tokenizer

    def ids(self, tokens: list[str]) -> list[int]:
        return [self.tokenizer.token_to_id(t) for t in tokens]

    def time(self, requests: list, stop_at_newline: bool, warmup: int = WARMUP) -> Timings:
        torch = self.torch
        out = Timings()
        for i, request in enumerate(requests):
            enc = torch.tensor([self.ids(request.encoder_tokens)], device=self.device)
            dec = torch.tensor([[0] + self.ids(request.decoder_prefix)], device=self.device)
            ends = [2] + [self.tokenizer.token_to_id(t) for t in request.end_tokens]
            criteria = self._line_stop(dec.shape[1]) if stop_at_newline else None
            start = time.perf_counter()
            with torch.inference_mode():
                result = self.model.generate(
                    input_ids=enc,
                    attention_mask=torch.ones_like(enc),
                    decoder_input_ids=dec,
                    max_new_tokens=request.max_new_tokens,
                    do_sample=False,
                    num_beams=1,
                    eos_token_id=ends,
                    pad_token_id=0,
                    stopping_criteria=criteria,
                )
            if self.device == "cuda":
                torch.cuda.synchronize()
            elapsed = (time.perf_counter() - start) * 1000
            new = [t for t in result[0, dec.shape[1] :].tolist() if t not in ends and t != 0]
            if i >= warmup:
                out.ms.append(elapsed)
                out.tokens.append(len(new))
                out.texts.append(
                    self.tokenizer.decode_tokens([self.tokenizer.id_to_token(t) for t in new])
                )
        return out

    def _line_stop(self, start: int):
        from transformers import StoppingCriteria, StoppingCriteriaList

        tokenizer = self.tokenizer

        class LineStop(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                tokens = [tokenizer.id_to_token(t) for t in input_ids[0, start:].tolist()]
                return "\n" in tokenizer.decode_tokens(tokens)

        return StoppingCriteriaList([LineStop()])

    def close(self) -> None:
        del self.model
        if self.device == "cuda":
            self.torch.cuda.empty_cache()


# -- LSP ------------------------------------------------------------------------------------


class PeakMemory:
    """Samples a process's RSS (and its GPU memory on cuda) until stopped; keeps the peaks."""

    def __init__(self, pid: int, cuda: bool):
        self.pid, self.cuda = pid, cuda
        self.rss_peak = 0
        self.gpu_peak_mib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psutil

        proc = psutil.Process(self.pid)
        while not self._stop.wait(0.05):
            try:
                self.rss_peak = max(self.rss_peak, proc.memory_info().rss)
            except psutil.Error:
                return
            if self.cuda and int(time.time() * 20) % 10 == 0:
                self.gpu_peak_mib = max(self.gpu_peak_mib, gpu_memory_mib(self.pid))

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join(timeout=2)
        hwm = vm_hwm_bytes(self.pid)
        peak = max(self.rss_peak, hwm or 0)
        out = {"server_peak_rss_mb": round(peak / 2**20, 1)}
        if self.cuda:
            out["server_gpu_memory_mib"] = self.gpu_peak_mib
        return out


def vm_hwm_bytes(pid: int) -> int | None:
    """The kernel's own peak RSS of a process (Linux), which sampling can miss."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def gpu_memory_mib(pid: int) -> int:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and parts[0] == str(pid):
            return int(parts[1])
    return 0


def _inline_params(uri: str, case: Case):
    from lsprotocol import types

    return types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(line=case.line, character=case.character),
        context=types.InlineCompletionContext(
            trigger_kind=types.InlineCompletionTriggerKind.Invoked
        ),
    )


def _items(reply) -> list:
    if reply is None:
        return []
    return list(reply.items if hasattr(reply, "items") else reply)


async def lsp_bench(
    model_folder: Path, device: str, compute_type: str, cases: list[Case], max_new_tokens: int
) -> dict:
    """Round trips and 8-in-flight throughput against `codet5-lsp serve` over stdio."""
    from lsprotocol import types
    from pytest_lsp import ClientServerConfig, client_capabilities

    state_dir = Path(tempfile.mkdtemp(prefix="codet5-bench-lsp-"))
    env = dict(os.environ, XDG_CACHE_HOME=str(state_dir), XDG_STATE_HOME=str(state_dir))
    config = ClientServerConfig(
        server_command=[
            sys.executable,
            "-m",
            "codet5_lsp.server.cli",
            "serve",
            "--model",
            str(model_folder),
            "--device",
            device,
            "--compute-type",
            compute_type,
        ],
        server_env=env,
    )
    client = await config.start()
    statuses: list[dict] = []

    @client.feature("codet5/status")
    def on_status(params):  # noqa: ANN001 - raw JSON object (pygls gives a namedtuple)
        get = params.get if isinstance(params, dict) else lambda k: getattr(params, k, None)
        statuses.append({"state": get("state"), "message": get("message")})

    memory = PeakMemory(client._server.pid, device == "cuda")
    opened = 0

    def open_doc(case: Case) -> str:
        nonlocal opened
        opened += 1
        uri = f"file:///bench/doc{opened}_{case.file.removesuffix('.txt')}"
        client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=uri, language_id="python", version=1, text=case.document
                )
            )
        )
        return uri

    try:
        await client.initialize_session(
            types.InitializeParams(
                capabilities=client_capabilities("visual-studio-code"),
                initialization_options={
                    "debounceMs": 0,
                    "maxContextTokens": CONTEXT_TOKENS,
                    "maxSuffixTokens": SUFFIX_TOKENS,
                    "maxNewTokens": max_new_tokens,
                    "requestTimeoutMs": 600_000,
                    # completion model only: no summary model download/RSS
                    "summariesEnabled": False,
                },
            )
        )
        end = time.monotonic() + 300
        while not (statuses and statuses[-1].get("state") in ("ready", "error")):
            if time.monotonic() > end:
                raise TimeoutError(f"server not ready after 300 s: {statuses}")
            await asyncio.sleep(0.05)
        if statuses[-1]["state"] == "error":
            raise RuntimeError(f"server failed to load the model: {statuses[-1]}")
        round_trips: list[float] = []
        answered = 0
        for i, case in enumerate(cases):  # sequential: one request in flight
            uri = open_doc(case)
            start = time.perf_counter()
            reply = await client.text_document_inline_completion_async(_inline_params(uri, case))
            elapsed = (time.perf_counter() - start) * 1000
            if i >= WARMUP:
                round_trips.append(elapsed)
                answered += bool(_items(reply))
        measured = cases[WARMUP:]
        batch = [measured[i % len(measured)] for i in range(CONCURRENCY)]
        # The same 8 requests one after another, then all at once (fresh documents each time,
        # so no answer comes from the type-through cache): throughput on equal work.
        uris = [open_doc(case) for case in batch]
        start = time.perf_counter()
        for uri, case in zip(uris, batch):
            await client.text_document_inline_completion_async(_inline_params(uri, case))
        sequential_wall = time.perf_counter() - start
        uris = [open_doc(case) for case in batch]
        start = time.perf_counter()
        await asyncio.gather(
            *(
                client.text_document_inline_completion_async(_inline_params(uri, case))
                for uri, case in zip(uris, batch)
            )
        )
        wall = time.perf_counter() - start
        p50 = percentile(round_trips, 50)
        return {
            "requests": len(round_trips),
            "answered": answered,
            "round_trip_p50_ms": _round(p50),
            "round_trip_p95_ms": _round(percentile(round_trips, 95)),
            "concurrent_requests": CONCURRENCY,
            "concurrent_wall_ms": _round(wall * 1000),
            "throughput_rps": round(CONCURRENCY / wall, 2),
            "sequential_wall_ms": _round(sequential_wall * 1000),
            "sequential_rps": round(CONCURRENCY / sequential_wall, 2),
            **memory.stop(),
        }
    finally:
        memory.stop()
        try:
            await asyncio.wait_for(client.shutdown_session(), 30)
        except Exception:  # a server that already died must not hide the figures' error
            pass
        shutil.rmtree(state_dir, ignore_errors=True)


# -- one model ------------------------------------------------------------------------------


def bench_model(
    name: str,
    hf_folder: Path,
    device: str,
    n_cases: int,
    stepwise_cases: int,
    cache: Path,
    real_model: bool,
    lsp: bool,
) -> dict:
    from codet5_lsp.inference.engine import CompletionEngine
    from codet5_lsp.inference.prompts import line_stop_rule

    setup_started = time.perf_counter()
    quant, compute = storage_quantization(device)
    tag = f"ct2-{version('ctranslate2')}-{quant}"
    one_pass = converted(
        hf_folder, cache / f"{name}--{tag}--parallel-prefix", quant, parallel_prefix=True
    )
    plain = converted(hf_folder, cache / f"{name}--{tag}--plain", quant, parallel_prefix=False)
    setup_s = round(time.perf_counter() - setup_started, 1)
    default_mode = served_default_mode(one_pass.metadata.family)
    max_new = LAB_MAX_NEW_TOKENS if real_model else RANDOM_MAX_NEW_TOKENS
    stop_rule = line_stop_rule if real_model else None
    result: dict = {
        "model": name,
        "conversion": quant,
        "compute_type": compute,
        "default_mode": default_mode,
        "max_new_tokens": max_new,
        "conversion_s": setup_s,
        "stop": "first line end" if real_model else f"{max_new} tokens",
        "engines": {},
    }

    engine = CompletionEngine(one_pass, device=device, compute_type=compute)
    tokenizer = engine.tokenizer
    cases = long_context_cases(tokenizer, n_cases)
    result["cases"] = len(cases) - WARMUP
    result["context_tokens_mean"] = round(
        sum(min(CONTEXT_TOKENS, tokenizer.count(c.prefix[-6000:])) for c in cases) / len(cases), 1
    )

    def requests(mode: str) -> list:
        return [
            completion_request(mode, c, tokenizer, one_pass.metadata, max_new, stop_rule)
            for c in cases
        ]

    try:
        log(f"{name}: ours-decoder (one-pass prefix)")
        ours_decoder = time_ours(engine, requests("decoder"))
        if default_mode != "decoder":
            log(f"{name}: ours-default ({default_mode})")
            result["engines"]["ours-default"] = time_ours(engine, requests(default_mode)).summary()
        else:  # the default is the decoder mode: one measurement serves both rows
            result["engines"]["ours-default"] = ours_decoder.summary()
        result["engines"]["ours-decoder"] = ours_decoder.summary()
    finally:
        engine.close()
    stepwise = CompletionEngine(plain, device=device, compute_type=compute)
    step_warmup = WARMUP if real_model else 0
    try:
        log(f"{name}: ct2 target_prefix step by step")
        ct2_step = time_ours(
            stepwise,
            requests("decoder")[WARMUP - step_warmup :][: step_warmup + stepwise_cases],
            warmup=step_warmup,
        )
        result["engines"]["ct2-target-prefix"] = ct2_step.summary()
    finally:
        stepwise.close()
    result["one_pass_equals_stepwise"] = round(
        sum(a == b for a, b in zip(ours_decoder.texts, ct2_step.texts)) / len(ct2_step.texts), 3
    )
    if default_mode == "decoder":
        result["note"] = "default mode is decoder: ours-default and ours-decoder are one run"

    hf = HFRunner(hf_folder, device, tokenizer)
    try:
        for mode in dict.fromkeys((default_mode, "decoder")):
            log(f"{name}: transformers {hf.dtype_name} {mode}")
            result["engines"][f"hf-{mode}"] = hf.time(requests(mode), real_model).summary()
        result["transformers_dtype"] = hf.dtype_name
    finally:
        hf.close()
        gc.collect()

    engines = result["engines"]
    p50 = {k: v["p50_ms"] for k, v in engines.items()}
    result["ratios"] = {
        "hf_same_mode_over_ours_default": _ratio(p50[f"hf-{default_mode}"], p50["ours-default"]),
        "hf_decoder_over_ours_decoder": _ratio(p50["hf-decoder"], p50["ours-decoder"]),
        "stepwise_over_one_pass": _ratio(p50["ct2-target-prefix"], p50["ours-decoder"]),
    }
    if lsp:
        log(f"{name}: LSP round trips")
        try:
            result["lsp"] = asyncio.run(lsp_bench(one_pass.folder, device, compute, cases, max_new))
            result["ratios"]["hf_same_mode_over_lsp"] = _ratio(
                p50[f"hf-{default_mode}"], result["lsp"]["round_trip_p50_ms"]
            )
        except Exception as exc:
            result["lsp"] = {"error": f"{type(exc).__name__}: {exc}"}
    return result


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


# -- report ---------------------------------------------------------------------------------


def targets(device: str, models: dict) -> list[tuple[str, bool | None, str]]:
    """(target, met?, measured) for the project's stated latency targets."""
    out = []
    if device == "cuda":
        for name, r in models.items():
            lsp = r.get("lsp", {})
            if name == "labmodel":
                continue
            out.append(
                (
                    f"{name}: LSP p50 <= 50 ms",
                    _le(lsp.get("round_trip_p50_ms"), 50),
                    f"{lsp.get('round_trip_p50_ms')} ms",
                )
            )
            out.append(
                (
                    f"{name}: LSP p95 <= 100 ms",
                    _le(lsp.get("round_trip_p95_ms"), 100),
                    f"{lsp.get('round_trip_p95_ms')} ms",
                )
            )
            ratio = r["ratios"]["hf_same_mode_over_ours_default"]
            out.append(
                (f"{name}: >= 10x faster than transformers fp16", _ge(ratio, 10), f"{ratio}x")
            )
    else:
        r = models.get("codet5p-220m-shaped")
        if r:
            lsp = r.get("lsp", {})
            out.append(
                (
                    "220m int8: LSP p50 <= 400 ms",
                    _le(lsp.get("round_trip_p50_ms"), 400),
                    f"{lsp.get('round_trip_p50_ms')} ms",
                )
            )
            ratio = r["ratios"]["hf_same_mode_over_ours_default"]
            out.append(
                ("220m int8: >= 5x faster than transformers fp32", _ge(ratio, 5), f"{ratio}x")
            )
            rss = lsp.get("server_peak_rss_mb")
            out.append(("220m int8: server RSS <= 700 MB", _le(rss, 700), f"{rss} MB"))
    return out


def _le(x, limit) -> bool | None:
    return None if x is None else x <= limit


def _ge(x, limit) -> bool | None:
    return None if x is None else x >= limit


def markdown(r: dict) -> str:
    lines = [
        f"# Latency on {r['device_name']}",
        "",
        f"`python -m bench.latency --device {r['device']}{' --quick' if r['quick'] else ''}`"
        f", run time {r['runtime_s']} s. Context {MIN_CONTEXT_TOKENS}-{CONTEXT_TOKENS} "
        "tokens before the cursor at held-out cursor positions; greedy; "
        f"{WARMUP} warm-up requests per engine; times are wall times of one request "
        "(tokenization excluded for in-process engines).",
        "",
        "| model | engine | requests | p50 ms | p95 ms | new tokens | tokens/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, m in r["models"].items():
        for engine, s in m["engines"].items():
            label = {
                "ours-default": f"ours, default ({m['default_mode']})",
                "ours-decoder": "ours, decoder one-pass",
                "ct2-target-prefix": "ct2 target_prefix step-by-step",
            }.get(
                engine,
                f"transformers {m.get('transformers_dtype', '')} {engine.removeprefix('hf-')}",
            )
            lines.append(
                f"| {name} ({m['compute_type']}) | {label} | {s['requests']} | "
                f"{s['p50_ms']} | {s['p95_ms']} | {s['mean_new_tokens']} | "
                f"{s['tokens_per_s']} |"
            )
    lines += [
        "",
        "| model | transformers / ours (default mode) | transformers / ours (decoder) "
        "| step-by-step / one-pass | transformers / LSP round trip | one-pass = step text |",
        "|---|---|---|---|---|---|",
    ]
    for name, m in r["models"].items():
        q = m["ratios"]
        lines.append(
            f"| {name} | {q['hf_same_mode_over_ours_default']}x | "
            f"{q['hf_decoder_over_ours_decoder']}x | {q['stepwise_over_one_pass']}x | "
            f"{q.get('hf_same_mode_over_lsp')}x | {m['one_pass_equals_stepwise']:.0%} |"
        )
    lines += [
        "",
        "## LSP (`codet5-lsp serve` over stdio)",
        "",
        "| model | round trip p50 ms | p95 ms | answered | 8 in flight: wall ms | "
        "req/s (8 in flight) | req/s (same 8, one at a time) | server peak RSS MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, m in r["models"].items():
        s = m.get("lsp")
        if s is None:
            continue
        if "error" in s:
            lines.append(f"| {name} | failed: {s['error']} | | | | | | |")
            continue
        gpu = f" (GPU {s['server_gpu_memory_mib']} MiB)" if "server_gpu_memory_mib" in s else ""
        lines.append(
            f"| {name} | {s['round_trip_p50_ms']} | {s['round_trip_p95_ms']} | "
            f"{s['answered']}/{s['requests']} | {s['concurrent_wall_ms']} | "
            f"{s['throughput_rps']} | {s['sequential_rps']} | "
            f"{s['server_peak_rss_mb']}{gpu} |"
        )
    lines += ["", "## Targets", "", "| target | met | measured |", "|---|---|---|"]
    for target, met, measured in r["targets"]:
        mark = {True: "yes", False: "**no**", None: "not measured"}[met]
        lines.append(f"| {target} | {mark} | {measured} |")
    lines += [
        "",
        "Random-weight models (220m/770m shapes) never end a line, so every engine "
        f"generates {RANDOM_MAX_NEW_TOKENS} tokens for them; the labmodel stops at the "
        "first line end. The server applies its own stop rule and post-processing.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="completion latency: ours vs transformers")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--quick", action="store_true", help="fewer cases (CI-sized)")
    parser.add_argument(
        "--models",
        nargs="*",
        default=["labmodel", *SHAPES],
        help="subset of: labmodel " + " ".join(SHAPES),
    )
    parser.add_argument("--no-lsp", action="store_true", help="skip the LSP part")
    parser.add_argument("--no-write", action="store_true", help="print, do not write results")
    parser.add_argument("--cache-dir", type=Path, help="models and conversions (user cache)")
    args = parser.parse_args(argv)
    cache = args.cache_dir or bench_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    counts = QUICK_CASES if args.quick else FULL_CASES
    step_counts = QUICK_STEPWISE_CASES if args.quick else FULL_STEPWISE_CASES
    started = time.perf_counter()
    report: dict = {
        "device": args.device,
        "device_name": device_description(args.device),
        "quick": args.quick,
        "models": {},
    }
    for name in args.models:
        if name == "labmodel":
            hf_folder, real = LABMODEL, True
        else:
            built = time.perf_counter()
            hf_folder, real = random_t5_checkpoint(name, SHAPES[name], cache / f"{name}-hf"), False
            report.setdefault("build_s", {})[name] = round(time.perf_counter() - built, 1)
        report["models"][name] = bench_model(
            name,
            hf_folder,
            args.device,
            counts[name],
            step_counts[name],
            cache,
            real,
            lsp=not args.no_lsp,
        )
        gc.collect()
    report["targets"] = targets(args.device, report["models"])
    report["runtime_s"] = round(time.perf_counter() - started, 1)
    text = markdown(report)
    if not args.no_write:
        write_results(f"latency-{args.device}", report, text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
