"""The hover-summary benchmark's held-out set: fixed, cut from its frozen files, no leaks."""

from __future__ import annotations

import hashlib
import json

import pytest

from bench.summaries import MANIFEST, SUMMARY_DIR, cases_in_text, frozen_files, load_cases
from codet5_lsp.server.summaries import first_sentence


@pytest.fixture(scope="module")
def cases():
    return load_cases()


def test_set_is_deterministic_and_large_enough(cases):
    again = load_cases()
    assert again == cases
    assert len(cases) >= 60
    assert len({c.id for c in cases}) == len(cases)
    assert len({c.body_hash for c in cases}) == len(cases)  # each cold hover is really cold


def test_frozen_files_are_unchanged():
    entries = json.loads(MANIFEST.read_text())["files"]
    assert sorted(SUMMARY_DIR / e["file"] for e in entries) == frozen_files()
    for entry in entries:
        text = (SUMMARY_DIR / entry["file"]).read_text()
        assert hashlib.sha256(text.encode()).hexdigest() == entry["sha256"], entry["file"]


def test_references_are_first_sentences_of_the_docstrings(cases):
    for case in cases:
        assert case.reference.strip(), case.id
        assert case.reference == first_sentence(case.docstring)
        first_paragraph = " ".join(case.docstring.split("\n\n", 1)[0].split())
        assert first_paragraph.startswith(case.reference), case.id


def test_model_input_has_no_docstring_text(cases):
    for case in cases:
        assert case.docstring not in case.model_input, case.id
        assert case.reference not in case.model_input, case.id
        for line in case.docstring.splitlines():
            if len(line.strip()) >= 30:  # long enough not to occur in code by chance
                assert line.strip() not in case.model_input, (case.id, line)
        # the input is the function itself, from its `def` (after any decorators)
        assert f"def {case.name}(" in case.model_input


def test_cases_come_from_the_frozen_text_at_the_hover_position(cases):
    texts = {path.name: path.read_text().splitlines() for path in frozen_files()}
    for case in cases:
        line = texts[case.file][case.line]
        assert line[case.character :].startswith(case.name + "("), case.id


def test_builder_rules_on_a_small_file():
    text = '''def documented(a, b):
    """Add two numbers.  Then more.

    Second paragraph.
    """
    return a + b


def undocumented(x):
    return x


def leaks(x):
    """Return x."""
    # Return x.
    return x


class Box:
    def area(self, w, h):
        """The area of a w by h box."""
        return w * h
'''
    found = cases_in_text("small.py.txt", text)
    assert [(c.name, c.reference) for c in found] == [
        ("documented", "Add two numbers."),
        ("area", "The area of a w by h box."),
    ]
    documented, area = found
    assert documented.model_input == "def documented(a, b):\n    return a + b"
    assert (documented.line, documented.character) == (0, 4)
    assert area.model_input.startswith("def area(self, w, h):\n    return w * h")
    assert area.id == "small.py.txt:20:area"
