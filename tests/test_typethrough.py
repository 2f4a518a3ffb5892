"""Type-through cache: the rest of a shown suggestion while the user types it."""

from __future__ import annotations

import pytest

from codet5_lsp.server.typethrough import PREFIX_KEY_CHARS, TypeThroughCache

URI = "file:///a.py"
PREFIX = "def total(xs):\n    return "
SUFFIX = "\n\nprint(total([1]))\n"
SUGGESTION = "sum(xs)"

# (uri, prefix, suffix) of the later request, expected answer
LOOKUPS = [
    pytest.param(URI, PREFIX, SUFFIX, "sum(xs)", id="same-spot-again"),
    pytest.param(URI, PREFIX + "s", SUFFIX, "um(xs)", id="typed-one-char"),
    pytest.param(URI, PREFIX + "sum(", SUFFIX, "xs)", id="typed-several"),
    pytest.param(URI, PREFIX + "sum(xs", SUFFIX, ")", id="one-char-left"),
    pytest.param(URI, PREFIX + "sum(xs)", SUFFIX, None, id="whole-suggestion-typed"),
    pytest.param(URI, PREFIX + "sum(xs) ", SUFFIX, None, id="typed-past-the-suggestion"),
    pytest.param(URI, PREFIX + "m", SUFFIX, None, id="mismatch"),
    pytest.param(URI, PREFIX + "su m", SUFFIX, None, id="mismatch-after-match"),
    pytest.param(URI, PREFIX[:-1], SUFFIX, None, id="deleted-before-the-spot"),
    pytest.param(URI, PREFIX + "sum(", SUFFIX + "x", None, id="different-suffix"),
    pytest.param("file:///b.py", PREFIX + "s", SUFFIX, None, id="different-uri"),
    pytest.param(URI, "# edited\n" + PREFIX + "s", SUFFIX, None, id="edit-before-the-spot"),
]


@pytest.mark.parametrize(("uri", "prefix", "suffix", "expected"), LOOKUPS)
def test_lookup_table(uri, prefix, suffix, expected):
    cache = TypeThroughCache()
    cache.store(URI, PREFIX, SUFFIX, SUGGESTION)
    assert cache.lookup(uri, prefix, suffix) == expected


def test_typing_then_deleting_within_the_suggestion():
    cache = TypeThroughCache()
    cache.store(URI, PREFIX, SUFFIX, SUGGESTION)
    assert cache.lookup(URI, PREFIX + "sum", SUFFIX) == "(xs)"
    assert cache.lookup(URI, PREFIX + "su", SUFFIX) == "m(xs)"  # backspace: still matches
    assert cache.lookup(URI, PREFIX, SUFFIX) == "sum(xs)"


def test_multiline_suggestion_typed_through_newline():
    cache = TypeThroughCache()
    cache.store(URI, "def f():", "", "\n    return 1")
    assert cache.lookup(URI, "def f():\n    ", "") == "return 1"


def test_newest_spot_wins_when_two_match():
    cache = TypeThroughCache()
    cache.store(URI, PREFIX, SUFFIX, "sum(xs)")
    cache.store(URI, PREFIX + "s", SUFFIX, "orted(xs)[0]")
    assert cache.lookup(URI, PREFIX + "so", SUFFIX) == "rted(xs)[0]"
    assert cache.lookup(URI, PREFIX + "su", SUFFIX) == "m(xs)"


def test_capacity_evicts_least_recently_used():
    cache = TypeThroughCache(capacity=2)
    cache.store(URI, "a = ", "", "one()")
    cache.store(URI, "b = ", "", "two()")
    assert cache.lookup(URI, "a = o", "") == "ne()"  # touch a: b is now the oldest
    cache.store(URI, "c = ", "", "three()")
    assert len(cache) == 2
    assert cache.lookup(URI, "b = t", "") is None
    assert cache.lookup(URI, "a = o", "") == "ne()"
    assert cache.lookup(URI, "c = t", "") == "hree()"


def test_invalidate_drops_only_that_uri():
    cache = TypeThroughCache()
    cache.store(URI, PREFIX, SUFFIX, SUGGESTION)
    cache.store("file:///b.py", PREFIX, SUFFIX, "len(xs)")
    cache.invalidate(URI)
    assert cache.lookup(URI, PREFIX + "s", SUFFIX) is None
    assert cache.lookup("file:///b.py", PREFIX + "l", SUFFIX) == "en(xs)"


def test_key_is_a_bounded_window_that_survives_a_sliding_caller_window():
    """The caller sends the last 4000 characters; after typing, its window has moved."""
    document = "".join(f"line_{i} = {i}\n" for i in range(2000))  # ~28k characters
    cache = TypeThroughCache()
    window = 4000
    cache.store(URI, document[-window:], "", "print(line_1)")
    typed = document + "print("
    assert cache.lookup(URI, typed[-window:], "") == "line_1)"
    # an edit inside the keyed window (the last PREFIX_KEY_CHARS before the cursor) misses
    edited = document[:-100] + "#" + document[-99:] + "print("
    assert cache.lookup(URI, edited[-window:], "") is None
    # an edit outside it does not
    far = (
        document[: -(PREFIX_KEY_CHARS + 50)] + "#" + document[-(PREFIX_KEY_CHARS + 49) :] + "print("
    )
    assert cache.lookup(URI, far[-window:], "") == "line_1)"


def test_entries_do_not_hold_documents():
    big = "x" * 1_000_000
    cache = TypeThroughCache()
    cache.store(URI, big, big, "y = 1")
    key = next(iter(cache._entries))
    assert len(key.prefix_digest) == len(key.suffix_digest) == 16


def test_empty_suggestion_not_stored_and_capacity_validated():
    cache = TypeThroughCache()
    cache.store(URI, PREFIX, SUFFIX, "")
    assert len(cache) == 0
    with pytest.raises(ValueError):
        TypeThroughCache(capacity=0)


def test_periodic_text_finds_the_right_typed_length():
    """In repetitive code the stored prefix's tail occurs at several places of the new one."""
    cache = TypeThroughCache()
    prefix = "x = 1\n" * 10
    cache.store(URI, prefix, "", "x = 1\nx = 1\ny = 2")
    assert cache.lookup(URI, prefix + "x = 1\n", "") == "x = 1\ny = 2"
    assert cache.lookup(URI, prefix + "x = 1\nx = 1\n", "") == "y = 2"
    assert cache.lookup(URI, prefix + "x = 1\nx = 1\nx", "") is None


def test_start_of_document():
    cache = TypeThroughCache()
    cache.store(URI, "", "", "import os")
    assert cache.lookup(URI, "imp", "") == "ort os"
    assert cache.lookup(URI, "", "") == "import os"
    assert cache.lookup(URI, "x", "") is None


@pytest.mark.parametrize(
    ("typed", "suffix", "expected"),
    [
        ("sum(", ")" + SUFFIX, "xs"),  # the editor auto-closed the typed "("
        ("sum(", "]" + SUFFIX, None),  # a closer the suggestion does not end with
        ("sum(xs", ")" + SUFFIX, None),  # only the closer itself would be left
        ("", ")" + SUFFIX, None),  # no opener typed: not an auto-inserted closer
    ],
)
def test_auto_inserted_closer_after_typed_opener(typed, suffix, expected):
    cache = TypeThroughCache()
    cache.store(URI, PREFIX, SUFFIX, SUGGESTION)
    assert cache.lookup(URI, PREFIX + typed, suffix) == expected


def test_alternatives_are_kept_and_served_while_they_match():
    """n-best items survive a repeat request (VS Code asks again on Alt+]) and typing:
    the ones that start with what was typed are served, best first."""
    cache = TypeThroughCache()
    cache.store("u", "x = ", "\n", "foo(a)", ("bar(b)", "foo(c)", "foo(a)", ""))
    assert cache.lookup_all("u", "x = ", "\n") == ["foo(a)", "bar(b)", "foo(c)"]
    assert cache.lookup_all("u", "x = fo", "\n") == ["o(a)", "o(c)"]
    assert cache.lookup_all("u", "x = foo(c", "\n") == [")"]  # typing an alternative
    assert cache.lookup_all("u", "x = b", "\n") == ["ar(b)"]
    assert cache.lookup("u", "x = fo", "\n") == "o(a)"
    assert cache.lookup_all("u", "x = q", "\n") == []
