"""The benchmark's held-out case set is fixed, non-empty and cut from its frozen files."""

from __future__ import annotations

import pytest

from bench.cases import HELDOUT_DIR, Case, heldout_files, load_cases


def test_cases_are_deterministic():
    first, second = load_cases(), load_cases()
    assert first == second
    assert load_cases(seed=1) != first  # the seed really drives the choice


def test_enough_cases_of_both_kinds():
    cases = load_cases()
    assert len(cases) >= 150
    kinds = {c.kind for c in cases}
    assert kinds == {"mid_line", "line_start"}
    assert len({c.id for c in cases}) == len(cases)


def test_every_case_is_cut_from_its_source_file():
    texts = {p.name: p.read_text() for p in heldout_files()}
    for case in load_cases():
        text = texts[case.file]
        assert case.prefix + case.target in text
        assert case.prefix + case.target + case.suffix == text
        assert case.target.strip() and "\n" not in case.target
        line = text.splitlines()[case.line]
        assert line[case.character :] == case.target
        if case.kind == "line_start":
            assert line.strip() == case.target
        else:
            assert line[: case.character].strip()  # something typed before the cursor


def test_limit_and_kind_filter():
    assert len(load_cases(limit=20)) == 20
    assert all(c.kind == "mid_line" for c in load_cases(kind="mid_line"))
    assert HELDOUT_DIR.is_dir()


# ---- bench.context_quality's recall measures ---------------------------------------------------
def _case(prefix: str, target: str) -> Case:
    return Case("x", "x.txt", "mid_line", 0, len(prefix), prefix, target, "\n")


@pytest.mark.parametrize(
    "prefix, target, literal, whole_word, word",
    [
        # inside a word: the literal measure wants the fragment, the whole-word one the name
        (
            "    value = self.sto",
            "re.open(path)",
            {b"re", b"open", b"path"},
            {b"store", b"open", b"path"},
            {b"store"},
        ),
        # after a dot: no word at the cursor; names already on the line are not wanted
        ("    path = self.", "path_of(root)", {b"path_of", b"root"}, {b"path_of", b"root"}, set()),
        # at the end of a word: it is the whole word
        ("    total = coun", "t", set(), {b"count"}, {b"count"}),
        # a keyword is not a name
        ("    ret", "urn value", {b"urn", b"value"}, {b"value"}, set()),
        # at the start of a line after one that ends in a word: no word at the cursor
        ("import json\n", "value = 1", {b"value"}, {b"value"}, set()),
    ],
)
def test_recall_measures(prefix, target, literal, whole_word, word):
    from bench import context_quality as CQ

    CQ.use_source_tree()
    case = _case(prefix, target)
    assert CQ.target_identifiers(case) == literal
    assert CQ.whole_word_identifiers(case) == whole_word
    assert CQ.cursor_word_identifiers(case) == word


def test_pooled_recall_bootstrap():
    from bench import context_quality as CQ

    last_n = [(1, 4), (0, 2), (2, 2), (1, 3)]
    same = CQ.pooled_recall_bootstrap(last_n, last_n, rounds=200)
    assert same == {"mean_difference": 0.0, "ci95_low": 0.0, "ci95_high": 0.0}
    better = [(3, 4), (1, 2), (2, 2), (2, 3)]  # pooled 8/11 against 4/11
    diff = CQ.pooled_recall_bootstrap(last_n, better, rounds=200)
    assert diff["mean_difference"] == round(8 / 11 - 4 / 11, 4)
    assert 0 < diff["ci95_low"] <= diff["mean_difference"] <= diff["ci95_high"]
