"""What the repetition filter (server/repetition.py) changes, measured on the held-out sets.

``python -m bench.repetition [--limit N]`` writes ``bench/results/repetition.json`` and
``repetition.md``. One run, the same generations scored twice: without the filter (the model's
text as the server showed it before) and with it. Nothing is timed against a target; the
filter's own cost is a regex over at most a few hundred characters.

- Summaries: every case of ``bench.summaries`` (this repository's frozen functions), greedy,
  48 new tokens, ``first_sentence`` of the output, then ``cut_repeated_words``; scored with
  the same BLEU-4 and exact match as ``bench.summaries``.
- Completions: the cases of ``bench.quality`` (decoder mode, 384 context tokens), first line
  of the output, then ``cut_repeated_text``; exact match and edit similarity against the
  line's real rest, as ``bench.quality`` scores them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from bench.quality import LABMODEL, bench_cache_dir, cpu_description, edit_similarity, write_results

QUANTIZATION = "int8_float32"  # what serving on CPU runs


def _summaries(engine, limit: int | None) -> dict:
    from bench.summaries import load_cases, quality
    from codet5_lsp.inference.prompts import SummaryQuery
    from codet5_lsp.server.repetition import cut_repeated_words
    from codet5_lsp.server.summaries import MAX_SOURCE_TOKENS, first_sentence

    cases = load_cases(limit)
    raw = []
    for case in cases:
        request = engine.summary_request(
            SummaryQuery(case.model_input, max_source_tokens=MAX_SOURCE_TOKENS, max_new_tokens=48)
        )
        raw.append(first_sentence(engine.generate(request).text))
    cut = [cut_repeated_words(text) for text in raw]
    references = [c.reference for c in cases]
    changed = [(c.id, a, b) for c, a, b in zip(cases, raw, cut) if a != b]
    return {
        "cases": len(cases),
        "without": quality(raw, references),
        "with": quality(cut, references),
        "changed": len(changed),
        "examples": [{"case": i, "without": a, "with": b} for i, a, b in changed[:10]],
    }


def _completions(engine, limit: int | None) -> dict:
    from bench.cases import load_cases
    from bench.quality import CONTEXT_TOKENS, predict
    from codet5_lsp.server.repetition import cut_repeated_text

    cases = load_cases(limit=limit)
    lines = [
        predict(
            engine,
            "decoder",
            c.prefix,
            c.suffix,
            context_tokens=CONTEXT_TOKENS,
            target=c.target,
            case=c,
        ).line
        for c in cases
    ]
    cut = [cut_repeated_text(line) for line in lines]
    targets = [c.target.rstrip() for c in cases]

    def score(predictions: list[str]) -> dict:
        return {
            "exact_match": round(
                sum(p == t for p, t in zip(predictions, targets)) / len(targets), 4
            ),
            "edit_similarity": round(
                statistics.fmean(edit_similarity(p, t) for p, t in zip(predictions, targets)), 4
            ),
        }

    changed = [(c.id, a, b) for c, a, b in zip(cases, lines, cut) if a != b]
    return {
        "cases": len(cases),
        "without": score(lines),
        "with": score(cut),
        "changed": len(changed),
        "examples": [{"case": i, "without": a, "with": b} for i, a, b in changed[:10]],
    }


def run(limit: int | None, cache_dir: Path) -> dict:
    from codet5_lsp.inference.engine import CompletionEngine
    from codet5_lsp.inference.models import resolve_model

    started = time.perf_counter()
    files = resolve_model(str(LABMODEL), quantization=QUANTIZATION, cache_dir=cache_dir)
    engine = CompletionEngine(files, device="cpu", compute_type=QUANTIZATION)
    try:
        report = {
            "device": cpu_description(),
            "model": f"labmodel ({QUANTIZATION})",
            "limit": limit,
            "summaries": _summaries(engine, limit),
            "completions": _completions(engine, limit),
        }
    finally:
        engine.close()
    report["runtime_s"] = round(time.perf_counter() - started, 1)
    return report


def markdown(r: dict) -> str:
    s, c = r["summaries"], r["completions"]
    out = [
        "# Repetition filter (`python -m bench.repetition`)",
        "",
        f"Machine: {r['device']}. Model: {r['model']}. The same generations scored without and "
        "with the filter (server/repetition.py), in one run.",
        "",
        "## Summaries (bench.summaries cases)",
        "",
        "| | sentence BLEU-4 | corpus BLEU-4 | exact match % | empty |",
        "|---|---|---|---|---|",
    ]
    for name in ("without", "with"):
        q = s[name]
        out.append(
            f"| {name} filter | {q['sentence_bleu4']} | {q['corpus_bleu4']} | "
            f"{q['exact_match_pct']} | {q['empty']} |"
        )
    out += [
        "",
        f"{s['changed']} of {s['cases']} summaries changed.",
        "",
        "| case | without | with |",
        "|---|---|---|",
    ]
    out += [
        f"| {e['case']} | {e['without'][:120]} | {e['with'] or '(no summary)'} |"
        for e in s["examples"]
    ]
    out += [
        "",
        "## Completions (bench.quality cases, decoder mode, first line)",
        "",
        "| | exact match | edit similarity |",
        "|---|---|---|",
    ]
    for name in ("without", "with"):
        q = c[name]
        out.append(f"| {name} filter | {q['exact_match']} | {q['edit_similarity']} |")
    out += ["", f"{c['changed']} of {c['cases']} completions changed.", ""]
    if c["examples"]:
        out += ["| case | without | with |", "|---|---|---|"]
        out += [f"| {e['case']} | `{e['without'][:100]}` | `{e['with']}` |" for e in c["examples"]]
    out += ["", f"Runtime: {r['runtime_s']} s.", ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, help="first N cases of each set (quick mode)")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    report = run(args.limit, args.cache_dir or bench_cache_dir())
    text = markdown(report)
    if args.no_write:
        print(json.dumps(report, indent=2))
    else:
        write_results("repetition", report, text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
