"""Speculation over LSP, and the context budget per device (CPU).

``python -m bench.speculation [--quick] [--part lsp|budget|source|all]`` writes
``bench/results/speculation-cpu.{json,md}`` (part ``lsp``),
``bench/results/context-budget-cpu.{json,md}`` (part ``budget``) and
``bench/results/speculation-source-{cpu,cuda}.{json,md}`` (part ``source``, not in ``all``;
``--device cuda`` runs it on a GPU).

Part ``lsp``: against ``codet5-lsp serve`` (stdio, default settings but no summaries), at
held-out line starts (the cursor after the indentation of a line whose text was removed):

1. the line suggestion S is asked for and shown; the client "reads" it for 0.75 s;
2. it accepts S: didChange inserting S, then the item's ``codet5.accepted`` command, then the
   inline request VS Code sends at the end of the accepted line;
3. Enter: didChange inserting "\\n" and the editor's auto-indent (the line's indentation, one
   level more after a ":"), then an inline request at the new cursor: **after-enter**;
4. the same request on a fresh document holding the same text: **fresh**.

Reported: p50/p95 of both (request sent -> response, over stdio), their p50 ratio, how often
after-enter came from the speculation (no model call: ``codet5.debugStats``), and how often
its text equals fresh's and the answer with speculation off on a document with the same
history (differing pairs listed). Only cases where S ended at the model's line break can be
speculated; the others are counted and skipped. The labmodel only: a random-weight model
never ends a line, so nothing it suggests is speculated.

Part ``source``: ``speculationSource`` "separate" (a background call after the suggestion is
shown) against "same_call" (the shown request generates the next line too), the lsp flow on
the same cases with one server each, interleaved: the shown suggestion's latency (the same
call makes it longer), after-enter latency, its text against fresh, and model calls.

Part ``budget``: the context budget (``maxContextTokens``) at 128, 256 and 384 tokens, in one
run, through the server's own path (``prompt_for``: context step, token healing, decoder mode;
``postprocess``): quality of the labmodel (exact first line, edit similarity) and model time
of the labmodel and of a random-weight codet5p-220m-shaped model (16 new tokens, no stop rule
and no healing for it: random weights never end a line, so a fixed length isolates the cost
of the context), on the same held-out cases with at least 384 tokens of text before the cursor.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench.cases import Case, load_cases
from bench.quality import (
    LABMODEL,
    bench_cache_dir,
    cpu_description,
    edit_similarity,
    first_line,
    percentile,
    write_results,
)
from bench.typing import Client

READ_S = 0.75
BUDGETS = (128, 256, 384)
SHAPE = "codet5p-220m-shaped"
QUICK = {"lsp_cases": 24, "quality_cases": 60, "shape_cases": 6, "source_cases": 16}
FULL = {"lsp_cases": 60, "quality_cases": 168, "shape_cases": 12, "source_cases": 40}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _r(x: float | None, digits: int = 1) -> float | None:
    return None if x is None else round(x, digits)


# -- models ---------------------------------------------------------------------------------


def labmodel_folder(cache: Path) -> Path:
    from codet5_lsp.inference.models import resolve_model

    return resolve_model(str(LABMODEL), quantization="int8_float32").folder


def shape_folder(cache: Path) -> Path:
    from bench.latency import SHAPES, converted, random_t5_checkpoint

    hf = random_t5_checkpoint(SHAPE, SHAPES[SHAPE], cache / f"{SHAPE}-hf")
    tag = f"ct2-{version('ctranslate2')}-int8"
    return converted(
        hf, cache / f"{SHAPE}--{tag}--parallel-prefix", "int8", parallel_prefix=True
    ).folder


# -- part lsp -------------------------------------------------------------------------------


def auto_indent(line: str, unit: str = "    ") -> str:
    """What VS Code inserts after Enter at the end of a Python `line`: its indentation, one
    level more after a block opener or an open bracket."""
    indent = line[: len(line) - len(line.lstrip())]
    return indent + unit if line.rstrip().endswith((":", "(", "[", "{")) else indent


def _position(text: str, offset: int) -> dict:
    before = text[:offset]
    line = before.count("\n")
    return {"line": line, "character": offset - (before.rfind("\n") + 1)}


def _inline(client: Client, uri: str, text: str, offset: int) -> tuple[float, dict]:
    """(ms, first item or {}) of an inline completion at `offset`."""
    start = time.perf_counter()
    reply = client.call(
        "textDocument/inlineCompletion",
        {
            "textDocument": {"uri": uri},
            "position": _position(text, offset),
            "context": {"triggerKind": 2},
        },
    )
    ms = (time.perf_counter() - start) * 1000
    items = ((reply.get("result") or {}).get("items")) or []
    return ms, (items[0] if items else {})


def _insert(client: Client, uri: str, version: int, text: str, offset: int, inserted: str) -> str:
    at = _position(text, offset)
    client.notify(
        "textDocument/didChange",
        {
            "textDocument": {"uri": uri, "version": version},
            "contentChanges": [{"range": {"start": at, "end": at}, "text": inserted}],
        },
    )
    return text[:offset] + inserted + text[offset:]


def _stats(client: Client) -> dict:
    return client.call("workspace/executeCommand", {"command": "codet5.debugStats"})["result"]


def start_server(model_folder: Path, options: dict[str, Any], device: str = "cpu") -> Client:
    """`codet5-lsp serve` on the model, int8 on CPU (the compute type's default on a GPU)."""
    state = Path(tempfile.mkdtemp(prefix="codet5-bench-spec-"))
    compute = "int8" if device == "cpu" else "auto"
    client = Client(
        ["--model", str(model_folder), "--device", device, "--compute-type", compute], state
    )
    client.initialize(options)
    return client


def _open(client: Client, uri: str, text: str) -> None:
    client.notify(
        "textDocument/didOpen",
        {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}},
    )


def _close(client: Client, uri: str) -> None:
    client.notify("textDocument/didClose", {"textDocument": {"uri": uri}})


def warm_up(client: Client, case: Case) -> None:
    _open(client, "file:///bench/warm.py", case.document)
    _inline(client, "file:///bench/warm.py", case.document, len(case.prefix))
    _close(client, "file:///bench/warm.py")


def run_case(client: Client, tag: str, case: Case) -> dict:
    """One case: shown, read, accept, line end, Enter + auto-indent, after-enter, and the same
    request on a fresh document. A row, or {"skipped": why, "shown_ms": ...} when nothing
    could be speculated (no suggestion, or not ended at the model's line break)."""
    uri = f"file:///bench/s{tag}.py"
    text = case.document
    _open(client, uri, text)
    cursor = len(case.prefix)
    before = _stats(client)
    shown_ms, item = _inline(client, uri, text, cursor)
    shown = item.get("insertText")
    if not shown:
        _close(client, uri)
        return {"skipped": "no_suggestion", "shown_ms": _r(shown_ms), "shown": None}
    time.sleep(READ_S)  # the person reads the ghost text
    started = _stats(client)["speculationChains"] - before["speculationChains"]
    if not started:
        _close(client, uri)  # not ended at the model's line break
        return {"skipped": "not_a_whole_line", "shown_ms": _r(shown_ms), "shown": shown}
    text = _insert(client, uri, 2, text, cursor, shown)
    client.call(
        "workspace/executeCommand",
        {"command": item["command"]["command"], "arguments": item["command"]["arguments"]},
    )
    end = cursor + len(shown)
    line_end_ms, line_end_item = _inline(client, uri, text, end)
    line_start = text.rfind("\n", 0, end) + 1
    indent = auto_indent(text[line_start:end])
    text = _insert(client, uri, 3, text, end, "\n" + indent)
    at = end + 1 + len(indent)
    mid = _stats(client)
    after_ms, after_item = _inline(client, uri, text, at)
    after = _stats(client)
    # the fresh request sees the same open documents (none) as the speculation did
    _close(client, uri)
    fresh_uri = f"file:///bench/f{tag}.py"
    _open(client, fresh_uri, text)
    # parsed first, as a document open for a while is (showContext awaits the parse and
    # leaves no trace); a completion waits at most 50 ms for a tree
    client.call(
        "workspace/executeCommand",
        {
            "command": "codet5.showContext",
            "arguments": [{"uri": fresh_uri, "position": _position(text, at)}],
        },
    )
    fresh_ms, fresh_item = _inline(client, fresh_uri, text, at)
    _close(client, fresh_uri)
    return {
        "case": case.id,
        "shown": shown,
        "shown_ms": _r(shown_ms),
        "line_end_ms": _r(line_end_ms),
        "line_end_item": line_end_item.get("insertText"),
        "indent": indent,
        "after_ms": _r(after_ms),
        "fresh_ms": _r(fresh_ms),
        "after": after_item.get("insertText"),
        "fresh": fresh_item.get("insertText"),
        "after_model_calls": after["modelCalls"] - mid["modelCalls"],
        # model calls up to the answer after Enter: the shown request's and speculation's
        "model_calls": mid["modelCalls"] - before["modelCalls"],
        "speculative_calls": mid["speculativeModelCalls"] - before["speculativeModelCalls"],
        "same_call_steps": mid["speculationSameCall"] - before["speculationSameCall"],
        "same_call_fallbacks": mid["speculationSameCallFallbacks"]
        - before["speculationSameCallFallbacks"],
        "same_call_block_fallbacks": mid["speculationSameCallBlockFallbacks"]
        - before["speculationSameCallBlockFallbacks"],
        "speculation_ms": _r(mid["speculativeMs"] - before["speculativeMs"]),
        "after_from_speculation": after["speculationHits"] > mid["speculationHits"]
        or after["speculationBlankLines"] > mid["speculationBlankLines"],
        "waited": after["speculationWaits"] > mid["speculationWaits"],
    }


def lsp_speed(model_folder: Path, cases: list[Case], intra_threads: int) -> dict:
    client = start_server(
        model_folder,
        {"requestTimeoutMs": 600_000, "summariesEnabled": False, "intraThreads": intra_threads},
    )
    rows: list[dict] = []
    skipped = {"no_suggestion": 0, "not_a_whole_line": 0}
    try:
        warm_up(client, cases[0])
        for i, case in enumerate(cases[1:]):
            row = run_case(client, str(i), case)
            if "skipped" in row:
                skipped[row["skipped"]] += 1
                continue
            without, without_ms = replay_without_speculation(
                client, i, case, row["shown"], row["indent"]
            )
            row["without_speculation"] = without
            row["without_speculation_ms"] = _r(without_ms)
            rows.append(row)
        final = _stats(client)
    finally:
        client.close()
    return summarize_speed(rows, skipped, final)


def replay_without_speculation(
    client: Client, i: int, case: Case, shown: str, indent: str
) -> tuple[str | None, float | None]:
    """The answer after accept + Enter with speculation off, on a document that went through
    the same requests and edits: what the user gets without speculation (and its ms)."""
    client.notify(
        "workspace/didChangeConfiguration", {"settings": {"codet5": {"speculation": False}}}
    )
    uri = f"file:///bench/r{i}.py"
    text = case.document
    client.notify(
        "textDocument/didOpen",
        {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}},
    )
    cursor = len(case.prefix)
    _ms, item = _inline(client, uri, text, cursor)
    answer = ms = None
    if item.get("insertText") == shown:
        text = _insert(client, uri, 2, text, cursor, shown)
        end = cursor + len(shown)
        _inline(client, uri, text, end)
        text = _insert(client, uri, 3, text, end, "\n" + indent)
        ms, after = _inline(client, uri, text, end + 1 + len(indent))
        answer = after.get("insertText")
    client.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    client.notify(
        "workspace/didChangeConfiguration", {"settings": {"codet5": {"speculation": True}}}
    )
    return answer, ms


def summarize_speed(rows: list[dict], skipped: dict, stats: dict) -> dict:
    after = [r["after_ms"] for r in rows]
    fresh = [r["fresh_ms"] for r in rows]
    same = [r for r in rows if r["after"] == r["fresh"]]
    p50a, p50f = percentile(after, 50), percentile(fresh, 50)
    return {
        "cases": len(rows),
        "skipped": skipped,
        "after_enter_p50_ms": _r(p50a),
        "after_enter_p95_ms": _r(percentile(after, 95)),
        "fresh_p50_ms": _r(p50f),
        "fresh_p95_ms": _r(percentile(fresh, 95)),
        "p50_speedup": _r(p50f / p50a, 2) if p50a and p50f else None,
        "served_without_model_call": sum(r["after_model_calls"] == 0 for r in rows),
        "from_speculation": sum(r["after_from_speculation"] for r in rows),
        "waited_for_speculation": sum(r["waited"] for r in rows),
        "same_text": len(same),
        "same_text_share": _r(len(same) / len(rows), 3) if rows else None,
        "same_as_without_speculation": sum(r["after"] == r["without_speculation"] for r in rows),
        "without_speculation_p50_ms": _r(
            percentile(
                [r["without_speculation_ms"] for r in rows if r["without_speculation_ms"]], 50
            )
        ),
        "without_speculation_p95_ms": _r(
            percentile(
                [r["without_speculation_ms"] for r in rows if r["without_speculation_ms"]], 95
            )
        ),
        "line_end_answers_empty": sum(r["line_end_item"] is None for r in rows),
        "speculation_ms_p50": _r(percentile([r["speculation_ms"] for r in rows], 50)),
        "shown_p50_ms": _r(percentile([r["shown_ms"] for r in rows], 50)),
        "line_end_p50_ms": _r(percentile([r["line_end_ms"] for r in rows], 50)),
        "differences": [
            {k: r[k] for k in ("case", "shown", "indent", "after", "fresh", "without_speculation")}
            for r in rows
            if r["after"] != r["fresh"]
        ],
        "server_counters": stats,
        "rows": rows,
    }


# -- part source ----------------------------------------------------------------------------

SOURCES = ("separate", "same_call")


def source_comparison(
    model_folder: Path, cases: list[Case], intra_threads: int, device: str = "cpu"
) -> dict:
    """`speculationSource` separate vs same_call on the same cases, in one run: one server
    per source, the cases interleaved (who goes first alternates), each case's documents
    closed before the other server's turn (so no background work overlaps)."""
    clients: dict[str, Client] = {}
    rows: dict[str, list[dict]] = {src: [] for src in SOURCES}
    try:
        for src in SOURCES:
            clients[src] = start_server(
                model_folder,
                {
                    "requestTimeoutMs": 600_000,
                    "summariesEnabled": False,
                    "intraThreads": intra_threads,
                    "speculationSource": src,
                },
                device,
            )
            warm_up(clients[src], cases[0])
        for i, case in enumerate(cases[1:]):
            for src in SOURCES if i % 2 == 0 else SOURCES[::-1]:
                rows[src].append(dict(run_case(clients[src], f"{src}{i}", case), case=case.id))
            log(f"source: case {i + 1}/{len(cases) - 1}")
        finals = {src: _stats(client) for src, client in clients.items()}
    finally:
        for client in clients.values():
            client.close()
    out: dict[str, Any] = {src: summarize_source(rows[src], finals[src]) for src in SOURCES}
    pairs = list(zip(rows["separate"], rows["same_call"]))
    out["cases"] = len(pairs)
    out["same_shown_text"] = sum(a["shown"] == b["shown"] for a, b in pairs)
    out["shown_differences"] = [
        {"case": a["case"], "separate": a["shown"], "same_call": b["shown"]}
        for a, b in pairs
        if a["shown"] != b["shown"]
    ]
    return out


def summarize_source(rows: list[dict], stats: dict) -> dict:
    spec = [r for r in rows if "skipped" not in r]
    shown = [r["shown_ms"] for r in rows if r["shown"] is not None]
    calls = [r["model_calls"] + r["speculative_calls"] for r in spec]
    return {
        "cases": len(rows),
        "with_suggestion": len(shown),
        "speculated": len(spec),
        "shown_p50_ms": _r(percentile(shown, 50)),
        "shown_p95_ms": _r(percentile(shown, 95)),
        "after_enter_p50_ms": _r(percentile([r["after_ms"] for r in spec], 50)),
        "after_enter_p95_ms": _r(percentile([r["after_ms"] for r in spec], 95)),
        "fresh_p50_ms": _r(percentile([r["fresh_ms"] for r in spec], 50)),
        "served_without_model_call": sum(r["after_model_calls"] == 0 for r in spec),
        "same_text": sum(r["after"] == r["fresh"] for r in spec),
        "same_text_share": _r(sum(r["after"] == r["fresh"] for r in spec) / len(spec), 3)
        if spec
        else None,
        "model_calls_to_after_enter": sum(calls),
        "model_calls_per_speculated_case": _r(statistics.fmean(calls), 2) if calls else None,
        "same_call_steps": sum(r["same_call_steps"] for r in spec),
        "same_call_fallbacks": sum(r["same_call_fallbacks"] for r in spec),
        "same_call_block_fallbacks": sum(r["same_call_block_fallbacks"] for r in spec),
        "speculation_ms_p50": _r(percentile([r["speculation_ms"] for r in spec], 50)),
        "differences": [
            {k: r[k] for k in ("case", "shown", "indent", "after", "fresh")}
            for r in spec
            if r["after"] != r["fresh"]
        ],
        "server_counters": stats,
        "rows": rows,
    }


def source_markdown(r: dict) -> str:
    c = r["source"]
    sep, same = c["separate"], c["same_call"]
    lines = [
        f"# Speculation source: separate call vs same call ({r['device']})",
        "",
        f"Run {r['started']}, {r['runtime_s']} s, load average at start "
        f"{r['load_average']}; labmodel int8, intraThreads {r['intra_threads']}, server "
        "defaults otherwise (debounce on, speculation depth 1, summaries off), one server per "
        "`speculationSource`, the same held-out line starts interleaved. Per case: the shown "
        f"suggestion, read {READ_S} s, accept (didChange + `codet5.accepted` + the line-end "
        "request), Enter with auto-indent, the request there (**after Enter**), and the same "
        "request on a fresh document (**fresh**, on the same server).",
        "",
        "| | separate | same_call |",
        "|---|---|---|",
        f"| shown suggestion p50 / p95 (ms) | {sep['shown_p50_ms']} / {sep['shown_p95_ms']} "
        f"| {same['shown_p50_ms']} / {same['shown_p95_ms']} |",
        f"| after accept + Enter p50 / p95 (ms) | {sep['after_enter_p50_ms']} / "
        f"{sep['after_enter_p95_ms']} | {same['after_enter_p50_ms']} / "
        f"{same['after_enter_p95_ms']} |",
        f"| fresh request p50 (ms) | {sep['fresh_p50_ms']} | {same['fresh_p50_ms']} |",
        f"| after Enter = fresh text | {sep['same_text']} of {sep['speculated']} "
        f"({sep['same_text_share']}) | {same['same_text']} of {same['speculated']} "
        f"({same['same_text_share']}) |",
        f"| served without a model call | {sep['served_without_model_call']} of "
        f"{sep['speculated']} | {same['served_without_model_call']} of {same['speculated']} |",
        f"| model calls up to the answer after Enter (per speculated case) | "
        f"{sep['model_calls_to_after_enter']} ({sep['model_calls_per_speculated_case']}) | "
        f"{same['model_calls_to_after_enter']} ({same['model_calls_per_speculated_case']}) |",
        f"| next lines from the shown request / fell back to a call (of which: a block at "
        f"the fork) | {sep['same_call_steps']} / {sep['same_call_fallbacks']} "
        f"({sep['same_call_block_fallbacks']}) | {same['same_call_steps']} / "
        f"{same['same_call_fallbacks']} ({same['same_call_block_fallbacks']}) |",
        f"| speculative engine ms per case p50 | {sep['speculation_ms_p50']} | "
        f"{same['speculation_ms_p50']} |",
        "",
        f"- cases: {c['cases']}; with a suggestion: {sep['with_suggestion']} / "
        f"{same['with_suggestion']}; speculated (ended at the model's line break): "
        f"{sep['speculated']} / {same['speculated']}",
        f"- shown text identical between the two servers: **{c['same_shown_text']} of "
        f"{c['cases']}**",
        "- shown latency is over every case with a suggestion (the same call lengthens every "
        "eligible request, speculated or not); the others over the speculated cases.",
        f"- server counters at the end, separate: `{json.dumps(sep['server_counters'])}`",
        f"- same_call: `{json.dumps(same['server_counters'])}`",
        "",
    ]
    for d in c["shown_differences"]:
        lines.append(f"- shown differs at `{d['case']}`: {d['separate']!r} vs {d['same_call']!r}")
    for name, s in (("separate", sep), ("same_call", same)):
        if s["differences"]:
            lines += ["", f"Differences after Enter vs fresh ({name}):", ""]
            for d in s["differences"]:
                lines.append(
                    f"- `{d['case']}` shown {d['shown']!r}, auto-indent {d['indent']!r}: "
                    f"{d['after']!r} vs fresh {d['fresh']!r}"
                )
    return "\n".join(lines) + "\n"


# -- part budget ------------------------------------------------------------------------------


def budget_cases(tokenizer, count: int) -> list[Case]:
    return [c for c in load_cases() if tokenizer.count(c.prefix[-6000:]) >= max(BUDGETS)][:count]


def served_prediction(engine, case: Case, budget: int, fixed_tokens: int | None = None):
    """(shown first line, model ms, prompt tokens) through the server's own path."""
    from codet5_lsp.server.documents import DocumentStore
    from codet5_lsp.server.pipeline import prompt_for
    from codet5_lsp.server.postprocess import postprocess
    from codet5_lsp.server.settings import Settings

    doc = DocumentStore().open(f"file:///bench/{case.file}", case.document, "python", 1)
    position = {"line": case.line, "character": case.character}
    settings = Settings(max_context_tokens=budget, device="cpu")
    ctx, _mode, request = prompt_for(doc, position, engine, settings)
    if fixed_tokens is not None:  # random weights: a fixed length, no healing passes
        request = dataclasses.replace(
            request, stop_rule=None, max_new_tokens=fixed_tokens, heal_tokens=(), alternatives=1
        )
    result = engine.generate(request)
    shown = first_line(postprocess(result.text, ctx) or "") if fixed_tokens is None else ""
    return shown, result.model_ms, len(request.decoder_prefix)


def budget_sweep(
    lab: Path, shape: Path | None, n_quality: int, n_shape: int, intra_threads: int
) -> dict:
    from codet5_lsp.inference.engine import CompletionEngine
    from codet5_lsp.inference.models import check_converted_folder

    out: dict = {"budgets": list(BUDGETS), "labmodel": {}, "shape": {}}
    engine = CompletionEngine(
        check_converted_folder(lab), device="cpu", compute_type="int8", intra_threads=intra_threads
    )
    try:
        cases = budget_cases(engine.tokenizer, n_quality + 1)
        served_prediction(engine, cases[0], 384)  # warm-up
        cases = cases[1:]
        out["labmodel"]["cases"] = len(cases)
        for budget in BUDGETS:
            log(f"labmodel at {budget} tokens, {len(cases)} cases")
            preds = []
            for case in cases:
                shown, ms, prompt = served_prediction(engine, case, budget)
                target = case.target.rstrip()
                preds.append((shown == target, edit_similarity(shown, target), ms, prompt))
            out["labmodel"][str(budget)] = {
                "exact_match": round(sum(p[0] for p in preds) / len(preds), 4),
                "edit_similarity": round(statistics.fmean(p[1] for p in preds), 4),
                "model_ms_p50": _r(percentile([p[2] for p in preds], 50)),
                "model_ms_p95": _r(percentile([p[2] for p in preds], 95)),
                "prompt_tokens_mean": _r(statistics.fmean(p[3] for p in preds)),
            }
            out["labmodel"].setdefault("per_case", {})[str(budget)] = [
                round(p[1], 4) for p in preds
            ]
    finally:
        engine.close()
    if shape is not None and n_shape:
        engine = CompletionEngine(
            check_converted_folder(shape),
            device="cpu",
            compute_type="int8",
            intra_threads=intra_threads,
        )
        try:
            cases = budget_cases(engine.tokenizer, n_shape + 1)
            served_prediction(engine, cases[0], 384, fixed_tokens=16)
            cases = cases[1:]
            out["shape"]["cases"] = len(cases)
            # interleaved by case, so load changes on the shared machine hit every budget
            times: dict[int, list[float]] = {b: [] for b in BUDGETS}
            prompts: dict[int, list[int]] = {b: [] for b in BUDGETS}
            for case in cases:
                for budget in BUDGETS:
                    _shown, ms, prompt = served_prediction(engine, case, budget, fixed_tokens=16)
                    times[budget].append(ms)
                    prompts[budget].append(prompt)
            log(f"{SHAPE}: {len(cases)} cases x {len(BUDGETS)} budgets done")
            for budget in BUDGETS:
                out["shape"][str(budget)] = {
                    "model_ms_p50": _r(percentile(times[budget], 50)),
                    "model_ms_p95": _r(percentile(times[budget], 95)),
                    "prompt_tokens_mean": _r(statistics.fmean(prompts[budget])),
                }
        finally:
            engine.close()
    # paired difference of edit similarity against 384 (per case)
    per = out["labmodel"].pop("per_case", {})
    if per:
        from bench.quality import paired_bootstrap

        for budget in BUDGETS[:-1]:
            out["labmodel"][str(budget)]["edit_similarity_vs_384"] = paired_bootstrap(
                per[str(budget)], per["384"]
            )
    return out


# -- report -----------------------------------------------------------------------------------


def speed_markdown(r: dict) -> str:
    lines = [
        f"# Speculation over LSP ({r['device']})",
        "",
        f"Run {r['started']}, {r['runtime_s']} s, load average at start "
        f"{r['load_average']}; labmodel int8, intraThreads {r['intra_threads']}, server "
        f"defaults otherwise (debounce on, speculation depth 1, summaries off). Held-out "
        f"line starts; the client reads each suggestion {READ_S} s, accepts it "
        "(didChange + `codet5.accepted` + the request VS Code sends at the line end), "
        "presses Enter with auto-indent, and asks again (**after Enter**); then the same "
        "request on a fresh document with the same text (**fresh**).",
        "",
    ]
    for name, s in r["models"].items():
        if "error" in s:
            lines += [f"## {name}", "", f"error: {s['error']}", ""]
            continue
        lines += [
            f"## {name}",
            "",
            "| | after accept + Enter | fresh document | after accept + Enter, speculation off |",
            "|---|---|---|---|",
            f"| p50 (ms) | {s['after_enter_p50_ms']} | {s['fresh_p50_ms']} | "
            f"{s['without_speculation_p50_ms']} |",
            f"| p95 (ms) | {s['after_enter_p95_ms']} | {s['fresh_p95_ms']} | "
            f"{s['without_speculation_p95_ms']} |",
            "",
            "(The fresh request is sent while the speculation of the line after the "
            "served one runs in the background: it preempts it. The speculation-off "
            "column replays the same case with `speculation: false`.)",
            "",
            f"- cases: {s['cases']} (skipped: {s['skipped']})",
            f"- p50 speed-up after accept + Enter: **{s['p50_speedup']}x**",
            f"- served without a model call: {s['served_without_model_call']} of "
            f"{s['cases']} (from the speculation: {s['from_speculation']}; of those, "
            f"waited for a running speculation: {s['waited_for_speculation']})",
            f"- same text as fresh: **{s['same_text']} of {s['cases']} "
            f"({s['same_text_share']})**; as the answer without speculation on a "
            f"document with the same history: {s['same_as_without_speculation']} of "
            f"{s['cases']}",
            f"- the shown request p50 {s['shown_p50_ms']} ms; its speculation's engine "
            f"time p50 {s['speculation_ms_p50']} ms (finished before Enter unless it "
            "waited)",
            f"- request at the end of the accepted line: answered empty in "
            f"{s['line_end_answers_empty']} of {s['cases']}, p50 {s['line_end_p50_ms']} ms",
            f"- server counters at the end: `{json.dumps(s['server_counters'])}`",
            "",
        ]
        if s["differences"]:
            lines += ["Differences (after Enter vs fresh):", ""]
            for d in s["differences"]:
                lines.append(
                    f"- `{d['case']}` shown {d['shown']!r}, auto-indent "
                    f"{d['indent']!r}: {d['after']!r} vs fresh {d['fresh']!r} "
                    f"(without speculation: {d['without_speculation']!r})"
                )
            lines.append("")
    return "\n".join(lines)


def budget_markdown(r: dict) -> str:
    b = r["budget"]
    lines = [
        f"# Context budget on CPU ({r['device']})",
        "",
        f"Run {r['started']}, {r['runtime_s']} s, load average at start "
        f"{r['load_average']}; int8, intraThreads {r['intra_threads']}. Same cases for "
        "every budget (held-out, >= 384 tokens before the cursor), the server's own path "
        "(context step, token healing, decoder mode, post-processing).",
        "",
        "| budget (tokens) | labmodel exact | labmodel edit sim. | vs 384 (mean, 95% CI) "
        "| labmodel ms p50 | 220m-shape ms p50 / p95 | 220m prompt tokens |",
        "|---|---|---|---|---|---|---|",
    ]
    for budget in BUDGETS:
        q = b["labmodel"][str(budget)]
        s = b["shape"].get(str(budget), {})
        vs = q.get("edit_similarity_vs_384")
        lines.append(
            f"| {budget} | {q['exact_match']} | {q['edit_similarity']} | "
            f"{'' if vs is None else f'{vs[0]} [{vs[1]}, {vs[2]}]'} | "
            f"{q['model_ms_p50']} | {s.get('model_ms_p50')} / {s.get('model_ms_p95')}"
            f" | {s.get('prompt_tokens_mean')} |"
        )
    lines += [
        "",
        f"Labmodel cases: {b['labmodel'].get('cases')}; 220m-shape cases: "
        f"{b['shape'].get('cases')} (random weights, 16 new tokens, no stop rule, no "
        "healing: the context's cost alone; budgets interleaved per case).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.speculation", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--part",
        choices=["lsp", "budget", "source", "all"],
        default="all",
        help="source: speculationSource separate vs same_call (not part of all)",
    )
    parser.add_argument(
        "--intra-threads",
        type=int,
        default=1,
        help="CTranslate2 threads (1: on the busy 2-core machine, as bench.typing)",
    )
    parser.add_argument(
        "--device",
        choices=["cpu", "cuda"],
        default="cpu",
        help="part source only: where the servers generate (results named after it)",
    )
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    cache = bench_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    lab = labmodel_folder(cache)
    common = {
        "device": cpu_description(),
        "quick": args.quick,
        "intra_threads": args.intra_threads,
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    if args.part in ("lsp", "all"):
        began = time.perf_counter()
        report = dict(common, models={})
        cases = load_cases(kind="line_start")[: sizes["lsp_cases"] + 1]
        log(f"lsp: labmodel, {len(cases) - 1} cases")
        report["models"]["labmodel"] = lsp_speed(lab, cases, args.intra_threads)
        report["runtime_s"] = round(time.perf_counter() - began, 1)
        text = speed_markdown(report)
        print(text)
        if not args.no_write:
            write_results("speculation-cpu", report, text)
    if args.part == "source":
        began = time.perf_counter()
        cases = load_cases(kind="line_start")[: sizes["source_cases"] + 1]
        log(f"source: labmodel, {len(cases) - 1} cases, {' vs '.join(SOURCES)}")
        report = dict(
            common,
            source=source_comparison(lab, cases, args.intra_threads, args.device),
        )
        if args.device != "cpu":
            report["device"] = args.device  # (cpu_description names the host's CPU)
        report["runtime_s"] = round(time.perf_counter() - began, 1)
        text = source_markdown(report)
        print(text)
        if not args.no_write:
            write_results(f"speculation-source-{args.device}", report, text)
    if args.part in ("budget", "all"):
        began = time.perf_counter()
        shape = shape_folder(cache) if sizes["shape_cases"] else None
        report = dict(
            common,
            budget=budget_sweep(
                lab, shape, sizes["quality_cases"], sizes["shape_cases"], args.intra_threads
            ),
        )
        report["runtime_s"] = round(time.perf_counter() - began, 1)
        text = budget_markdown(report)
        print(text)
        if not args.no_write:
            write_results("context-budget-cpu", report, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
