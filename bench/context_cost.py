"""What the word-at-cursor step costs the context step: the same positions, with and without.

`build_completion_context` (384 prefix tokens, decoder mode, the labmodel's BPE counts) at
the positions of `bench.documents` (mid-line, spread over the file), on its 20k- and 2k-line
files of real Python, in alternating rounds: `retrieval.word_completions` as served, and
replaced by one that finds nothing (the selection before the word step). CPU time medians
per round, and their ratio: this machine is shared, so only the same-run ratio means much.

    python -m bench.context_cost [--rounds N]

Writes bench/results/context-cost.{json,md}.
"""

from __future__ import annotations

import argparse
import random
import statistics

from bench import documents as D
from bench import quality as Q
from codet5_lsp.server import retrieval as R

ROUNDS = 3


def _without_word_step(*args: object, **kwargs: object) -> R.WordCompletions:
    return R.WordCompletions()


def run(rounds: int) -> dict:
    served = R.word_completions
    files = {"20k lines": D.real_python_source(20_000), "2k lines": D.real_python_source(2_000)}
    medians: dict[str, dict[str, list[float]]] = {f: {"with": [], "without": []} for f in files}
    try:
        for index in range(rounds):
            for variant, step in (("without", _without_word_step), ("with", served)):
                R.word_completions = step  # type: ignore[assignment]
                for name, text in files.items():
                    result = D.bench_context(text, random.Random(1234 + index))
                    medians[name][variant].append(result["cpu"]["median_ms"])
    finally:
        R.word_completions = served
    return {
        "device": Q.cpu_description(),
        "rounds": rounds,
        "budget_tokens": 384,
        "cpu_median_ms": medians,
        "ratio_with_to_without": {
            name: round(statistics.median(m["with"]) / statistics.median(m["without"]), 3)
            for name, m in medians.items()
        },
    }


def markdown(r: dict) -> str:
    lines = [
        "# Context step: the cost of the word-at-cursor step",
        "",
        f"Device: {r['device']}. `build_completion_context`, {r['budget_tokens']} prefix "
        "tokens, decoder mode, 300 mid-line positions per file and round (`bench.documents`' "
        "positions and files); CPU time, median per round, rounds alternating.",
        "",
        "| file | without the word step (ms) | with it, as served (ms) | ratio |",
        "|---|---|---|---|",
    ]
    for name, m in r["cpu_median_ms"].items():
        lines.append(
            f"| {name} | {' / '.join(f'{x:.2f}' for x in m['without'])} | "
            f"{' / '.join(f'{x:.2f}' for x in m['with'])} | "
            f"{r['ratio_with_to_without'][name]:.2f} |"
        )
    lines += ["", "`python -m bench.context_cost`", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args(argv)
    results = run(args.rounds)
    text = markdown(results)
    Q.write_results("context-cost", results, text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
