"""Where a decoder-mode completion's time goes: the prefix pass vs the new tokens, for our exact
one-pass conversion (Shaw-style relative keys) and for ctranslate2's stock one-pass (inexact
for T5), with 1 and 2 intra-op threads, idle and with a busy process competing for a core.

    python -m bench.prefix_cost [--device cpu] [--shape codet5p-220m-shaped] [--cases 5]

Writes ``bench/results/prefix-cost-<device>.json`` and ``.md``. Random weights of the given
shape (the prefixes are real held-out code; the weights do not change the cost). "prefix + 1"
is one new token, i.e. essentially the prefix pass; "+ 16" adds 15 decoding steps.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from bench.latency import (
    SHAPES,
    converted,
    device_description,
    log,
    long_context_cases,
    random_t5_checkpoint,
)
from bench.quality import bench_cache_dir, write_results

PREFIX_TOKENS = 511  # + the start token: a 512-token decoder context
NEW_TOKENS = (1, 16)


def _time_one(translator, prefix: list[str], new_tokens: int) -> float:
    started = time.perf_counter()
    translator.translate_batch(
        [["<s>", "</s>"]],
        target_prefix=[prefix],
        beam_size=1,
        max_input_length=0,
        max_decoding_length=len(prefix) + new_tokens,
        return_alternatives=True,
        num_hypotheses=1,
    )
    return (time.perf_counter() - started) * 1000


def run(device: str, shape: str, cases: int, loads: tuple[str, ...]) -> dict:
    import ctranslate2

    from codet5_lsp.inference.devices import default_compute_type
    from codet5_lsp.inference.tokenizer import CodeTokenizer

    cache = bench_cache_dir()
    compute = default_compute_type(device)
    quant = "int8" if compute.startswith("int8") else compute
    hf = random_t5_checkpoint(shape, SHAPES[shape], cache / f"{shape}-hf")
    models = {
        "exact one-pass (ours)": converted(
            hf, cache / f"{shape}-{quant}-pp", quant, parallel_prefix=True
        ),
        "stock one-pass (inexact)": converted(
            hf, cache / f"{shape}-{quant}-stock", quant, parallel_prefix=False
        ),
    }
    tokenizer = CodeTokenizer(next(iter(models.values())).tokenizer_file)
    prefixes = [
        tokenizer.tokens(c.prefix)[-PREFIX_TOKENS:] for c in long_context_cases(tokenizer, cases)
    ]
    rows = []
    for load in loads:
        hog = (
            subprocess.Popen([sys.executable, "-c", "while True: pass"]) if load == "busy" else None
        )
        try:
            for label, files in models.items():
                for threads in (1, 2):
                    translator = ctranslate2.Translator(
                        str(files.folder),
                        device=device,
                        compute_type=compute,
                        intra_threads=threads,
                    )
                    _time_one(translator, prefixes[0], 1)  # warm-up
                    row = {"load": load, "path": label, "threads": threads}
                    for new in NEW_TOKENS:
                        times = [_time_one(translator, p, new) for p in prefixes[1:]]
                        row[f"new_{new}_median_ms"] = round(statistics.median(times), 1)
                        row[f"new_{new}_max_ms"] = round(max(times), 1)
                    log(str(row))
                    rows.append(row)
                    del translator
        finally:
            if hog is not None:
                hog.kill()
    return {
        "device": device_description(device),
        "compute_type": compute,
        "shape": shape,
        "prefix_tokens": PREFIX_TOKENS + 1,
        "cases": len(prefixes) - 1,
        "ctranslate2": ctranslate2.__version__,
        "rows": rows,
    }


def markdown(r: dict) -> str:
    lines = [
        f"# Prefix cost: {r['shape']} on {r['device']} ({r['compute_type']})",
        "",
        f"`python -m bench.prefix_cost`; decoder contexts of 384-{r['prefix_tokens']} "
        f"tokens from held-out code, medians of {r['cases']} prefixes, "
        f"ctranslate2 {r['ctranslate2']}. "
        "'busy': another process spins on one core meanwhile.",
        "",
        "| load | path | threads | prefix + 1 token (ms) | prefix + 16 tokens (ms) |",
        "|---|---|---|---|---|",
    ]
    for row in r["rows"]:
        lines.append(
            f"| {row['load']} | {row['path']} | {row['threads']} | "
            f"{row['new_1_median_ms']} | {row['new_16_median_ms']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--shape", default="codet5p-220m-shaped", choices=sorted(SHAPES))
    parser.add_argument("--cases", type=int, default=5)
    parser.add_argument("--no-busy", action="store_true", help="skip the busy-core runs")
    parser.add_argument("--no-write", action="store_true", help="print, do not write results")
    args = parser.parse_args(argv)
    loads = ("idle",) if args.no_busy else ("idle", "busy")
    results = run(args.device, args.shape, args.cases, loads)
    text = markdown(results)
    if not args.no_write:
        write_results(f"prefix-cost-{args.device}", results, text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
