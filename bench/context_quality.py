"""Context selection: identifier recall (model-free) and the labmodel's quality, vs last-N.

Two measures on the same cursor positions, in one run:

1. **Identifier recall** (no model). At cursor positions whose text before the cursor is over
   the budget, take the identifiers of the rest of the line (the text the completion should
   produce) that do not already appear earlier on the cursor's line; recall is the share of
   them present in the context the model is given (pooled over cases; identifiers as in
   `server.syntax.identifiers`: no one-letter names, no common keywords). It says what the
   context *offers* a model; a real CodeT5+ copies names it sees. Reported at 128, 256 and 384
   tokens for the served selection (with the other files of the set open in the workspace),
   the same without other open documents, the previous selection (imports + similar
   function), the plain last-N window, and two ceilings: the whole text before the cursor and
   the whole file (the document with the line being written removed). Two more measures on
   the same cases: the same with the word at the cursor taken whole (`self.sto|re.open(x)`
   wants `store` and `open`; the literal measure wants the fragment `re`, which no context
   can offer), and the word at the cursor alone (the cursors inside a word). Each measure has
   a paired bootstrap of served minus last-N (cases resampled).
2. **Quality** (labmodel, float32, decoder mode, the server's budget), through the server's own
   code path: `CompletionPipeline.complete` with the served context builder, or with the
   last-N builder patched in, so prompt building, token healing (when the pipeline does it)
   and post-processing are the server's. The suggestion is compared as inserted (its first
   line, leading whitespace kept) with the real rest of the line: exact match and edit
   similarity, paired bootstrap (served minus last-N).

Case sets, never mixed:

- `--set heldout` (default): the frozen held-out files (`bench/data/heldout/`), dense sample
  (seed 5150, 40 mid-line + 20 line-start positions per file), plus a **cross-file** set:
  positions whose rest of line uses a name (function, class or module-level assignment)
  defined in another file of the set and not in its own file.
- `--set dev`: the development files (repository files that are not held out, as of
  DEV_COMMIT, read with `git show`), seed 778; used to choose designs.

    python -m bench.context_quality [--set dev|heldout] [--recall-only] [--limit N]
                                    [--no-write]

Writes bench/results/context-quality.{json,md} (held-out runs only; with
`--context-tokens N` other than the default, context-quality-N.{json,md}).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench import quality as Q
from bench.cases import REPO, Case, cases_in_file, frozen_name

DENSE_SEED = 5150
DEV_SEED = 778
DENSE_MID_LINE = 40
DENSE_LINE_START = 20
CROSS_FILE_MID_LINE = 400  # sampled densely, then kept only where a line uses another file
CROSS_FILE_LINE_START = 200
CROSS_FILE_MAX_PER_FILE = 40
BOOTSTRAP_ROUNDS = 4000
RECALL_BUDGETS = (128, 256, 384)
DEFAULT_MODEL_TOKENS = Q.CONTEXT_TOKENS  # the model measure's budget unless --context-tokens

# Development files: repository code that is not in the held-out set, frozen at a commit.
DEV_COMMIT = "7adcbd0381b34d9bed9f482da3ffd2cb62db6f1b"
DEV_SOURCES = (
    "server/context.py",
    "server/documents.py",
    "server/languages.py",
    "server/positions.py",
    "server/summaries.py",
    "server/settings.py",
    "server/debounce.py",
    "inference/prompts.py",
    "inference/t5_prefix_fix.py",
    "bench/quality.py",
    "bench/latency.py",
    "bench/typing.py",
    "bench/summaries.py",
    "tests/test_context.py",
    "tests/test_documents.py",
    "tests/test_lsp_e2e.py",
)


def use_source_tree() -> None:
    """Make `codet5_lsp` this checkout's `server/` and `inference/` (as tests/conftest.py
    does): the installed copy may be stale, and the bench must measure the code here."""
    if "codet5_lsp" in sys.modules:
        return
    shim = Path(tempfile.mkdtemp(prefix="codet5-bench-src-"))
    pkg = shim / "codet5_lsp"
    pkg.mkdir()
    (pkg / "__init__.py").symlink_to(REPO / "server" / "_namespace_init.py")
    (pkg / "server").symlink_to(REPO / "server")
    (pkg / "inference").symlink_to(REPO / "inference")
    sys.path.insert(0, str(shim))


# ---- files and cases -------------------------------------------------------------------------
def heldout_sources() -> dict[str, str]:
    """origin path -> text of the frozen held-out files."""
    import json

    from bench.cases import HELDOUT_DIR, MANIFEST

    entries = json.loads(MANIFEST.read_text())["files"]
    return {e["origin"]: (HELDOUT_DIR / e["file"]).read_text() for e in entries}


def development_sources() -> dict[str, str]:
    """origin path -> text of the development files at DEV_COMMIT."""
    return {
        path: subprocess.run(
            ["git", "show", f"{DEV_COMMIT}:{path}"],
            cwd=REPO,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        for path in DEV_SOURCES
    }


def sample_cases(
    sources: dict[str, str], seed: int, mid_line: int, line_start: int
) -> list[tuple[str, Case]]:
    """(origin, case) pairs, sampled as bench.cases does, in a seeded shuffled order."""
    rng = random.Random(seed)
    out: list[tuple[str, Case]] = []
    with tempfile.TemporaryDirectory() as folder:
        for origin in sorted(sources, key=frozen_name):
            path = Path(folder) / frozen_name(origin)
            path.write_text(sources[origin])
            out.extend(
                (origin, c)
                for c in cases_in_file(path, rng, mid_line=mid_line, line_start=line_start)
            )
    rng.shuffle(out)
    return out


_DEFINED = re.compile(
    r"^[ \t]*(?:async[ \t]+)?(?:def|class)[ \t]+([A-Za-z_]\w*)|"
    r"^([A-Za-z_]\w*)[ \t]*(?::[^=\n]*)?=(?!=)",
    re.M,
)


def defined_names(text: str) -> set[str]:
    """Functions, methods, classes and module-level assignments of a Python file."""
    return {a or b for a, b in _DEFINED.findall(text)}


def target_identifiers(case: Case) -> frozenset[bytes]:
    """Identifiers of the rest of the line that are not already on the cursor's line."""
    from codet5_lsp.server.syntax import identifiers

    line_prefix = case.prefix[case.prefix.rfind("\n") + 1 :]
    return identifiers(case.target) - identifiers(line_prefix)


_WORD_BEFORE = re.compile(r"[A-Za-z_0-9]+\Z")  # \Z: "$" would match before a final line break
_WORD_AFTER = re.compile(r"[A-Za-z_0-9]+")


def _word_parts(case: Case) -> tuple[str, str]:
    """(typed part, rest) of the word the cursor is inside (("", "") when it is not inside
    one): `self.sto|re.open` gives ("sto", "re")."""
    before = _WORD_BEFORE.search(case.prefix)
    after = _WORD_AFTER.match(case.target)
    return (before.group(0), after.group(0)) if before and after else ("", "")


def word_at_cursor(case: Case) -> str:
    """The whole word the cursor is in ("" when it is not inside one): `self.sto|re.open`
    is in `store`."""
    return "".join(_word_parts(case))


def whole_word_identifiers(case: Case) -> frozenset[bytes]:
    """target_identifiers with the word at the cursor taken whole: for `self.sto|re.open(x)`
    the rest of the line needs `store`, `open` (the fragment `re` is not a name any context
    could offer; `sto` is not yet on the line)."""
    from codet5_lsp.server.syntax import identifiers

    line_prefix = case.prefix[case.prefix.rfind("\n") + 1 :]
    typed = _word_parts(case)[0]
    before_word = line_prefix[: len(line_prefix) - len(typed)]
    return identifiers(typed + case.target) - identifiers(before_word)


def cursor_word_identifiers(case: Case) -> frozenset[bytes]:
    """{the word at the cursor} when the cursor is inside a name (else empty)."""
    from codet5_lsp.server.syntax import identifiers

    word = word_at_cursor(case).encode()
    return identifiers(word) & {word}


# The recall measures (see the module docstring): name -> the identifiers a case wants.
RECALL_MEASURES: dict[str, Callable[[Case], frozenset[bytes]]] = {
    "rest_of_line": target_identifiers,
    "rest_of_line_whole_word": whole_word_identifiers,
    "word_at_cursor": cursor_word_identifiers,
}


_IMPORT_LINE = re.compile(r"^[ \t]*(?:from[ \t]+\S+[ \t]+)?import[ \t]+.*$", re.M)


def imported_modules(text: str) -> set[str]:
    """Words of a Python file's import lines (module names, aliases, imported names)."""
    return {w for line in _IMPORT_LINE.findall(text) for w in re.findall(r"\w+", line)}


def cross_file_cases(sources: dict[str, str], seed: int) -> list[tuple[str, Case]]:
    """Positions whose rest of line uses a name defined in another file of the set that
    this file imports (its module name is in the file's import lines) and not defined in
    its own file, at most CROSS_FILE_MAX_PER_FILE per file."""
    defined = {origin: defined_names(text) for origin, text in sources.items()}
    stem = {origin: origin.rsplit("/", 1)[-1].split(".")[0] for origin in sources}
    kept: list[tuple[str, Case]] = []
    per_file: dict[str, int] = {}
    for origin, case in sample_cases(sources, seed + 1, CROSS_FILE_MID_LINE, CROSS_FILE_LINE_START):
        modules = imported_modules(sources[origin])
        elsewhere = set().union(
            *(names for o, names in defined.items() if o != origin and stem[o] in modules)
        )
        foreign = {w.decode() for w in target_identifiers(case)} & (elsewhere - defined[origin])
        if foreign and per_file.get(origin, 0) < CROSS_FILE_MAX_PER_FILE:
            per_file[origin] = per_file.get(origin, 0) + 1
            kept.append((origin, case))
    return kept


class Workspace:
    """A document store holding every file of the set (the other open documents of the
    workspace), and the case documents, each under its own URI so nothing is shared."""

    def __init__(self, sources: dict[str, str]):
        from codet5_lsp.server.documents import DocumentStore

        self.store = DocumentStore()
        self.open = {
            origin: self.store.open(f"file:///bench/open/{origin}", text, "python", 1)
            for origin, text in sources.items()
        }
        self._case_doc = None

    def case(self, index: int, origin: str, case: Case):
        """(document, other open documents) for one case; the previous case doc is closed."""
        if self._case_doc is not None:
            self.store.close(self._case_doc.uri)
        doc = self.store.open(f"file:///bench/case{index}/{origin}", case.document, "python", 1)
        self._case_doc = doc
        return doc, [d for o, d in self.open.items() if o != origin]


# ---- recall ----------------------------------------------------------------------------------
def recall_builders() -> dict[str, Callable]:
    """name -> build(doc, position, count, budget, others) -> context text the model sees."""
    from codet5_lsp.server import context as C

    return {
        "served": lambda d, p, n, b, o: C.build_completion_context(d, p, n, b, 0, o).prefix,
        "served_no_open_documents": lambda d, p, n, b, o: (
            C.build_completion_context(d, p, n, b, 0).prefix
        ),
        "previous_similar_function": lambda d, p, n, b, o: (
            C.similar_function_context(d, p, n, b, 0).prefix
        ),
        "last_n_tokens": lambda d, p, n, b, o: C.last_n_tokens_context(d, p, n, b, 0).prefix,
        "whole_prefix": lambda d, p, n, b, o: d.text[: d.offset_at(p)],
        "whole_file": lambda d, p, n, b, o: d.text,
    }


def recall(
    cases: list[tuple[str, Case]], sources: dict[str, str], count: Callable, budgets=RECALL_BUDGETS
) -> dict:
    """Identifier recall per budget and builder, over the cases whose prefix is over the
    budget and whose rest of line has a name (pooled: identifiers found / identifiers
    wanted), with the per-case mean too; the same for the other RECALL_MEASURES (under their
    names), and per measure a paired bootstrap of served minus last-N (cases resampled)."""
    from lsprotocol import types

    from codet5_lsp.server.syntax import identifiers

    builders = recall_builders()
    wanted = [{m: f(c) for m, f in RECALL_MEASURES.items()} for _, c in cases]
    prefix_tokens = [count(c.prefix[: len(c.prefix)]) for _, c in cases]
    out: dict = {}
    timings: dict[str, list[float]] = {}
    per_case: dict[tuple[str, str, str], list[tuple[int, int]]] = {}
    for name, build in builders.items():
        space = Workspace(sources)  # fresh: no hints shared between builders
        for budget in budgets:
            hits = dict.fromkeys(RECALL_MEASURES, 0)
            total = dict.fromkeys(RECALL_MEASURES, 0)
            shares: list[float] = []
            n = 0
            for i, ((origin, case), want, tokens) in enumerate(zip(cases, wanted, prefix_tokens)):
                if tokens <= budget or not want["rest_of_line"]:
                    continue
                doc, others = space.case(i, origin, case)
                position = types.Position(line=case.line, character=case.character)
                started = time.perf_counter()
                text = build(doc, position, count, budget, others)
                timings.setdefault(name, []).append(time.perf_counter() - started)
                found_names = identifiers(text)
                for measure, names in want.items():
                    found = len(names & found_names)
                    hits[measure] += found
                    total[measure] += len(names)
                    per_case.setdefault((str(budget), name, measure), []).append(
                        (found, len(names))
                    )
                n += 1
                found, wanted_count = per_case[(str(budget), name, "rest_of_line")][-1]
                shares.append(found / wanted_count)
            entry: dict = {
                "cases": n,
                "identifiers": total["rest_of_line"],
                "recall": round(hits["rest_of_line"] / total["rest_of_line"], 4)
                if total["rest_of_line"]
                else None,
                "mean_per_case": round(statistics.fmean(shares), 4) if shares else None,
            }
            for measure in list(RECALL_MEASURES)[1:]:
                entry[measure] = {
                    "identifiers": total[measure],
                    "recall": round(hits[measure] / total[measure], 4) if total[measure] else None,
                }
            out.setdefault(str(budget), {})[name] = entry
    for budget in budgets:
        out[str(budget)]["served_minus_last_n"] = {
            measure: pooled_recall_bootstrap(
                per_case[(str(budget), "last_n_tokens", measure)],
                per_case[(str(budget), "served", measure)],
            )
            for measure in RECALL_MEASURES
            if (str(budget), "served", measure) in per_case
        }
    out["context_ms_median"] = {
        name: round(statistics.median(t) * 1000, 2) for name, t in timings.items() if t
    }
    return out


def pooled_recall_bootstrap(
    a: list[tuple[int, int]],
    b: list[tuple[int, int]],
    rounds: int = BOOTSTRAP_ROUNDS,
    seed: int = 11,
) -> dict[str, float]:
    """Pooled recall of b minus that of a ((found, wanted) per case, the same cases in the
    same order), with a 95% interval from resampling cases."""
    import numpy as np

    found_a, wanted_a = np.array(a, dtype=float).reshape(-1, 2).T
    found_b, wanted_b = np.array(b, dtype=float).reshape(-1, 2).T
    picks = np.random.default_rng(seed).integers(0, len(a), size=(rounds, len(a)))
    with np.errstate(invalid="ignore", divide="ignore"):
        diffs = np.sort(
            found_b[picks].sum(1) / wanted_b[picks].sum(1)
            - found_a[picks].sum(1) / wanted_a[picks].sum(1)
        )
    diffs = np.nan_to_num(diffs)
    return {
        "mean_difference": round(
            float(found_b.sum() / wanted_b.sum() - found_a.sum() / wanted_a.sum()), 4
        )
        if wanted_a.sum()
        else 0.0,
        "ci95_low": round(float(diffs[int(0.025 * rounds)]), 4),
        "ci95_high": round(float(diffs[int(0.975 * rounds) - 1]), 4),
    }


# ---- quality through the pipeline ------------------------------------------------------------
def paired_bootstrap(
    a: list[float], b: list[float], rounds: int = BOOTSTRAP_ROUNDS, seed: int = 7
) -> dict[str, float]:
    """Mean of b - a with a 95% interval and the share of resamples where b beats a."""
    rng = random.Random(seed)
    diffs = [y - x for x, y in zip(a, b)]
    n = len(diffs)
    means = sorted(
        statistics.fmean(diffs[rng.randrange(n)] for _ in range(n)) for _ in range(rounds)
    )
    return {
        "mean_difference": round(statistics.fmean(diffs), 4),
        "ci95_low": round(means[int(0.025 * rounds)], 4),
        "ci95_high": round(means[int(0.975 * rounds) - 1], 4),
        "share_of_resamples_higher": round(sum(m > 0 for m in means) / rounds, 3),
    }


class _OneEngine:
    """The part of ModelManager the pipeline uses: the loaded completion engine, whose
    answers are remembered per request (greedy decoding is deterministic, so the two builders
    share the model call wherever they build the same request)."""

    def __init__(self, engine):
        self.engine = _RememberingEngine(engine)

    def completion_engine(self):
        return self.engine


class _RememberingEngine:
    def __init__(self, engine):
        self._engine = engine
        self._results: dict = {}

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def submit(self, request, cancel=None):
        from concurrent.futures import Future

        key = (
            request.mode,
            tuple(request.encoder_tokens or ()),
            tuple(request.decoder_prefix),
            tuple(request.heal_tokens),
            request.max_new_tokens,
            request.alternatives,
            request.end_tokens,
            repr(request.stop_rule),
        )
        if key not in self._results:
            self._results[key] = self._engine.generate(request)
        done: Future = Future()
        done.set_result(self._results[key])
        return done


def pipeline_predictions(
    models: _OneEngine, cases: list[tuple[str, Case]], sources: dict[str, str], builder: str
) -> list[Q.Prediction]:
    """Suggestions from `CompletionPipeline.complete` (the server's path), with the served
    context builder or the last-N one patched in; first line as inserted vs the target."""
    from lsprotocol import types

    from codet5_lsp.server import context as C
    from codet5_lsp.server import pipeline as P
    from codet5_lsp.server.settings import Settings

    settings = Settings(
        model=str(Q.LABMODEL),
        device="cpu",
        compute_type="float32",
        completion_mode="decoder",
        request_timeout_ms=600_000,
        max_context_tokens=Q.CONTEXT_TOKENS,
        speculation=False,
    )
    real = P.build_completion_context
    if builder == "last_n_tokens":

        def patched(doc, position, count, prefix_tokens, suffix_tokens, *args, **kwargs):
            return C.last_n_tokens_context(doc, position, count, prefix_tokens, suffix_tokens)

        P.build_completion_context = patched  # type: ignore[assignment]
    space = Workspace(sources)
    preds: list[Q.Prediction] = []

    async def go() -> None:
        for i, (origin, case) in enumerate(cases):
            pipeline = P.CompletionPipeline(models, settings)  # type: ignore[arg-type]
            doc, others = space.case(i, origin, case)
            position = types.Position(line=case.line, character=case.character)
            started = time.perf_counter()
            suggestion = await _complete(pipeline, doc, position, others)
            elapsed = (time.perf_counter() - started) * 1000
            text = suggestion.text if suggestion is not None else ""
            line = text.split("\n", 1)[0]
            preds.append(
                Q.Prediction(
                    case.id,
                    case.kind,
                    line,
                    line == case.target,
                    Q.edit_similarity(line, case.target),
                    elapsed,
                )
            )

    try:
        asyncio.run(go())
    finally:
        P.build_completion_context = real  # type: ignore[assignment]
    return preds


async def _complete(pipeline, doc, position, others):
    """pipeline.complete with the other open documents when the pipeline takes them."""
    try:
        return await pipeline.complete(doc, position, debounce=False, open_documents=others)
    except TypeError as exc:
        if "open_documents" not in str(exc):
            raise
        return await pipeline.complete(doc, position, debounce=False)


def healing_in_pipeline(engine) -> bool:
    """Whether the pipeline heals the token at the cursor (token healing: the request's
    `healer`, on by default in the settings)."""
    from codet5_lsp.server.settings import Settings

    return (
        bool(getattr(Settings(), "token_healing", False))
        and getattr(engine, "healer", None) is not None
    )


def quality(cases: list[tuple[str, Case]], sources: dict[str, str], cache_dir: Path) -> dict:
    from codet5_lsp.inference.engine import CompletionEngine
    from codet5_lsp.inference.models import resolve_model

    files = resolve_model(str(Q.LABMODEL), quantization="float32", cache_dir=cache_dir)
    engine = _OneEngine(CompletionEngine(files, device="cpu", compute_type="float32"))
    try:
        base = pipeline_predictions(engine, cases, sources, "last_n_tokens")
        ours = pipeline_predictions(engine, cases, sources, "served")
        healing = healing_in_pipeline(engine.engine)
    finally:
        engine.engine.close()
    return {
        "cases": len(cases),
        "token_healing": healing,
        "last_n_tokens": Q.summarize(base),
        "served": Q.summarize(ours),
        "same_suggestion": sum(a.line == b.line for a, b in zip(base, ours)),
        "served_minus_last_n": {
            "edit_similarity": paired_bootstrap(
                [p.similarity for p in base], [p.similarity for p in ours]
            ),
            "exact_match": paired_bootstrap(
                [float(p.exact) for p in base], [float(p.exact) for p in ours]
            ),
        },
    }


# ---- run and report --------------------------------------------------------------------------
def run(case_set: str, limit: int | None, cache_dir: Path, recall_only: bool) -> dict:
    from codet5_lsp.inference.tokenizer import CodeTokenizer  # noqa: F401 (source tree check)

    sources = development_sources() if case_set == "dev" else heldout_sources()
    seed = DEV_SEED if case_set == "dev" else DENSE_SEED
    dense = sample_cases(sources, seed, DENSE_MID_LINE, DENSE_LINE_START)[:limit]
    cross = cross_file_cases(sources, seed)[:limit]
    count = _token_counter()
    started = time.perf_counter()
    out: dict = {
        "device": Q.cpu_description(),
        "case_set": case_set,
        "files": sorted(sources),
        "dev_commit": DEV_COMMIT if case_set == "dev" else None,
        "sample": {
            "seed": seed,
            "mid_line_per_file": DENSE_MID_LINE,
            "line_start_per_file": DENSE_LINE_START,
        },
        "cases": len(dense),
        "cross_file_cases": len(cross),
        "recall": recall(dense, sources, count),
        "recall_cross_file": recall(cross, sources, count),
    }
    if not recall_only:
        out["model"] = "labmodel (29M), float32, decoder mode, through CompletionPipeline"
        out["context_tokens"] = Q.CONTEXT_TOKENS
        out["quality"] = quality(dense, sources, cache_dir)
        out["quality_cross_file"] = quality(cross, sources, cache_dir)
        out["healing_in_pipeline"] = out["quality"]["token_healing"]
    out["runtime_s"] = round(time.perf_counter() - started, 1)
    return out


def _token_counter() -> Callable[[str], int]:
    from tokenizers import ByteLevelBPETokenizer

    tok = ByteLevelBPETokenizer(str(Q.LABMODEL / "vocab.json"), str(Q.LABMODEL / "merges.txt"))
    return lambda s: len(tok.encode(s).ids)


RECALL_LABELS = {
    "served": "**served** (other files of the set open)",
    "served_no_open_documents": "served, no other document open",
    "previous_similar_function": "previous (imports + similar function)",
    "last_n_tokens": "last N tokens",
    "whole_prefix": "ceiling: whole text before the cursor",
    "whole_file": "ceiling: whole file",
}


def _recall_table(r: dict, measure: str = "rest_of_line") -> list[str]:
    budgets = [b for b in r if b.isdigit()]

    def of(entry: dict) -> dict:
        return entry if measure == "rest_of_line" else entry[measure]

    lines = [
        "| context | " + " | ".join(f"{b} tokens" for b in budgets) + " |",
        "|---|" + "---|" * len(budgets),
    ]
    for name, label in RECALL_LABELS.items():
        cells = []
        for b in budgets:
            x = r[b].get(name)
            cells.append(f"{of(x)['recall']:.3f}" if x and of(x)["recall"] is not None else "-")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if all(measure in r[b].get("served_minus_last_n", {}) for b in budgets):
        cells = []
        for b in budgets:
            d = r[b]["served_minus_last_n"][measure]
            cells.append(
                f"{d['mean_difference']:+.3f} [{d['ci95_low']:+.3f}, {d['ci95_high']:+.3f}]"
            )
        lines.append("| served minus last N (95% interval) | " + " | ".join(cells) + " |")
    lines.append(
        "| cases (prefix over the budget) / "
        + ("identifiers" if measure != "word_at_cursor" else "cursors inside a word")
        + " | "
        + " | ".join(
            f"{r[b]['served']['cases']} / {of(r[b]['served'])['identifiers']}" for b in budgets
        )
        + " |"
    )
    return lines


def _quality_lines(q: dict) -> list[str]:
    d = q["served_minus_last_n"]

    def row(name: str, label: str) -> str:
        s = q[name]
        return f"| {label} | {s['exact_match'] * 100:.1f}% | {s['edit_similarity']:.4f} |"

    def diff(key: str, label: str, scale: float = 1.0, unit: str = "") -> str:
        x = d[key]
        return (
            f"| {label} | {x['mean_difference'] * scale:+.4f}{unit} | "
            f"[{x['ci95_low'] * scale:+.4f}, {x['ci95_high'] * scale:+.4f}]{unit} | "
            f"{x['share_of_resamples_higher']:.3f} |"
        )

    return [
        "| context | exact match | edit similarity |",
        "|---|---|---|",
        row("last_n_tokens", "last N tokens"),
        row("served", "served"),
        "",
        f"Same suggestion in {q['same_suggestion']} of {q['cases']} cases. Paired "
        f"bootstrap ({BOOTSTRAP_ROUNDS} resamples), served minus last-N:",
        "",
        "| metric | mean difference | 95% interval | share of resamples > 0 |",
        "|---|---|---|---|",
        diff("edit_similarity", "edit similarity"),
        diff("exact_match", "exact match (points)", 100.0),
    ]


def markdown(r: dict) -> str:
    lines = [
        "# Context selection: identifier recall and quality vs last-N",
        "",
        f"Device: {r['device']}. Case set: {r['case_set']} ({len(r['files'])} files"
        + (
            f" at {r['dev_commit'][:7]}"
            if r.get("dev_commit")
            else ", frozen in `bench/data/heldout/`"
        )
        + f"), seed {r['sample']['seed']}, "
        f"{r['sample']['mid_line_per_file']} mid-line + {r['sample']['line_start_per_file']} "
        f"line-start positions per file: {r['cases']} cases; cross-file set: "
        f"{r['cross_file_cases']} cases.",
        "",
        "## Identifier recall (model-free)",
        "",
        "Share of the identifiers of the rest of the line (not already on the cursor's line) "
        "that the context holds, pooled over the cases whose text before the cursor is over "
        "the budget. The served selection sees the other files of the set as open documents.",
        "",
        *_recall_table(r["recall"]),
        "",
        "The same with the word at the cursor taken whole (`self.sto|re.open(x)` wants `store` "
        "and `open`, not the fragment `re`, which no context can offer):",
        "",
        *_recall_table(r["recall"], "rest_of_line_whole_word"),
        "",
        "The word at the cursor alone, at the cursors inside a word (`store` above): the name "
        "the completion writes first.",
        "",
        *_recall_table(r["recall"], "word_at_cursor"),
        "",
        "Cross-file set (the rest of the line uses a name defined in another file of the set):",
        "",
        *_recall_table(r["recall_cross_file"]),
        "",
        "Cross-file set, the word at the cursor taken whole:",
        "",
        *_recall_table(r["recall_cross_file"], "rest_of_line_whole_word"),
        "",
        "Context step, median ms per call in this run (labmodel BPE counts; all budgets): "
        + ", ".join(
            f"{k} {v}"
            for k, v in r["recall"]["context_ms_median"].items()
            if k.startswith(("served", "previous", "last"))
        )
        + ".",
    ]
    if "quality" in r:
        lines += [
            "",
            f"## Quality: {r['model']}, {r['context_tokens']} tokens",
            "",
            "Suggestions from `CompletionPipeline.complete` (prompt, "
            + (
                "token healing, "
                if r["healing_in_pipeline"]
                else "no token healing (not in the pipeline at the time of this run), "
            )
            + "post-processing as served); first line as inserted vs the real rest of the "
            "line, not stripped.",
            "",
            "Dense set:",
            "",
            *_quality_lines(r["quality"]),
            "",
            "Cross-file set:",
            "",
            *_quality_lines(r["quality_cross_file"]),
        ]
    lines += [
        "",
        f"Runtime {r['runtime_s']} s (`python -m bench.context_quality"
        + (" --set dev" if r["case_set"] == "dev" else "")
        + (
            f" --context-tokens {r['context_tokens']}"
            if r.get("context_tokens", DEFAULT_MODEL_TOKENS) != DEFAULT_MODEL_TOKENS
            else ""
        )
        + "`).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", dest="case_set", choices=["heldout", "dev"], default="heldout")
    parser.add_argument("--limit", type=int, help="use only the first N cases of each set")
    parser.add_argument("--recall-only", action="store_true", help="skip the model measure")
    parser.add_argument("--cache-dir", type=Path, help="conversion cache (default: user cache)")
    parser.add_argument("--no-write", action="store_true", help="print, do not write results")
    parser.add_argument(
        "--context-tokens",
        type=int,
        default=Q.CONTEXT_TOKENS,
        help=f"prefix budget of the model measure (default {Q.CONTEXT_TOKENS}; another budget "
        "writes context-quality-N.{json,md})",
    )
    args = parser.parse_args(argv)
    name = (
        "context-quality"
        if args.context_tokens == DEFAULT_MODEL_TOKENS
        else f"context-quality-{args.context_tokens}"
    )
    Q.CONTEXT_TOKENS = args.context_tokens
    use_source_tree()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    results = run(
        args.case_set, args.limit, args.cache_dir or Q.bench_cache_dir(), args.recall_only
    )
    text = markdown(results)
    if not args.no_write and args.case_set == "heldout":
        Q.write_results(name, results, text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
