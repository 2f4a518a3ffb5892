"""A fixed, held-out set of cursor positions in real Python code, for quality and latency runs.

Why held out: the labmodel was trained on installed packages and the standard library, so its
measured quality means something only on code it never saw. This repository's own Python is
such code. A frozen copy of a dozen of its files lives in ``bench/data/heldout/`` (``.py.txt``,
so no tool imports or lints them) so that the set does not drift as the repository changes;
``python -m bench.cases --freeze`` re-copies them (only do that on purpose: it changes the
benchmark).

Two kinds of case, chosen with a seeded RNG (deterministic):

- ``mid_line``: the cursor inside a line after its indentation; the target is the rest of the
  line;
- ``line_start``: the cursor after a line's indentation (where an editor puts it after Enter);
  the target is the whole text of the line.

For every case, ``prefix + target + suffix`` is the frozen file's text: ``suffix`` is what
follows the cursor's line (from its newline on), i.e. the document as it looks while the line
is still being written.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
HELDOUT_DIR = BENCH_DIR / "data" / "heldout"
MANIFEST = HELDOUT_DIR / "MANIFEST.json"

# Repository files frozen into HELDOUT_DIR (not pip-installed anywhere the labmodel trained).
FROZEN_SOURCES = (
    "server/cli.py",
    "server/lsp.py",
    "server/pipeline.py",
    "server/postprocess.py",
    "server/stats.py",
    "server/typethrough.py",
    "server/model_manager.py",
    "inference/engine.py",
    "inference/models.py",
    "inference/checkpoints.py",
    "tests/test_prompts.py",
    "tests/test_stats.py",
)

DEFAULT_SEED = 20260
MID_LINE_PER_FILE = 9
LINE_START_PER_FILE = 5
MIN_PREFIX_CHARS = 200

CaseKind = Literal["mid_line", "line_start"]


@dataclass(frozen=True)
class Case:
    """One cursor position: the document is ``prefix + target + suffix``."""

    id: str
    file: str  # name under HELDOUT_DIR
    kind: CaseKind
    line: int  # 0-based line of the cursor
    character: int  # 0-based column of the cursor (code points; the files are ASCII)
    prefix: str
    target: str
    suffix: str

    @property
    def document(self) -> str:
        """The text an editor holds while the target line is being typed (target removed)."""
        return self.prefix + self.suffix


def frozen_name(repo_path: str) -> str:
    return repo_path.replace("/", "__") + ".txt"


def freeze_sources(paths: tuple[str, ...] = FROZEN_SOURCES) -> None:
    """Copy the repository files into HELDOUT_DIR and record where they came from."""
    HELDOUT_DIR.mkdir(parents=True, exist_ok=True)
    entries = []
    for repo_path in paths:
        text = (REPO / repo_path).read_text()
        (HELDOUT_DIR / frozen_name(repo_path)).write_text(text)
        entries.append(
            {
                "file": frozen_name(repo_path),
                "origin": repo_path,
                "sha256": hashlib.sha256(text.encode()).hexdigest(),
            }
        )
    MANIFEST.write_text(json.dumps({"files": entries}, indent=2) + "\n")


def heldout_files() -> list[Path]:
    names = [e["file"] for e in json.loads(MANIFEST.read_text())["files"]]
    return [HELDOUT_DIR / n for n in sorted(names)]


def _line_starts(lines: list[str]) -> list[int]:
    starts, offset = [], 0
    for line in lines:
        starts.append(offset)
        offset += len(line)
    return starts


def cases_in_file(
    path: Path,
    rng: random.Random,
    *,
    mid_line: int,
    line_start: int,
    min_prefix_chars: int = MIN_PREFIX_CHARS,
) -> list[Case]:
    """Sample `mid_line` + `line_start` positions of one file (fewer if it has too few lines)."""
    text = path.read_text()
    lines = text.splitlines(keepends=True)
    starts = _line_starts(lines)
    mid_candidates, start_candidates = [], []
    for i, line in enumerate(lines):
        body = line.rstrip("\r\n")
        stripped = body.strip()
        if starts[i] < min_prefix_chars or not stripped:
            continue
        if len(stripped) >= 12:
            mid_candidates.append(i)
        if len(stripped) >= 4:
            start_candidates.append(i)
    chosen_mid = sorted(rng.sample(mid_candidates, min(mid_line, len(mid_candidates))))
    taken = set(chosen_mid)
    start_pool = [i for i in start_candidates if i not in taken]
    chosen_start = sorted(rng.sample(start_pool, min(line_start, len(start_pool))))
    cases = []
    for kind, rows in (("mid_line", chosen_mid), ("line_start", chosen_start)):
        for i in rows:
            body = lines[i].rstrip("\r\n")
            indent = len(body) - len(body.lstrip())
            col = rng.randint(indent + 1, len(body) - 2) if kind == "mid_line" else indent
            cut = starts[i] + col
            end = starts[i] + len(body)
            cases.append(
                Case(
                    id=f"{path.name}:{i + 1}:{col}",
                    file=path.name,
                    kind=kind,
                    line=i,
                    character=col,
                    prefix=text[:cut],
                    target=text[cut:end],
                    suffix=text[end:],
                )
            )
    return cases


def load_cases(
    seed: int = DEFAULT_SEED,
    *,
    limit: int | None = None,
    kind: CaseKind | None = None,
    mid_line: int = MID_LINE_PER_FILE,
    line_start: int = LINE_START_PER_FILE,
) -> list[Case]:
    """The benchmark's cases, in a seeded shuffled order (so any `limit` mixes files)."""
    rng = random.Random(seed)
    cases: list[Case] = []
    for path in heldout_files():
        cases.extend(cases_in_file(path, rng, mid_line=mid_line, line_start=line_start))
    rng.shuffle(cases)
    if kind is not None:
        cases = [c for c in cases if c.kind == kind]
    return cases[:limit] if limit is not None else cases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--freeze", action="store_true", help="re-copy the repository files into bench/data/heldout"
    )
    args = parser.parse_args(argv)
    if args.freeze:
        freeze_sources()
    cases = load_cases()
    kinds = {k: sum(c.kind == k for c in cases) for k in ("mid_line", "line_start")}
    print(f"{len(cases)} cases from {len(heldout_files())} files: {kinds}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
