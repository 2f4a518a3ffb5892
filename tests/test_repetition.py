"""Golden cases of the repetition filter (server/repetition.py): loops are cut, code and
sentences that merely repeat a little are left exactly as they are."""

from __future__ import annotations

import pytest

from codet5_lsp.server.repetition import cut_repeated_text, cut_repeated_words

# (completion as generated, as shown) -- compared as inserted, never stripped
COMPLETIONS = [
    # loops a small model falls into
    ("class_class_class_class_class_", "class_"),
    ("foo(class_class_class_class_", "foo(class_"),
    ("self.assertEqual(self.assertEqual(self.assertEqual(", "self.assertEqual("),
    ("x = 1\nx = 1\nx = 1\nx = 1\n", "x = 1\n"),
    ("    pass\n    pass\n    pass\n", "    pass\n"),
    ("return the the the the", "return the"),  # unit " the": kept once
    ("name.name.name.name", "name."),
    # not loops: kept unchanged
    ("os.listdir(folder)", "os.listdir(folder)"),
    ("[0, 0, 0, 0, 0, 0]", "[0, 0, 0, 0, 0, 0]"),
    ("# " + "-" * 70, "# " + "-" * 70),
    ("0xffffffff", "0xffffffff"),
    (
        "self.a = a\n    self.b = b\n    self.c = c\n",
        "self.a = a\n    self.b = b\n    self.c = c\n",
    ),
    ("foo_foo", "foo_foo"),  # twice is fine
    ("print(x)\nprint(x)\n", "print(x)\nprint(x)\n"),
    ("'  ' * 3", "'  ' * 3"),
    ("", ""),
    ("\n\n\n\n", "\n\n\n\n"),
    ("    \n    \n    \n", "    \n    \n    \n"),
    ("aaaaaaaaaaaa", "aaaaaaaaaaaa"),  # one letter: not a word loop
]


@pytest.mark.parametrize("generated, shown", COMPLETIONS)
def test_completion_loops_are_cut_and_nothing_else(generated, shown):
    assert cut_repeated_text(generated) == shown


def test_text_without_a_loop_is_returned_as_is():
    text = "def f(x):\n    return x + 1\n"
    assert cut_repeated_text(text) is text


# (summary as generated, as shown); all but the last four from bench/results/summaries.md
SUMMARIES = [
    ("Return the given a given a given given given", "Return the given"),
    (
        "Set the given `x` to the `x` and `x` to `x` to `x` to `x` to",
        "Set the given `x` to the `x` and `x`",
    ),
    (
        "Set the given `~matplotlib.pyplot.pyplot.pyplot.pyplot.pyplot.py",
        "Set the given `~matplotlib.pyplot",
    ),
    (
        "Return the given `self` for the given `self` for the given `self` for the given `self`.",
        "Return the given `self`",
    ),
    (
        "Return the given a string for the given given given given given given",
        "Return the given a string for the given",
    ),
    (
        "Return the given a list of the given list of the given list of strings.",
        "Return the given a list of the given",
    ),
    # no loop: unchanged
    (
        "Return a list of strings for the given list of strings.",
        "Return a list of strings for the given list of strings.",
    ),
    ("Return the given `x` and `x` (see `x`).", "Return the given `x` and `x` (see `x`)."),
    ("Check that that name is free.", "Check that that name is free."),
    ("One by one, step by step.", "One by one, step by step."),
    # a loop from the start leaves no summary
    ("the the the the the", ""),
    ("given given given", ""),
]


@pytest.mark.parametrize("generated, shown", SUMMARIES)
def test_summary_loops_are_cut_to_a_sentence(generated, shown):
    assert cut_repeated_words(generated) == shown


def test_a_summary_without_a_loop_is_returned_as_is():
    sentence = "Return the number of open documents."
    assert cut_repeated_words(sentence) is sentence
