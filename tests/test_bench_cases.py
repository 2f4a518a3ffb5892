"""The benchmark's held-out case set is fixed, non-empty and cut from its frozen files."""

from __future__ import annotations

from bench.cases import HELDOUT_DIR, heldout_files, load_cases


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
