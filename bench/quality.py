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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

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
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
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


def predict(
    engine, mode: str, prefix: str, suffix: str, *, context_tokens: int, target: str, case: Case
) -> Prediction:
    from codet5_lsp.inference.prompts import build_completion_request, line_stop_rule

    meta = engine.meta
    request = build_completion_request(
        mode,
        prefix,
        suffix,
        engine.tokenizer,
        max_prefix_tokens=context_tokens,
        max_suffix_tokens=SUFFIX_TOKENS,
        max_new_tokens=MAX_NEW_TOKENS,
        bos=meta.bos_token,
        eos=meta.eos_token,
        sentinel=meta.sentinel_token,
        next_sentinel=meta.next_sentinel_token,
        stop_rule=line_stop_rule,
    )
    result = engine.generate(request)
    line = first_line(result.text)
    return Prediction(
        case.id,
        case.kind,
        line,
        line == target.rstrip(),
        edit_similarity(line, target.rstrip()),
        result.model_ms,
    )


def summarize(predictions: list[Prediction]) -> dict:
    def block(preds: list[Prediction]) -> dict:
        return {
            "cases": len(preds),
            "exact_match": round(sum(p.exact for p in preds) / len(preds), 4) if preds else None,
            "edit_similarity": round(statistics.fmean(p.similarity for p in preds), 4)
            if preds
            else None,
            "model_ms_p50": round(percentile([p.model_ms for p in preds], 50), 2)
            if preds
            else None,
        }

    out = block(predictions)
    out["by_kind"] = {
        k: block([p for p in predictions if p.kind == k]) for k in ("mid_line", "line_start")
    }
    return out


def run_modes(engine, cases: list[Case]) -> dict[str, list[Prediction]]:
    return {
        mode: [
            predict(
                engine,
                mode,
                c.prefix,
                c.suffix,
                context_tokens=CONTEXT_TOKENS,
                target=c.target,
                case=c,
            )
            for c in cases
        ]
        for mode in MODES
    }


def agreement(a: list[Prediction], b: list[Prediction]) -> float:
    return round(sum(x.line == y.line for x, y in zip(a, b)) / len(a), 4)


def context_builders() -> tuple[dict[str, Callable] | None, str]:
    """The two context builders of server/context.py, or None and why they are not there."""
    try:
        from codet5_lsp.server import context
    except Exception as exc:  # the context step is being written by someone else
        return None, f"server.context does not import: {type(exc).__name__}: {exc}"
    missing = [
        n for n in ("build_completion_context", "last_n_tokens_context") if not hasattr(context, n)
    ]
    if missing:
        return None, f"server/context.py has no {', '.join(missing)} yet"
    return {
        "tree_sitter": context.build_completion_context,
        "last_n_tokens": context.last_n_tokens_context,
    }, ""


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
                    preds.append(
                        predict(
                            engine,
                            mode,
                            ctx.prefix,
                            ctx.suffix,
                            context_tokens=CONTEXT_TOKENS,
                            target=case.target,
                            case=case,
                        )
                    )
            except Exception as exc:
                out["modes"][mode][name] = {
                    "status": "failed",
                    "reason": f"{type(exc).__name__}: {exc}",
                }
                continue
            out["modes"][mode][name] = summarize(preds)
    return out


def transformers_reference(cases: list[Case], ours: dict[str, list[Prediction]]) -> dict:
    """Hugging Face fp32 in decoder mode on the same cases: the README's reference setup.

    Tells a weaker case set apart from a regression in our prompt handling: if our float32
    engine gives the same first lines as transformers, the figures are the model's.
    """
    from transformers import AutoTokenizer

    from bench.latency import HFRunner
    from codet5_lsp.inference.prompts import build_completion_request, line_stop_rule
    from codet5_lsp.inference.tokenizer import CodeTokenizer

    folder = Path(tempfile.mkdtemp(prefix="codet5-bench-tok-"))
    AutoTokenizer.from_pretrained(str(LABMODEL)).backend_tokenizer.save(str(folder / "t.json"))
    tokenizer = CodeTokenizer(folder / "t.json")
    runner = HFRunner(LABMODEL, "cpu", tokenizer)
    try:
        requests = [
            build_completion_request(
                "decoder",
                c.prefix,
                c.suffix,
                tokenizer,
                max_prefix_tokens=CONTEXT_TOKENS,
                max_suffix_tokens=SUFFIX_TOKENS,
                max_new_tokens=MAX_NEW_TOKENS,
                stop_rule=line_stop_rule,
            )
            for c in cases
        ]
        timings = runner.time(requests, stop_at_newline=True, warmup=0)
    finally:
        runner.close()
    preds = [
        Prediction(
            c.id,
            c.kind,
            first_line(text),
            first_line(text) == c.target.rstrip(),
            edit_similarity(first_line(text), c.target.rstrip()),
            ms,
        )
        for c, text, ms in zip(cases, timings.texts, timings.ms)
    ]
    out = summarize(preds)
    out["same_first_line_as_ours_float32"] = agreement(preds, ours["decoder"])
    return out


# -- token healing: the text as inserted, with and without ------------------------------------


def inserted_line(text: str) -> str:
    """The first line as it would be inserted: leading whitespace kept, trailing ignored."""
    return text.split("\n", 1)[0].rstrip()


def stray_whitespace(line: str, target: str) -> bool:
    """The suggestion starts with a space or tab where the real text starts with code."""
    return line[:1] in (" ", "\t") and target[:1] not in (" ", "\t")


def paired_bootstrap(
    a: list[float], b: list[float], rounds: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """mean(a - b) and its 95% percentile interval over resampled cases (same cases)."""
    import random

    rng = random.Random(seed)
    diffs = [x - y for x, y in zip(a, b)]
    n = len(diffs)
    means = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(rounds))
    return (
        round(sum(diffs) / n, 4),
        round(means[int(0.025 * rounds)], 4),
        round(means[int(0.975 * rounds) - 1], 4),
    )


def server_context(case: Case):
    """The post-processing context of a case, as the server builds it (line prefix/suffix,
    next lines, cursor kind)."""
    from codet5_lsp.server.context import CompletionContext

    line_prefix = case.prefix.rsplit("\n", 1)[-1]
    return CompletionContext(
        prefix=case.prefix,
        suffix=case.suffix,
        line_prefix=line_prefix,
        line_suffix="",
        next_lines="\n".join(case.suffix.split("\n")[1:4]),
        language_id="python",
        cursor_kind="line_start" if not line_prefix.strip() else "mid_line",
    )


def healing_predictions(engine, cases: list[Case], heal: bool) -> list[dict]:
    from codet5_lsp.inference.prompts import build_completion_request, line_stop_rule
    from codet5_lsp.server.postprocess import postprocess

    out = []
    for case in cases:
        request = build_completion_request(
            "decoder",
            case.prefix,
            case.suffix,
            engine.tokenizer,
            max_prefix_tokens=CONTEXT_TOKENS,
            max_suffix_tokens=0,
            max_new_tokens=MAX_NEW_TOKENS,
            stop_rule=line_stop_rule,
            healer=engine.healer if heal else None,
        )
        result = engine.generate(request)
        target = case.target.rstrip()
        raw = inserted_line(result.text)
        shown = inserted_line(postprocess(result.text, server_context(case)) or "")
        out.append(
            {
                "raw": raw,
                "shown": shown,
                "target": target,
                "model_ms": result.model_ms,
                "passes": result.extra.get("passes", 1),
                "healed": bool(request.heal_tokens),
                "kind": case.kind,
            }
        )
    return out


def healing_summary(preds: list[dict], field: str) -> dict:
    n = len(preds)
    exact = [float(p[field] == p["target"]) for p in preds]
    sim = [edit_similarity(p[field], p["target"]) for p in preds]
    stray = [stray_whitespace(p[field], p["target"]) for p in preds]
    return {
        "cases": n,
        "exact_match": round(sum(exact) / n, 4),
        "edit_similarity": round(statistics.fmean(sim), 4),
        "stray_leading_whitespace": round(sum(stray) / n, 4),
    }


def compare_healing(engine, cases: list[Case]) -> dict:
    """Decoder mode on the held-out cases, with and without token healing, in one run; the
    text compared as it would be inserted (leading whitespace kept), raw from the model and
    after the server's post-processing; paired bootstrap intervals of the difference."""
    base = healing_predictions(engine, cases, heal=False)
    healed = healing_predictions(engine, cases, heal=True)
    out: dict = {
        "cases": len(cases),
        "healed_share": round(sum(p["healed"] for p in healed) / len(cases), 4),
    }
    for field in ("raw", "shown"):
        out[field] = {
            "no_healing": healing_summary(base, field),
            "healing": healing_summary(healed, field),
        }
        for metric, fn in (
            ("exact_match", lambda p, field=field: float(p[field] == p["target"])),
            ("edit_similarity", lambda p, field=field: edit_similarity(p[field], p["target"])),
        ):
            out[field][f"{metric}_difference"] = paired_bootstrap(
                [fn(p) for p in healed], [fn(p) for p in base]
            )
    for kind in ("mid_line", "line_start"):
        sub_b = [p for p in base if p["kind"] == kind]
        sub_h = [p for p in healed if p["kind"] == kind]
        if sub_b:
            out.setdefault("by_kind", {})[kind] = {
                "no_healing": healing_summary(sub_b, "raw"),
                "healing": healing_summary(sub_h, "raw"),
            }
    out["examples"] = [
        {"target": b["target"], "no_healing": b["raw"], "healing": h["raw"]}
        for b, h in zip(base, healed)
        if b["raw"] != h["raw"]
    ][:10]
    return out


def healing_latency(engine, cases: list[Case], policies: dict | None = None) -> dict:
    """Model time per request (ms), no healing vs healing under each policy, same cases, in
    one run (interleaved per case so machine noise hits all variants alike)."""
    from codet5_lsp.inference.healing import HealingPolicy
    from codet5_lsp.inference.prompts import build_completion_request, line_stop_rule

    policies = policies or {
        "healing (cpu policy)": HealingPolicy.for_device("cpu"),
        "healing (greedy first, no word shortcut)": HealingPolicy(1, False),
    }
    timings: dict[str, list[float]] = {"no healing": [], **{k: [] for k in policies}}
    passes: dict[str, list[int]] = {k: [] for k in policies}
    saved = engine.healing_policy
    try:
        for case in cases:
            for name in timings:
                heal = name != "no healing"
                if heal:
                    engine.healing_policy = policies[name]
                request = build_completion_request(
                    "decoder",
                    case.prefix,
                    case.suffix,
                    engine.tokenizer,
                    max_prefix_tokens=CONTEXT_TOKENS,
                    max_suffix_tokens=0,
                    max_new_tokens=MAX_NEW_TOKENS,
                    stop_rule=line_stop_rule,
                    healer=engine.healer if heal else None,
                )
                started = time.perf_counter()
                result = engine.generate(request)
                timings[name].append((time.perf_counter() - started) * 1000)
                if heal:
                    passes[name].append(int(result.extra.get("passes", 1)))
    finally:
        engine.healing_policy = saved
    base = percentile(timings["no healing"], 50)
    out = {}
    for name, values in timings.items():
        p50 = percentile(values, 50)
        out[name] = {
            "p50_ms": round(p50, 1),
            "p95_ms": round(percentile(values, 95), 1),
            "mean_ms": round(statistics.fmean(values), 1),
            "p50_ratio": round(p50 / base, 2),
        }
        if name in passes:
            out[name]["mean_passes"] = round(statistics.fmean(passes[name]), 2)
            out[name]["one_pass_share"] = round(
                sum(p == 1 for p in passes[name]) / len(passes[name]), 3
            )
    return out


def run_healing(limit: int | None, cache_dir: Path, latency_cases: int) -> dict:
    """The healing section alone (quality in float32, latency in the CPU default int8)."""
    from codet5_lsp.inference.engine import CompletionEngine
    from codet5_lsp.inference.models import resolve_model

    cases = load_cases(limit=limit)
    started = time.perf_counter()
    out: dict = {"device": cpu_description(), "model": "labmodel", "cases": len(cases)}
    files = resolve_model(str(LABMODEL), quantization="float32", cache_dir=cache_dir)
    engine = CompletionEngine(files, device="cpu", compute_type="float32")
    try:
        out["quality_float32"] = compare_healing(engine, cases)
    finally:
        engine.close()
    files = resolve_model(str(LABMODEL), quantization="int8", cache_dir=cache_dir)
    engine = CompletionEngine(files, device="cpu", compute_type="int8")
    try:
        out["latency_int8_labmodel"] = healing_latency(engine, cases[:latency_cases])
    finally:
        engine.close()
    out["runtime_s"] = round(time.perf_counter() - started, 1)
    return out


def healing_markdown(h: dict) -> str:
    q = h["quality_float32"]
    lines = [
        "## Token healing: the text as inserted, with and without (float32, decoder mode)",
        "",
        f"{q['cases']} held-out cases; healing backed off the prompt's tail in "
        f"{q['healed_share']:.0%} of them. Compared as inserted: leading whitespace kept, "
        "trailing ignored. *Raw*: the model's first line; *shown*: after the server's "
        "post-processing (which also caps an indent deeper than the block needs). Differences "
        "are healing minus no healing, with 95% paired-bootstrap intervals.",
        "",
        "| text | variant | exact match | edit similarity | stray leading whitespace |",
        "|---|---|---|---|---|",
    ]
    for field in ("raw", "shown"):
        for variant in ("no_healing", "healing"):
            s = q[field][variant]
            lines.append(
                f"| {field} | {variant.replace('_', ' ')} | {s['exact_match']:.1%} | "
                f"{s['edit_similarity']:.3f} | {s['stray_leading_whitespace']:.1%} |"
            )
    lines.append("")
    for field in ("raw", "shown"):
        em, es = q[field]["exact_match_difference"], q[field]["edit_similarity_difference"]
        lines.append(
            f"- {field}: exact match {em[0]:+.1%} [{em[1]:+.1%}, {em[2]:+.1%}], "
            f"edit similarity {es[0]:+.4f} [{es[1]:+.4f}, {es[2]:+.4f}]"
        )
    lines += [
        "",
        "| kind | no healing EM / ES / stray | healing EM / ES / stray |",
        "|---|---|---|",
    ]
    for kind, d in q.get("by_kind", {}).items():
        a, b = d["no_healing"], d["healing"]
        lines.append(
            f"| {kind} | {a['exact_match']:.1%} / {a['edit_similarity']:.3f} / "
            f"{a['stray_leading_whitespace']:.1%} | {b['exact_match']:.1%} / "
            f"{b['edit_similarity']:.3f} / {b['stray_leading_whitespace']:.1%} |"
        )
    lat = h["latency_int8_labmodel"]
    lines += [
        "",
        "### Cost on CPU (labmodel int8, model time per request, same cases, interleaved)",
        "",
        "| variant | p50 ms | p95 ms | mean ms | p50 ratio | mean passes | one-pass share |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in lat.items():
        lines.append(
            f"| {name} | {s['p50_ms']} | {s['p95_ms']} | {s['mean_ms']} | "
            f"{s['p50_ratio']} | {s.get('mean_passes', 1)} | "
            f"{s.get('one_pass_share', 1.0)} |"
        )
    lines += ["", "| target | no healing | healing |", "|---|---|---|"]
    for ex in q["examples"]:
        cells = [ex["target"], ex["no_healing"], ex["healing"]]
        lines.append(
            "| "
            + " | ".join("`" + c.replace("|", "\\|").replace("`", "'") + "`" for c in cells)
            + " |"
        )
    return "\n".join(lines) + "\n"


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
            results["quantizations"][quant] = {
                m: summarize(p) for m, p in predictions[quant].items()
            }
            if quant == "float32":
                results["context_comparison"] = compare_contexts(
                    engine, cases, ("decoder", "infill")
                )
        finally:
            engine.close()
    results["transformers_reference"] = transformers_reference(cases, predictions["float32"])
    results["int8_vs_float32_agreement"] = {
        m: agreement(predictions["int8"][m], predictions["float32"][m]) for m in MODES
    }
    results["examples"] = [
        {
            "case": c.id,
            "kind": c.kind,
            "target": c.target,
            **{m: predictions["float32"][m][i].line for m in MODES},
        }
        for i, c in enumerate(cases[:8])
    ]
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
                f"{s['model_ms_p50']:.1f} |"
            )
    hf = r["transformers_reference"]
    lines += [
        f"| transformers fp32 (reference) | decoder | {hf['exact_match']:.1%} | "
        f"{hf['edit_similarity']:.3f} | {hf['by_kind']['mid_line']['exact_match']:.1%} / "
        f"{hf['by_kind']['mid_line']['edit_similarity']:.3f} | "
        f"{hf['by_kind']['line_start']['exact_match']:.1%} / "
        f"{hf['by_kind']['line_start']['edit_similarity']:.3f} | "
        f"{hf['model_ms_p50']:.1f} |",
        "",
        "Our float32 decoder mode and transformers fp32 give the same first line in "
        f"{hf['same_first_line_as_ours_float32']:.1%} of cases.",
    ]
    agree = ", ".join(f"{m} {v:.1%}" for m, v in r["int8_vs_float32_agreement"].items())
    lines += [
        "",
        f"int8 vs float32, same first line: {agree}.",
        "",
        "Reference (labmodel README, Hugging Face fp32, decoder mode, 150 mid-line cases "
        "in unseen packages): exact match 3.3%, edit similarity 0.29.",
        "",
        "## Context step: tree-sitter context vs last N tokens (float32)",
        "",
    ]
    cc = r.get("context_comparison", {})
    if cc.get("status") != "ok":
        lines.append(f"Not measured: {cc.get('reason', 'not run')}.")
    else:
        lines += [
            f"Same budget: {cc['context_tokens']} tokens.",
            "",
            "| mode | context | exact match | edit similarity |",
            "|---|---|---|---|",
        ]
        for mode, by_name in cc["modes"].items():
            for name, s in by_name.items():
                if "exact_match" in s:
                    lines.append(
                        f"| {mode} | {name} | {s['exact_match']:.1%} | {s['edit_similarity']:.3f} |"
                    )
                else:
                    lines.append(f"| {mode} | {name} | failed: {s['reason']} | |")
    lines += [
        "",
        "## Examples (float32)",
        "",
        "| case | target | decoder | seq2seq | infill |",
        "|---|---|---|---|---|",
    ]
    for ex in r["examples"]:
        cells = [ex["case"], ex["target"], ex["decoder"], ex["seq2seq"], ex["infill"]]
        lines.append(
            "| "
            + " | ".join("`" + c.replace("|", "\\|").replace("`", "'") + "`" for c in cells)
            + " |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="labmodel completion quality on held-out code")
    parser.add_argument("--limit", type=int, help="use only the first N cases")
    parser.add_argument("--cache-dir", type=Path, help="conversion cache (default: user cache)")
    parser.add_argument("--no-write", action="store_true", help="print, do not write results")
    parser.add_argument(
        "--healing-only",
        action="store_true",
        help="only the token-healing section (quality_healing.{json,md})",
    )
    parser.add_argument(
        "--latency-cases",
        type=int,
        default=60,
        help="cases timed per variant in the healing section",
    )
    args = parser.parse_args(argv)
    if args.healing_only:
        healing = run_healing(args.limit, args.cache_dir or bench_cache_dir(), args.latency_cases)
        text = (
            f"# Token healing: labmodel on held-out code\n\nDevice: {healing['device']}. "
            f"Run time {healing['runtime_s']} s.\n\n" + healing_markdown(healing)
        )
        if not args.no_write:
            write_results("quality-healing", healing, text)
        print(text)
        return 0
    results = run(args.limit, args.cache_dir or bench_cache_dir())
    text = markdown(results)
    if not args.no_write:
        write_results("quality", results, text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
