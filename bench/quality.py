"""Completion quality of the labmodel on the held-out cases, per mode and quantization.

``python -m bench.quality`` writes ``bench/results/quality.json`` and ``quality.md``.

What it measures (greedy, the server's single-line stop rule): the first generated line against
the target (rest of the line, or the whole line at a line start): exact match (trailing blanks
ignored) and edit similarity (1 - Levenshtein / longer length, as in the labmodel README), and
the median model time. The labmodel is converted twice (float32, int8); the int8 vs float32
first-line agreement says what quantization costs. If the context step
(``server/context.py``) offers both ``build_completion_context`` (tree-sitter) and
``last_n_tokens_context``, it also compares them at the same token budget.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from bench.cases import Case, load_cases

RESULTS_DIR = Path(__file__).resolve().parent / "results"
LABMODEL = Path(__file__).resolve().parents[2] / "shared" / "models" / "labmodel"
MODES = ("decoder", "seq2seq", "infill")
QUANTIZATIONS = ("float32", "int8")
CONTEXT_TOKENS = 384  # the labmodel's training window and the server's default budget
SUFFIX_TOKENS = 128
MAX_NEW_TOKENS = 48


# -- metrics and environment (shared with bench.latency) -----------------------------------

def levenshtein(a: str, b: str) -> int:
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1,
                               previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def edit_similarity(prediction: str, target: str) -> float:
    """1 - normalized Levenshtein distance; two empty strings are identical."""
    longest = max(len(prediction), len(target))
    return 1.0 if longest == 0 else 1.0 - levenshtein(prediction, target) / longest


def first_line(text: str) -> str:
    return text.split("\n", 1)[0].rstrip()


def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def cpu_description() -> str:
    """'<CPU model name>, N cores' (the cores this process may use)."""
    name = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"CPU {name}, {cores} cores"


def bench_cache_dir() -> Path:
    """Where benchmark conversions are kept between runs (CODET5_BENCH_CACHE overrides)."""
    fixed = os.environ.get("CODET5_BENCH_CACHE")
    if fixed:
        return Path(fixed)
    import platformdirs

    return Path(platformdirs.user_cache_dir("codet5-lsp-bench"))


def write_results(name: str, data: dict, markdown: str) -> None:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
    (RESULTS_DIR / f"{name}.md").write_text(markdown)


# -- quality runs ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Prediction:
    case_id: str
    kind: str
    line: str
    exact: bool
    similarity: float
    model_ms: float


def predict(engine, mode: str, prefix: str, suffix: str, *, context_tokens: int,
            target: str, case: Case) -> Prediction:
    from codet5_lsp.inference.prompts import build_completion_request, line_stop_rule

    meta = engine.meta
    request = build_completion_request(
        mode, prefix, suffix, engine.tokenizer, max_prefix_tokens=context_tokens,
        max_suffix_tokens=SUFFIX_TOKENS, max_new_tokens=MAX_NEW_TOKENS, bos=meta.bos_token,
        eos=meta.eos_token, sentinel=meta.sentinel_token, next_sentinel=meta.next_sentinel_token,
        stop_rule=line_stop_rule)
    result = engine.generate(request)
    line = first_line(result.text)
    return Prediction(case.id, case.kind, line, line == target.rstrip(),
                      edit_similarity(line, target.rstrip()), result.model_ms)


def summarize(predictions: list[Prediction]) -> dict:
    def block(preds: list[Prediction]) -> dict:
        return {
            "cases": len(preds),
            "exact_match": round(sum(p.exact for p in preds) / len(preds), 4) if preds else None,
            "edit_similarity": round(statistics.fmean(p.similarity for p in preds), 4)
            if preds else None,
            "model_ms_p50": round(percentile([p.model_ms for p in preds], 50), 2)
            if preds else None,
        }

    out = block(predictions)
    out["by_kind"] = {k: block([p for p in predictions if p.kind == k])
                      for k in ("mid_line", "line_start")}
    return out


def run_modes(engine, cases: list[Case]) -> dict[str, list[Prediction]]:
    return {mode: [predict(engine, mode, c.prefix, c.suffix, context_tokens=CONTEXT_TOKENS,
                           target=c.target, case=c) for c in cases]
            for mode in MODES}


def agreement(a: list[Prediction], b: list[Prediction]) -> float:
    return round(sum(x.line == y.line for x, y in zip(a, b)) / len(a), 4)


def context_builders() -> tuple[dict[str, Callable] | None, str]:
    """The two context builders of server/context.py, or None and why they are not there."""
    try:
        from codet5_lsp.server import context
    except Exception as exc:  # the context step is being written by someone else
        return None, f"server.context does not import: {type(exc).__name__}: {exc}"
    missing = [n for n in ("build_completion_context", "last_n_tokens_context")
               if not hasattr(context, n)]
    if missing:
        return None, f"server/context.py has no {', '.join(missing)} yet"
    return {"tree_sitter": context.build_completion_context,
            "last_n_tokens": context.last_n_tokens_context}, ""


def compare_contexts(engine, cases: list[Case], modes: tuple[str, ...]) -> dict:
    """Same token budget, the tree-sitter context vs the last N tokens before the cursor."""
    builders, why = context_builders()
    if builders is None:
        return {"status": "not run", "reason": why}
    try:
        from lsprotocol import types

        from codet5_lsp.server.documents import DocumentStore
    except Exception as exc:
        return {"status": "not run", "reason": f"documents do not import: {exc}"}
    out: dict = {"status": "ok", "context_tokens": CONTEXT_TOKENS, "modes": {}}
    store = DocumentStore()
    docs = {}
    for case in cases:
        uri = f"file:///bench/{case.id.replace(':', '_')}.py"
        docs[case.id] = store.open(uri, case.document, "python", 1)
    count = engine.tokenizer.count
    for mode in modes:
        out["modes"][mode] = {}
        for name, build in builders.items():
            preds = []
            try:
                for case in cases:
                    position = types.Position(line=case.line, character=case.character)
                    ctx = build(docs[case.id], position, count, CONTEXT_TOKENS, SUFFIX_TOKENS)
                    preds.append(predict(engine, mode, ctx.prefix, ctx.suffix,
                                         context_tokens=CONTEXT_TOKENS, target=case.target,
                                         case=case))
            except Exception as exc:
                out["modes"][mode][name] = {"status": "failed",
                                            "reason": f"{type(exc).__name__}: {exc}"}
                continue
            out["modes"][mode][name] = summarize(preds)
    return out


def transformers_reference(cases: list[Case], ours: dict[str, list[Prediction]]) -> dict:
    """Hugging Face fp32 in decoder mode on the same cases: the README's reference setup.

    Tells a weaker case set apart from a regression in our prompt handling: if our float32
    engine gives the same first lines as transformers, the figures are the model's.
    """
    from bench.latency import HFRunner
    from codet5_lsp.inference.prompts import build_completion_request, line_stop_rule
    from codet5_lsp.inference.tokenizer import CodeTokenizer
    from transformers import AutoTokenizer

    folder = Path(tempfile.mkdtemp(prefix="codet5-bench-tok-"))
    AutoTokenizer.from_pretrained(str(LABMODEL)).backend_tokenizer.save(str(folder / "t.json"))
    tokenizer = CodeTokenizer(folder / "t.json")
    runner = HFRunner(LABMODEL, "cpu", tokenizer)
    try:
        requests = [build_completion_request(
            "decoder", c.prefix, c.suffix, tokenizer, max_prefix_tokens=CONTEXT_TOKENS,
            max_suffix_tokens=SUFFIX_TOKENS, max_new_tokens=MAX_NEW_TOKENS,
            stop_rule=line_stop_rule) for c in cases]
        timings = runner.time(requests, stop_at_newline=True, warmup=0)
    finally:
        runner.close()
    preds = [Prediction(c.id, c.kind, first_line(text), first_line(text) == c.target.rstrip(),
                        edit_similarity(first_line(text), c.target.rstrip()), ms)
             for c, text, ms in zip(cases, timings.texts, timings.ms)]
    out = summarize(preds)
    out["same_first_line_as_ours_float32"] = agreement(preds, ours["decoder"])
    return out


def run(limit: int | None, cache_dir: Path) -> dict:
    from codet5_lsp.inference.engine import CompletionEngine
    from codet5_lsp.inference.models import resolve_model

    cases = load_cases(limit=limit)
    started = time.perf_counter()
    results: dict = {
        "device": cpu_description(),
        "model": "labmodel (29M, /work/shared/models/labmodel)",
        "cases": len(cases),
        "cases_by_kind": {k: sum(c.kind == k for c in cases) for k in ("mid_line", "line_start")},
        "context_tokens": CONTEXT_TOKENS,
        "suffix_tokens": SUFFIX_TOKENS,
        "quantizations": {},
    }
    predictions: dict[str, dict[str, list[Prediction]]] = {}
    for quant in QUANTIZATIONS:
        files = resolve_model(str(LABMODEL), quantization=quant, cache_dir=cache_dir)
        engine = CompletionEngine(files, device="cpu", compute_type=quant)
        try:
            predictions[quant] = run_modes(engine, cases)
            results["quantizations"][quant] = {m: summarize(p)
                                               for m, p in predictions[quant].items()}
            if quant == "float32":
                results["context_comparison"] = compare_contexts(engine, cases,
                                                                 ("decoder", "infill"))
        finally:
            engine.close()
    results["transformers_reference"] = transformers_reference(cases, predictions["float32"])
    results["int8_vs_float32_agreement"] = {
        m: agreement(predictions["int8"][m], predictions["float32"][m]) for m in MODES}
    results["examples"] = [
        {"case": c.id, "kind": c.kind, "target": c.target,
         **{m: predictions["float32"][m][i].line for m in MODES}}
        for i, c in enumerate(cases[:8])]
    results["runtime_s"] = round(time.perf_counter() - started, 1)
    return results


def markdown(r: dict) -> str:
    lines = [
        "# Completion quality: labmodel on held-out code",
        "",
        f"Device: {r['device']}. {r['cases']} cases ({r['cases_by_kind']['mid_line']} mid-line, "
        f"{r['cases_by_kind']['line_start']} line-start) from this repository's frozen source "
        f"(`bench/data/heldout/`); context {r['context_tokens']} tokens before the cursor "
        f"(+{r['suffix_tokens']} after, infill only), greedy, first generated line vs target. "
        f"Run time {r['runtime_s']} s.",
        "",
        "| quantization | mode | exact match | edit similarity | mid-line EM / ES | "
        "line-start EM / ES | model ms p50 |",
        "|---|---|---|---|---|---|---|",
    ]
    for quant, modes in r["quantizations"].items():
        for mode, s in modes.items():
            mid, start = s["by_kind"]["mid_line"], s["by_kind"]["line_start"]
            lines.append(
                f"| {quant} | {mode} | {s['exact_match']:.1%} | {s['edit_similarity']:.3f} | "
                f"{mid['exact_match']:.1%} / {mid['edit_similarity']:.3f} | "
                f"{start['exact_match']:.1%} / {start['edit_similarity']:.3f} | "
                f"{s['model_ms_p50']:.1f} |")
    hf = r["transformers_reference"]
    lines += [f"| transformers fp32 (reference) | decoder | {hf['exact_match']:.1%} | "
              f"{hf['edit_similarity']:.3f} | {hf['by_kind']['mid_line']['exact_match']:.1%} / "
              f"{hf['by_kind']['mid_line']['edit_similarity']:.3f} | "
              f"{hf['by_kind']['line_start']['exact_match']:.1%} / "
              f"{hf['by_kind']['line_start']['edit_similarity']:.3f} | "
              f"{hf['model_ms_p50']:.1f} |", "",
              "Our float32 decoder mode and transformers fp32 give the same first line in "
              f"{hf['same_first_line_as_ours_float32']:.1%} of cases."]
    agree = ", ".join(f"{m} {v:.1%}" for m, v in r["int8_vs_float32_agreement"].items())
    lines += ["", f"int8 vs float32, same first line: {agree}.", "",
              "Reference (labmodel README, Hugging Face fp32, decoder mode, 150 mid-line cases "
              "in unseen packages): exact match 3.3%, edit similarity 0.29.", "",
              "## Context step: tree-sitter context vs last N tokens (float32)", ""]
    cc = r.get("context_comparison", {})
    if cc.get("status") != "ok":
        lines.append(f"Not measured: {cc.get('reason', 'not run')}.")
    else:
        lines += [f"Same budget: {cc['context_tokens']} tokens.", "",
                  "| mode | context | exact match | edit similarity |", "|---|---|---|---|"]
        for mode, by_name in cc["modes"].items():
            for name, s in by_name.items():
                if "exact_match" in s:
                    lines.append(f"| {mode} | {name} | {s['exact_match']:.1%} | "
                                 f"{s['edit_similarity']:.3f} |")
                else:
                    lines.append(f"| {mode} | {name} | failed: {s['reason']} | |")
    lines += ["", "## Examples (float32)", "", "| case | target | decoder | seq2seq | infill |",
              "|---|---|---|---|---|"]
    for ex in r["examples"]:
        cells = [ex["case"], ex["target"], ex["decoder"], ex["seq2seq"], ex["infill"]]
        lines.append("| " + " | ".join("`" + c.replace("|", "\\|").replace("`", "'") + "`"
                                       for c in cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="labmodel completion quality on held-out code")
    parser.add_argument("--limit", type=int, help="use only the first N cases")
    parser.add_argument("--cache-dir", type=Path, help="conversion cache (default: user cache)")
    parser.add_argument("--no-write", action="store_true", help="print, do not write results")
    args = parser.parse_args(argv)
    results = run(args.limit, args.cache_dir or bench_cache_dir())
    text = markdown(results)
    if not args.no_write:
        write_results("quality", results, text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
