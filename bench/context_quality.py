"""Context selection vs a plain last-N-tokens window, on a dense held-out sample.

Why a separate, larger sample: on the 168 cases of `bench.quality` one case is 0.6% of exact
match and differences in mean edit similarity under ~0.01 are noise, so the two context
builders could not be told apart (docs/context-selection.md). This run samples the same frozen
held-out files (code the labmodel never saw) about four times as densely, with its own seed,
uses decoder mode in float32 (the exact reference numerics) at the server's budget, and gives a
paired bootstrap confidence interval for each difference.

It also runs the last-N window at smaller budgets (SHORTER_BUDGETS) on the same cases. That
answers the question behind the comparison: does the model make any use of text far from the
cursor? If a 128-token window scores as well as the full budget, no choice of far context
(imports, similar functions, scope headers) can move the figures beyond noise.

    python -m bench.context_quality [--limit N] [--no-sweep] [--no-write]

Writes bench/results/context-quality.{json,md}.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path
from typing import Callable

from bench import quality as Q
from bench.cases import load_cases

DENSE_SEED = 5150
DENSE_MID_LINE = 40
DENSE_LINE_START = 20
BOOTSTRAP_ROUNDS = 4000
SHORTER_BUDGETS = (128, 256)  # last-N windows smaller than the budget, same cases


def _last_n_within(budget: int) -> Callable:
    """The last-N builder held to `budget` tokens whatever budget it is asked for."""
    from codet5_lsp.server.context import last_n_tokens_context

    def build(doc, position, count, _max_prefix_tokens, max_suffix_tokens):
        return last_n_tokens_context(doc, position, count, budget, max_suffix_tokens)
    return build


def paired_bootstrap(a: list[float], b: list[float], rounds: int = BOOTSTRAP_ROUNDS,
                     seed: int = 7) -> dict[str, float]:
    """Mean of b - a with a 95% interval and the share of resamples where b beats a."""
    rng = random.Random(seed)
    diffs = [y - x for x, y in zip(a, b)]
    n = len(diffs)
    means = sorted(statistics.fmean(diffs[rng.randrange(n)] for _ in range(n))
                   for _ in range(rounds))
    return {"mean_difference": round(statistics.fmean(diffs), 4),
            "ci95_low": round(means[int(0.025 * rounds)], 4),
            "ci95_high": round(means[int(0.975 * rounds) - 1], 4),
            "share_of_resamples_higher": round(sum(m > 0 for m in means) / rounds, 3)}


def run(limit: int | None, cache_dir: Path, sweep: bool = True) -> dict:
    from lsprotocol import types

    from codet5_lsp.inference.engine import CompletionEngine
    from codet5_lsp.inference.models import resolve_model
    from codet5_lsp.server.documents import DocumentStore

    builders, why = Q.context_builders()
    if builders is None:
        raise SystemExit(why)
    if sweep:
        builders.update({f"last_n_tokens@{n}": _last_n_within(n) for n in SHORTER_BUDGETS})
    cases = load_cases(DENSE_SEED, limit=limit, mid_line=DENSE_MID_LINE,
                       line_start=DENSE_LINE_START)
    started = time.perf_counter()
    files = resolve_model(str(Q.LABMODEL), quantization="float32", cache_dir=cache_dir)
    engine = CompletionEngine(files, device="cpu", compute_type="float32")
    count = engine.tokenizer.count
    predictions: dict[str, list[Q.Prediction]] = {}
    prefixes: dict[str, list[str]] = {}
    try:
        for name, build in builders.items():
            store = DocumentStore()  # fresh per builder: no hints shared between them
            preds, texts = [], []
            for i, case in enumerate(cases):
                doc = store.open(f"file:///bench/dense_{i}.py", case.document, "python", 1)
                position = types.Position(line=case.line, character=case.character)
                ctx = build(doc, position, count, Q.CONTEXT_TOKENS, Q.SUFFIX_TOKENS)
                texts.append(ctx.prefix)
                preds.append(Q.predict(engine, "decoder", ctx.prefix, ctx.suffix,
                                       context_tokens=Q.CONTEXT_TOKENS, target=case.target,
                                       case=case))
            predictions[name], prefixes[name] = preds, texts
    finally:
        engine.close()
    base, ours = predictions["last_n_tokens"], predictions["tree_sitter"]
    differ = [i for i, (x, y) in enumerate(zip(prefixes["last_n_tokens"],
                                                prefixes["tree_sitter"])) if x != y]
    return {
        "device": Q.cpu_description(),
        "model": "labmodel (29M), float32, decoder mode",
        "cases": len(cases),
        "cases_by_kind": {k: sum(c.kind == k for c in cases) for k in ("mid_line", "line_start")},
        "sample": {"seed": DENSE_SEED, "mid_line_per_file": DENSE_MID_LINE,
                   "line_start_per_file": DENSE_LINE_START},
        "context_tokens": Q.CONTEXT_TOKENS,
        "cases_where_prompts_differ": len(differ),
        "results": {name: Q.summarize(p) for name, p in predictions.items()},
        "results_where_prompts_differ": {
            name: Q.summarize([p[i] for i in differ]) for name, p in predictions.items()},
        "tree_sitter_minus_last_n": {
            "edit_similarity": paired_bootstrap([p.similarity for p in base],
                                                [p.similarity for p in ours]),
            "exact_match": paired_bootstrap([float(p.exact) for p in base],
                                            [float(p.exact) for p in ours]),
        },
        "shorter_last_n_minus_full": {
            name: {"budget": int(name.split("@")[1]),
                   "edit_similarity": paired_bootstrap([p.similarity for p in base],
                                                       [p.similarity for p in preds]),
                   "exact_match": paired_bootstrap([float(p.exact) for p in base],
                                                   [float(p.exact) for p in preds])}
            for name, preds in predictions.items() if "@" in name},
        "runtime_s": round(time.perf_counter() - started, 1),
    }


def markdown(r: dict) -> str:
    res, sub = r["results"], r["results_where_prompts_differ"]
    d = r["tree_sitter_minus_last_n"]

    def row(name: str, label: str) -> str:
        a, b = res[name], sub[name]
        return (f"| {label} | {a['exact_match'] * 100:.1f}% | {a['edit_similarity']:.4f} | "
                f"{b['exact_match'] * 100:.1f}% | {b['edit_similarity']:.4f} |")

    def diff(name: str, key: str) -> str:
        x = d[key]
        return (f"| {name} | {x['mean_difference']:+.4f} | [{x['ci95_low']:+.4f}, "
                f"{x['ci95_high']:+.4f}] | {x['share_of_resamples_higher']:.3f} |")

    return "\n".join([
        "# Context selection on a dense held-out sample",
        "",
        f"Device: {r['device']}. Model: {r['model']}; budget {r['context_tokens']} tokens. "
        f"{r['cases']} cursor positions ({r['cases_by_kind']}) in the frozen held-out files "
        f"(`bench/data/heldout/`), seed {r['sample']['seed']}; in "
        f"{r['cases_where_prompts_differ']} of them the two prompts differ (elsewhere the "
        "whole file before the cursor fits the budget). First generated line vs the real "
        "rest of the line.",
        "",
        "| context | exact match | edit similarity | exact (prompts differ) | "
        "edit sim. (prompts differ) |",
        "|---|---|---|---|---|",
        row("last_n_tokens", "last N tokens"),
        row("tree_sitter", "tree-sitter selection (shipped)"),
        "",
        f"Paired bootstrap over cases ({BOOTSTRAP_ROUNDS} resamples), shipped minus last-N:",
        "",
        "| metric | mean difference | 95% interval | share of resamples > 0 |",
        "|---|---|---|---|",
        diff("edit similarity", "edit_similarity"),
        diff("exact match", "exact_match"),
        *_sweep_lines(r),
        "",
        f"Runtime {r['runtime_s']} s (`python -m bench.context_quality`).",
        "",
    ])


def _sweep_lines(r: dict) -> list[str]:
    """How much of its window the model uses: last-N at smaller budgets vs the full one."""
    sweep = r.get("shorter_last_n_minus_full") or {}
    if not sweep:
        return []
    full = r["results"]["last_n_tokens"]
    lines = ["", "Does the model use text far from the cursor? The last-N window at smaller "
             "budgets, same cases, minus the full budget (paired bootstrap):", "",
             "| last-N budget | exact match | edit similarity | edit sim. difference | "
             "95% interval |", "|---|---|---|---|---|",
             f"| {r['context_tokens']} (full) | {full['exact_match'] * 100:.1f}% | "
             f"{full['edit_similarity']:.4f} | | |"]
    for name, d in sorted(sweep.items(), key=lambda kv: kv[1]["budget"], reverse=True):
        res, es = r["results"][name], d["edit_similarity"]
        lines.append(f"| {d['budget']} | {res['exact_match'] * 100:.1f}% | "
                     f"{res['edit_similarity']:.4f} | {es['mean_difference']:+.4f} | "
                     f"[{es['ci95_low']:+.4f}, {es['ci95_high']:+.4f}] |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, help="use only the first N cases")
    parser.add_argument("--cache-dir", type=Path, help="conversion cache (default: user cache)")
    parser.add_argument("--no-sweep", action="store_true",
                        help="skip the last-N runs at smaller budgets")
    parser.add_argument("--no-write", action="store_true", help="print, do not write results")
    args = parser.parse_args(argv)
    results = run(args.limit, args.cache_dir or Q.bench_cache_dir(), sweep=not args.no_sweep)
    text = markdown(results)
    if not args.no_write:
        Q.write_results("context-quality", results, text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
