"""Cut the loops a small greedy model falls into: `class_class_class_…` in a completion, "Return
the given a given a given given …" in a summary.

Greedy decoding of a small model, once it has written a phrase twice, tends to write it until
the token limit; the user then sees a suggestion or a hover that is mostly noise. The output is
cut where the loop starts, keeping the first occurrence (the part that may still be right).
Why after generation rather than a `repetition_penalty` / `no_repeat_ngram_size` in the
decoder: those change every token's score, so they also change the suggestions that have no
loop at all (and code repeats n-grams legitimately: `self.`, `, 0, 0`), while a cut touches
only the outputs that loop. bench/repetition.py measures what the cut changes
(bench/results/repetition.md).

Pure functions over strings; tested with tables of golden cases (tests/test_repetition.py).
"""

from __future__ import annotations

import re

# A unit of 3-60 characters written three times in a row (the first occurrence plus two
# copies). Three, not two: `self.x = x` or `a, a` are fine twice.
_REPEATED_RUN = re.compile(r"(.{3,60}?)\1{2,}", re.DOTALL)
_LETTER = re.compile(r"[^\W\d_]")

# Words a cut summary must not end on ("Return the given a" -> "Return the given").
_DANGLING_WORDS = frozenset(
    "a an the of to and or for with in on by from as at is are be that which if than into "
    "its their this".split()
)
_MAX_WORD_UNIT = 8


def _is_loop_unit(unit: str) -> bool:
    """Repeats worth cutting: words (two distinct letters at least) or a whole line.

    `0, 0, 0, 0`, `----`, `0xffffffff` and `'  '` are left alone: they are how code and
    comments look, not a model stuck in a loop.
    """
    if "\n" in unit and unit.strip():
        return True
    return len(set(_LETTER.findall(unit.lower()))) >= 2


def cut_repeated_text(text: str) -> str:
    """`text` up to the end of the first occurrence of a unit it then repeats twice more.

    `foo(class_class_class_class_` -> `foo(class_`; text without such a run is returned
    unchanged (the same object).
    """
    position = 0
    while True:
        match = _REPEATED_RUN.search(text, position)
        if match is None:
            return text
        unit = match.group(1)
        if _is_loop_unit(unit):
            return text[: match.start() + len(unit)]
        position = match.start() + 1


def cut_repeated_words(sentence: str) -> str:
    """A summary sentence up to where a group of words starts repeating itself.

    A group of 2-8 words written twice in a row ("a given a given"), or one word three times
    ("given given given"), starts a loop; the sentence keeps the words before the repeat,
    minus words it cannot end on ("the", "of", ...). Character-level loops inside a word
    (`pyplot.pyplot.pyplot`) are cut too. A sentence left with fewer than two words is no
    summary: "" is returned.
    """
    words = sentence.split()
    cut = _word_loop_end(words)
    if cut is None:
        shorter = cut_repeated_text(sentence)
        if shorter is sentence:
            return sentence
        words = shorter.split()
    else:
        words = cut_repeated_text(" ".join(words[:cut])).split()
    while words and words[-1].lower().strip(",;:") in _DANGLING_WORDS:
        words.pop()
    if words:
        words[-1] = words[-1].rstrip(",;:")
    return " ".join(words) if len(words) >= 2 else ""


def _word_loop_end(words: list[str]) -> int | None:
    """Index just past the first occurrence of the earliest repeating word group, or None."""
    for start in range(len(words)):
        for size in range(1, _MAX_WORD_UNIT + 1):
            unit = words[start : start + size]
            if len(unit) < size:
                break
            copies = 3 if size == 1 else 2
            if all(
                words[start + k * size : start + (k + 1) * size] == unit for k in range(1, copies)
            ):
                return start + size
    return None
