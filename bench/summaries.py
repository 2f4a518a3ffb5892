"""Hover summaries: quality of the one-sentence summaries and hover latency, cold and warm.

``python -m bench.summaries`` writes ``bench/results/summaries.json`` and ``summaries.md``.

Why a held-out set of our own code: the labmodel was trained (summary task: function source
without its docstring -> first paragraph of the docstring) on installed packages and the
standard library, so its summaries can only be judged on Python it never saw. This
repository's own files are such code. A frozen copy of some of them lives in
``bench/data/summaries/`` (``.py.txt``, so no tool imports or lints them) so that the set stays
fixed while the repository changes; ``python -m bench.summaries --freeze`` re-copies them (only
do that on purpose: it changes the benchmark).

A case is every function or method of the frozen files that has a docstring, found the way a
hover finds it (``definition_at`` on the function's name):

- model input = ``Definition.source_without_docstring`` (what ``SummaryService`` sends);
- reference = ``first_sentence(docstring)``: the first sentence of the docstring's first
  paragraph, i.e. what a perfect hover would show.

Quality, per quantization (float32, int8_float32): BLEU-4 of the hover sentence against the
reference (sacrebleu; per sentence with add-1 smoothing of the 2- to 4-gram precisions, the
Lin & Och smoothing used for code summarization, averaged; and corpus BLEU), and exact match.

Latency: cold hover (the model runs) and warm hover (a cache hit), p50/p95, in-process
(``SummaryService.summarize``) and over LSP (``codet5-lsp serve`` over stdio, a pytest-lsp
client, ``textDocument/hover`` round trip; warm = the same hover again).
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.quality import LABMODEL, bench_cache_dir, cpu_description, percentile, write_results

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
SUMMARY_DIR = BENCH_DIR / "data" / "summaries"
MANIFEST = SUMMARY_DIR / "MANIFEST.json"

# Repository files frozen into SUMMARY_DIR: the ones with the most documented functions.
FROZEN_SOURCES = (
    "server/context.py",
    "server/documents.py",
    "server/positions.py",
    "server/postprocess.py",
    "server/languages.py",
    "server/lsp.py",
    "server/pipeline.py",
    "server/stats.py",
    "server/debounce.py",
    "server/typethrough.py",
    "server/model_manager.py",
    "inference/checkpoints.py",
    "inference/models.py",
    "inference/engine.py",
    "inference/prompts.py",
    "inference/t5_prefix_fix.py",
    "tests/test_faults.py",
    "bench/latency.py",
    "bench/quality.py",
    "bench/documents.py",
)

QUANTIZATIONS = ("float32", "int8_float32")
TARGET_WARM_P95_MS = 5.0  # warm hover, LSP round trip
PAUSE_S = 0.05  # before a third hover on the same function (see _lsp)
# What a model that learned only the commonest docstring opening would score.
BASELINE_SENTENCE = "Return the given value."
BLEU_SMOOTHING = {"smooth_method": "add-k", "smooth_value": 1}
# A function not in the set, summarized once before timing (first-call effects).
# Engines closed by the in-process runs, kept referenced until exit. CompletionEngine's
# per-token callback closes over the engine, and CTranslate2 may drop that callback on its own
# worker thread after the result is returned: if that drop frees the engine, the Translator's
# thread pool joins itself and the process aborts ("Resource deadlock avoided").
_RETIRED_ENGINES: list = []
WARMUP_SOURCE = (
    "def add_all(values):\n    total = 0\n    for v in values:\n"
    "        total += v\n    return total\n"
)


@dataclass(frozen=True)
class SummaryCase:
    """A documented function of a frozen file, as a hover on its name sees it."""

    id: str  # file:line:name (1-based line of the `def`)
    file: str  # name under SUMMARY_DIR
    name: str
    line: int  # 0-based position of the function's name: where the hover is sent
    character: int
    reference: str  # first sentence of the docstring's first paragraph
    docstring: str
    model_input: str  # source without the docstring, dedented
    body_hash: str


# -- the held-out set -------------------------------------------------------------------------


def frozen_name(repo_path: str) -> str:
    return repo_path.replace("/", "__") + ".txt"


def freeze_sources(paths: tuple[str, ...] = FROZEN_SOURCES) -> None:
    """Copy the repository files into SUMMARY_DIR and record where they came from."""
    SUMMARY_DIR.mkdir(parents=True, exist_ok=True)
    for old in SUMMARY_DIR.glob("*.py.txt"):
        old.unlink()
    entries = []
    for repo_path in paths:
        text = (REPO / repo_path).read_text()
        (SUMMARY_DIR / frozen_name(repo_path)).write_text(text)
        entries.append(
            {
                "file": frozen_name(repo_path),
                "origin": repo_path,
                "sha256": hashlib.sha256(text.encode()).hexdigest(),
            }
        )
    MANIFEST.write_text(json.dumps({"files": entries}, indent=2) + "\n")


def frozen_files() -> list[Path]:
    names = [e["file"] for e in json.loads(MANIFEST.read_text())["files"]]
    return [SUMMARY_DIR / n for n in sorted(names)]


def _function_name_positions(text: str) -> list[tuple[int, int]]:
    """(0-based line, column) of the name of every `def` / `async def`, in file order.

    Found with the `ast` module, independently of the server's tree-sitter code, so a
    definition the server misses shows up as a missing case instead of silently not existing.
    """
    positions = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            line = text.splitlines()[node.lineno - 1]
            column = line.index("def ", node.col_offset) + len("def ")
            positions.append((node.lineno - 1, column))
    return sorted(positions)


def cases_in_text(file_name: str, text: str) -> list[SummaryCase]:
    """The documented functions of one file whose reference sentence is not in the input."""
    from lsprotocol import types

    from codet5_lsp.server.documents import DocumentStore
    from codet5_lsp.server.summaries import first_sentence
    from codet5_lsp.server.syntax import definition_at

    doc = DocumentStore().open(f"file:///bench/{file_name}", text, "python", 1)
    cases = []
    for line, column in _function_name_positions(text):
        definition = definition_at(doc, types.Position(line=line, character=column))
        if definition is None or not definition.docstring:
            continue
        reference = first_sentence(definition.docstring)
        if not reference or reference in definition.source_without_docstring:
            continue  # nothing to predict, or the answer is in the input
        cases.append(
            SummaryCase(
                id=f"{file_name}:{definition.signature_line + 1}:{definition.name}",
                file=file_name,
                name=definition.name,
                line=line,
                character=column,
                reference=reference,
                docstring=definition.docstring,
                model_input=definition.source_without_docstring,
                body_hash=definition.body_hash,
            )
        )
    return cases


def load_cases(limit: int | None = None) -> list[SummaryCase]:
    """The benchmark's cases in file order; a body seen before (same hash) is left out, since
    the second one would be a cache hit, not a cold hover."""
    seen: set[str] = set()
    cases = []
    for path in frozen_files():
        for case in cases_in_text(path.name, path.read_text()):
            if case.body_hash not in seen:
                seen.add(case.body_hash)
                cases.append(case)
    return cases[:limit] if limit is not None else cases


# -- quality ----------------------------------------------------------------------------------


def quality(predictions: list[str], references: list[str]) -> dict:
    """BLEU-4 (smoothed sentence BLEU averaged, and corpus BLEU) and exact match, 0-100."""
    import sacrebleu

    sentence = [
        sacrebleu.sentence_bleu(p, [r], **BLEU_SMOOTHING).score
        for p, r in zip(predictions, references)
    ]
    corpus = sacrebleu.corpus_bleu(predictions, [references]).score
    exact = [p == r for p, r in zip(predictions, references)]
    loose = [_loose(p) == _loose(r) for p, r in zip(predictions, references)]
    n = max(len(predictions), 1)
    return {
        "cases": len(predictions),
        "sentence_bleu4": round(sum(sentence) / n, 2),
        "corpus_bleu4": round(corpus, 2),
        "exact_match_pct": round(100 * sum(exact) / n, 2),
        "exact_match_loose_pct": round(100 * sum(loose) / n, 2),
        "empty": sum(not p for p in predictions),
    }


def _loose(sentence: str) -> str:
    """Case and a final period ignored: 'Return the x' == 'return the x.'."""
    return sentence.strip().rstrip(".").lower()


def _timing(samples_ms: list[float]) -> dict:
    def r(x: float | None) -> float | None:
        return None if x is None else round(x, 3)

    return {
        "n": len(samples_ms),
        "p50_ms": r(percentile(samples_ms, 50)),
        "p95_ms": r(percentile(samples_ms, 95)),
        "max_ms": r(max(samples_ms) if samples_ms else None),
    }


# -- in-process -------------------------------------------------------------------------------


def _warmup_definition():
    from codet5_lsp.server.documents import DocumentStore
    from codet5_lsp.server.syntax import definition_at

    doc = DocumentStore().open("file:///bench/warmup.py", WARMUP_SOURCE, "python", 1)
    return definition_at(doc, (0, 5))


async def _in_process(
    model_folder: Path, device: str, compute_type: str, cases: list[SummaryCase]
) -> dict:
    from codet5_lsp.server.documents import DocumentStore
    from codet5_lsp.server.model_manager import ModelManager
    from codet5_lsp.server.settings import Settings
    from codet5_lsp.server.summaries import SummaryService
    from codet5_lsp.server.syntax import definition_at

    settings = Settings(
        model=str(model_folder),
        summary_model=str(model_folder),
        device=device,
        compute_type=compute_type,
    )
    models = ModelManager(settings)
    try:
        if not models.wait_ready(300):
            raise TimeoutError(f"{model_folder} not ready after 300 s")
        service = SummaryService(models, settings)
        await service.summarize(_warmup_definition())
        store = DocumentStore()
        docs = {}
        texts, cold, warm = [], [], []
        for case in cases:
            if case.file not in docs:
                docs[case.file] = store.open(
                    f"file:///bench/{case.file}", (SUMMARY_DIR / case.file).read_text(), "python", 1
                )
            doc = docs[case.file]
            # timed like a hover: find the definition, then summarize it
            start = time.perf_counter()
            definition = definition_at(doc, (case.line, case.character))
            first = await service.summarize(definition)
            cold.append((time.perf_counter() - start) * 1000)
            texts.append(first.text if first is not None else "")
            if first is None:  # an empty summary is not cached: no warm hover to time
                continue
            start = time.perf_counter()
            definition = definition_at(doc, (case.line, case.character))
            second = await service.summarize(definition)
            warm.append((time.perf_counter() - start) * 1000)
            if first.from_cache or second is None or not second.from_cache:
                raise AssertionError(f"{case.id}: cold hover was cached or warm hover was not")
        return {
            "texts": texts,
            "cold": _timing(cold),
            "warm": _timing(warm),
            "model_calls": service.model_calls - 1,
            "engine": models.summary_engine().description,
        }
    finally:
        _RETIRED_ENGINES.append(models.summary_engine())
        models.close()


# -- over LSP ---------------------------------------------------------------------------------


async def _lsp(
    model_folder: Path, device: str, compute_type: str, cases: list[SummaryCase]
) -> dict:
    """Hover round trips against `codet5-lsp serve` over stdio, each function hovered twice."""
    from lsprotocol import types
    from pytest_lsp import ClientServerConfig, client_capabilities

    state_dir = Path(tempfile.mkdtemp(prefix="codet5-bench-hover-"))
    env = dict(os.environ, XDG_CACHE_HOME=str(state_dir), XDG_STATE_HOME=str(state_dir))
    config = ClientServerConfig(
        server_command=[
            sys.executable,
            "-m",
            "codet5_lsp.server.cli",
            "serve",
            "--model",
            str(model_folder),
            "--summary-model",
            str(model_folder),
            "--device",
            device,
            "--compute-type",
            compute_type,
        ],
        server_env=env,
    )
    client = await config.start()
    statuses: list[str] = []

    @client.feature("codet5/status")
    def on_status(params):  # noqa: ANN001 - raw JSON object (pygls gives a namedtuple)
        get = params.get if isinstance(params, dict) else lambda k: getattr(params, k, None)
        statuses.append(str(get("state")))

    def hover(uri: str, case: SummaryCase):
        return client.text_document_hover_async(
            types.HoverParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=types.Position(line=case.line, character=case.character),
            )
        )

    try:
        await client.initialize_session(
            types.InitializeParams(
                capabilities=client_capabilities("visual-studio-code"),
                initialization_options={
                    "requestTimeoutMs": 600_000,
                    "summariesEnabled": True,
                    "summaryMaxTokens": 48,
                },
            )
        )
        end = time.monotonic() + 300
        while not (statuses and statuses[-1] in ("ready", "error")):
            if time.monotonic() > end:
                raise TimeoutError(f"server not ready after 300 s: {statuses}")
            await asyncio.sleep(0.05)
        if statuses[-1] == "error":
            raise RuntimeError("the server failed to load the model")
        uris: dict[str, str] = {}
        for file in sorted({c.file for c in cases}):
            uris[file] = f"file:///bench/{file.removesuffix('.txt')}"
            client.text_document_did_open(
                types.DidOpenTextDocumentParams(
                    text_document=types.TextDocumentItem(
                        uri=uris[file],
                        language_id="python",
                        version=1,
                        text=(SUMMARY_DIR / file).read_text(),
                    )
                )
            )
        await hover(uris[cases[0].file], cases[0])  # warm-up: parse, first model call
        texts, cold, warm, warm_later = [], [], [], []
        for case in cases[1:]:
            uri = uris[case.file]
            start = time.perf_counter()
            first = await hover(uri, case)
            cold.append((time.perf_counter() - start) * 1000)
            if first is None:  # an empty summary is not cached: no warm hover to time
                texts.append("")
                continue
            start = time.perf_counter()
            second = await hover(uri, case)
            warm.append((time.perf_counter() - start) * 1000)
            await asyncio.sleep(PAUSE_S)  # as when the user comes back to it: nothing running
            start = time.perf_counter()
            await hover(uri, case)
            warm_later.append((time.perf_counter() - start) * 1000)
            text = first.contents.value.split("\n", 1)[0]
            again = second.contents.value.split("\n", 1)[0] if second is not None else ""
            if text != again:
                raise AssertionError(f"{case.id}: warm hover {again!r} != cold {text!r}")
            texts.append(text)
        # Steady: every function once more, with no generation in between (moving the mouse
        # over functions already summarized).
        steady = []
        for case, text in zip(cases[1:], texts):
            start = time.perf_counter()
            reply = await hover(uris[case.file], case)
            steady.append((time.perf_counter() - start) * 1000)
            if (reply.contents.value.split("\n", 1)[0] if reply is not None else "") != text:
                raise AssertionError(f"{case.id}: a later hover changed the summary")
        # The floor: a hover on the file's first line, where no function is (answers None
        # at once): message transport, JSON-RPC and scheduling, without the hover's own work.
        floor = []
        for case in cases[1:]:
            start = time.perf_counter()
            reply = await client.text_document_hover_async(
                types.HoverParams(
                    text_document=types.TextDocumentIdentifier(uri=uris[case.file]),
                    position=types.Position(line=0, character=0),
                )
            )
            floor.append((time.perf_counter() - start) * 1000)
            if reply is not None:
                raise AssertionError(f"{case.file}: a hover on line 1 found a function")
        return {
            "texts": texts,
            "cold": _timing(cold),
            "warm": _timing(warm),
            "warm_after_pause": _timing(warm_later),
            "warm_steady": _timing(steady),
            "no_function": _timing(floor),
        }
    finally:
        try:
            await asyncio.wait_for(client.shutdown_session(), 30)
        except Exception:  # a server that already died must not hide the figures' error
            pass
        shutil.rmtree(state_dir, ignore_errors=True)


# -- one run ----------------------------------------------------------------------------------


def device_description(device: str) -> str:
    if device == "cuda":
        try:
            name = (
                subprocess.run(
                    ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                    capture_output=True,
                    text=True,
                    timeout=30,
                )
                .stdout.strip()
                .splitlines()[0]
            )
        except (OSError, IndexError, subprocess.SubprocessError):
            name = "unknown GPU"
        return f"GPU {name}"
    return cpu_description()


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(
    devices: list[str], cache_dir: Path, limit: int | None, lsp_limit: int | None, lsp: bool
) -> dict:
    """Every (device, quantization): quality and in-process latency, then LSP latency."""
    from codet5_lsp.inference.devices import cuda_device_count, supported_compute_types
    from codet5_lsp.inference.models import resolve_model

    cases = load_cases(limit)
    references = [c.reference for c in cases]
    report: dict = {
        "cases": len(cases),
        "files": len(frozen_files()),
        "bleu": "sacrebleu "
        + __import__("sacrebleu").__version__
        + ", 13a tokenizer, sentence BLEU with add-1 smoothing of 2-4-gram precisions",
        "target_warm_lsp_p95_ms": TARGET_WARM_P95_MS,
        "baseline_constant": {
            "text": BASELINE_SENTENCE,
            **quality([BASELINE_SENTENCE] * len(cases), references),
        },
        "load_average_before": os.getloadavg()[0],
        "runs": {},
        "skipped": [],
    }
    for device in devices:
        if device == "cuda" and cuda_device_count() == 0:
            report["skipped"].append("cuda: no CUDA device")
            continue
        for quantization in QUANTIZATIONS:
            if quantization not in supported_compute_types(device):
                report["skipped"].append(f"{device} {quantization}: not supported")
                continue
            files = resolve_model(
                str(LABMODEL), quantization=quantization, cache_dir=cache_dir, log=log
            )
            name = f"{device}/{quantization}"
            log(f"{name}: in-process, {len(cases)} functions")
            started = time.perf_counter()
            local = asyncio.run(_in_process(files.folder, device, quantization, cases))
            entry: dict = {
                "device": device_description(device),
                "engine": local["engine"],
                "quality": quality(local["texts"], references),
                "in_process": {
                    "cold": local["cold"],
                    "warm": local["warm"],
                    "model_calls": local["model_calls"],
                    "wall_s": round(time.perf_counter() - started, 1),
                },
                "summaries": local["texts"],
            }
            if lsp:
                chosen = cases[: lsp_limit + 1] if lsp_limit is not None else cases
                log(f"{name}: over LSP, {len(chosen)} functions")
                started = time.perf_counter()
                remote = asyncio.run(_lsp(files.folder, device, quantization, chosen))
                same = sum(a == b for a, b in zip(remote["texts"], local["texts"][1:]))
                entry["lsp"] = {
                    "cold": remote["cold"],
                    "warm": remote["warm"],
                    "warm_after_pause": remote["warm_after_pause"],
                    "warm_steady": remote["warm_steady"],
                    "no_function": remote["no_function"],
                    "same_text_as_in_process": f"{same}/{len(remote['texts'])}",
                    "wall_s": round(time.perf_counter() - started, 1),
                }
                warm_p95 = remote["warm"]["p95_ms"]
                entry["target_warm_lsp_p95_met"] = (
                    warm_p95 is not None and warm_p95 <= TARGET_WARM_P95_MS
                )
            report["runs"][name] = entry
            log(f"{name}: {json.dumps({k: v for k, v in entry.items() if k != 'summaries'})}")
    report["load_average_after"] = os.getloadavg()[0]
    report["examples"] = _examples(cases, report["runs"])
    return report


def _examples(cases: list[SummaryCase], runs: dict, count: int = 8) -> list[dict]:
    """A few cases spread over the set, with what each run wrote (for the markdown)."""
    step = max(len(cases) // count, 1)
    out = []
    for index in range(0, len(cases), step)[:count]:
        out.append(
            {
                "id": cases[index].id,
                "reference": cases[index].reference,
                **{name: run["summaries"][index] for name, run in runs.items()},
            }
        )
    return out


# -- report -----------------------------------------------------------------------------------


def _ms(block: dict | None, key: str) -> str:
    if not block or block.get(key) is None:
        return "-"
    value = block[key]
    return f"{value:.2f}" if value < 10 else f"{value:.0f}"


def markdown(r: dict) -> str:
    devices = sorted({run["device"] for run in r["runs"].values()})
    lines = [
        "# Hover summaries (`python -m bench.summaries`)",
        "",
        f"Machine: {'; '.join(devices) or '-'}. {r['cases']} documented functions from "
        f"{r['files']} frozen files of this repository (`bench/data/summaries/`), unseen by "
        "the labmodel. Reference: the first sentence of the docstring's first paragraph; "
        "input: the function without its docstring. Greedy, 48 new tokens at most, the "
        f"server's first sentence of the output. BLEU: {r['bleu']}.",
        "",
        "## Quality",
        "",
        "| run | sentence BLEU-4 | corpus BLEU-4 | exact match | exact, case/period ignored "
        "| empty |",
        "|---|---|---|---|---|---|",
    ]
    rows = [(name, run["quality"]) for name, run in r["runs"].items()]
    rows.append((f'baseline: always "{r["baseline_constant"]["text"]}"', r["baseline_constant"]))
    for name, q in rows:
        lines.append(
            f"| {name} | {q['sentence_bleu4']:.2f} | {q['corpus_bleu4']:.2f} | "
            f"{q['exact_match_pct']:.1f}% | {q['exact_match_loose_pct']:.1f}% | "
            f"{q['empty']} |"
        )
    lines += [
        "",
        "## Hover latency (ms)",
        "",
        "Cold: the model runs (definition lookup + summary). Warm: the same hover again "
        "right after the answer, from the summary cache. Warm, later: a third hover "
        f"{PAUSE_S * 1000:.0f} ms after that. Warm, steady: every function hovered once "
        "more after all of that, no generation in between. LSP: `textDocument/hover` round trip "
        "from a "
        "pytest-lsp client to `codet5-lsp serve` over stdio (one hover in flight). No "
        "function: a hover on line 1 (no function there, answered None at once), the floor "
        "set by transport and scheduling. "
        f"Load average (1 min) before / after: {r['load_average_before']:.2f} / "
        f"{r.get('load_average_after', float('nan')):.2f}.",
        "",
        "| run | in-process cold p50 / p95 | in-process warm p50 / p95 | LSP cold p50 / p95 "
        "| LSP warm p50 / p95 | LSP warm, later p50 / p95 | LSP warm, steady p50 / p95 "
        "| LSP no function p50 / p95 | LSP = in-process text |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, run in r["runs"].items():
        local, remote = run["in_process"], run.get("lsp", {})
        lines.append(
            f"| {name} | {_ms(local['cold'], 'p50_ms')} / {_ms(local['cold'], 'p95_ms')} | "
            f"{_ms(local['warm'], 'p50_ms')} / {_ms(local['warm'], 'p95_ms')} | "
            f"{_ms(remote.get('cold'), 'p50_ms')} / {_ms(remote.get('cold'), 'p95_ms')} | "
            f"{_ms(remote.get('warm'), 'p50_ms')} / {_ms(remote.get('warm'), 'p95_ms')} | "
            f"{_ms(remote.get('warm_after_pause'), 'p50_ms')} / "
            f"{_ms(remote.get('warm_after_pause'), 'p95_ms')} | "
            f"{_ms(remote.get('warm_steady'), 'p50_ms')} / "
            f"{_ms(remote.get('warm_steady'), 'p95_ms')} | "
            f"{_ms(remote.get('no_function'), 'p50_ms')} / "
            f"{_ms(remote.get('no_function'), 'p95_ms')} | "
            f"{remote.get('same_text_as_in_process', '-')} |"
        )
    lines += ["", f"Target: warm hover (the second one) over LSP p95 <= {TARGET_WARM_P95_MS:g} ms."]
    for name, run in r["runs"].items():
        if "target_warm_lsp_p95_met" in run:
            verdict = "met" if run["target_warm_lsp_p95_met"] else "**not met**"
            lines.append(f"- {name}: {_ms(run['lsp']['warm'], 'p95_ms')} ms, {verdict}")
    if r["skipped"]:
        lines += ["", "Skipped: " + "; ".join(r["skipped"])]
    if r.get("examples"):
        names = list(r["runs"])
        lines += [
            "",
            "## Examples",
            "",
            "| function | reference | " + " | ".join(names) + " |",
            "|---" * (2 + len(names)) + "|",
        ]
        for ex in r["examples"]:
            cells = [ex["id"], ex["reference"], *(ex[n] for n in names)]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--freeze",
        action="store_true",
        help="re-copy the repository files into bench/data/summaries",
    )
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="cuda: measure on the GPU as well as on the CPU",
    )
    parser.add_argument("--limit", type=int, default=None, help="first N functions only")
    parser.add_argument(
        "--lsp-limit", type=int, default=None, help="functions hovered over LSP (default: all)"
    )
    parser.add_argument("--no-lsp", action="store_true")
    parser.add_argument("--list", action="store_true", help="print the set and exit")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    if args.freeze:
        freeze_sources()
    if args.list:
        cases = load_cases(args.limit)
        for case in cases:
            print(f"{case.id}: {case.reference}")
        print(f"{len(cases)} functions from {len(frozen_files())} files")
        return 0
    devices = ["cpu", "cuda"] if args.device == "cuda" else ["cpu"]
    started = time.perf_counter()
    report = run(
        devices, args.cache_dir or bench_cache_dir(), args.limit, args.lsp_limit, not args.no_lsp
    )
    report["wall_s"] = round(time.perf_counter() - started, 1)
    text = markdown(report)
    if args.no_write:
        print(text)
    else:
        write_results("summaries", report, text)
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
