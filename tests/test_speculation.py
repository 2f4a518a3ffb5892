"""Speculation (server/speculation.py): the line after a shown suggestion, computed ahead.

The speculator runs here against a scripted engine whose jobs the test resolves by hand, so
the hypothetical state, the compatibility rule, cancellation, the depth bound and promotion
are checked without timing. The real path (labmodel over LSP) is in tests/test_lsp_e2e.py.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from types import SimpleNamespace

import pytest

from codet5_lsp.inference.generation import GenerationRequest, GenerationResult, Priority
from codet5_lsp.server.documents import DocumentStore
from codet5_lsp.server.languages import new_parser
from codet5_lsp.server.settings import Settings, SettingsError
from codet5_lsp.server.speculation import (
    Speculator,
    Step,
    auto_indent,
    ends_line,
    hypothetical_window,
    relation,
)
from codet5_lsp.server.typethrough import TypeThroughCache

BACKGROUND_PRIORITY = Priority.BACKGROUND
URI = "file:///t.py"
# The cursor is at the end of line 1 ("    x = "), where "compute()" was suggested.
TEXT = "def f():\n    x = \n\nprint(f())\n"
CURSOR = TEXT.index("\n\nprint")
SHOWN = "compute()"


class ScriptedEngine:
    """submit() queues a job; the test starts and answers it (`answer`)."""

    device = "cpu"

    def __init__(self):
        self.jobs: list[tuple[GenerationRequest, threading.Event, Future]] = []

    def submit(self, request, cancel=None):
        future: Future = Future()
        self.jobs.append((request, cancel or threading.Event(), future))
        return future

    def answer(self, index: int, text: str, reason: str = "stop_rule", ms: float = 7.0):
        _request, _cancel, future = self.jobs[index]
        if not future.running():
            future.set_running_or_notify_cancel()
        future.set_result(GenerationResult([], text, reason, ms))


class Harness:
    """A pipeline stand-in: settings, models.completion_engine(), cache."""

    def __init__(self, **settings):
        self.settings = Settings(**settings)
        self.engine = ScriptedEngine()
        self.models = SimpleNamespace(completion_engine=lambda: self.engine)
        self.cache = TypeThroughCache()
        self.prompts: list[tuple[str, int]] = []  # (hypothetical text, cursor offset)
        self.speculator = Speculator(self, self._prompt_for, self._postprocess)

    def _prompt_for(self, doc, position, engine, settings, open_documents=()):
        self.prompts.append((doc.text, doc.offset_at(position)))
        ctx = SimpleNamespace(in_string_or_comment=False, mid_line=False, multiline=False)
        return ctx, "decoder", GenerationRequest("decoder", [], [], 16)

    @staticmethod
    def _postprocess(text, ctx):
        return text.split("\n", 1)[0].rstrip()


def _open(text: str = TEXT):
    store = DocumentStore()
    return store, store.open(URI, text, "python", 1)


def _insert(store, doc, offset: int, text: str) -> None:
    at = doc.position_at(offset)
    store.change(URI, doc.version + 1, [{"range": {"start": at, "end": at}, "text": text}])


async def _settle():
    for _ in range(5):
        await asyncio.sleep(0)


# -- the hypothetical document ------------------------------------------------------------------


def test_fork_with_insert_is_the_edited_document_and_leaves_the_original():
    store, doc = _open()
    assert doc.tree is not None
    fork = doc.fork_with_insert(CURSOR, SHOWN + "\n")
    expected = TEXT[:CURSOR] + SHOWN + "\n" + TEXT[CURSOR:]
    assert fork.text == expected and doc.text == TEXT
    assert fork.position_at(CURSOR + len(SHOWN) + 1).line == 2
    fresh = new_parser("python").parse(expected.encode())
    assert str(fork.tree.root_node) == str(fresh.root_node)
    assert str(doc.tree.root_node) == str(new_parser("python").parse(TEXT.encode()).root_node)
    _insert(store, doc, 0, "# edited\n")  # the original keeps working on its own
    assert fork.text == expected and doc.text.startswith("# edited\n")


# -- the compatibility rule ---------------------------------------------------------------------

H = TEXT[:CURSOR] + SHOWN + "\n"  # the hypothetical text before the hypothetical cursor
STEP = Step(
    len(H), hypothetical_window(TEXT, CURSOR, SHOWN), TEXT[CURSOR : CURSOR + 1000], doc=None
)  # type: ignore[arg-type]
REST = TEXT[CURSOR:]


@pytest.mark.parametrize(
    ("text", "offset", "expected"),
    [
        pytest.param(TEXT, CURSOR, "before", id="shown-not-accepted"),
        pytest.param(TEXT[:CURSOR] + "comp" + REST, CURSOR + 4, "before", id="typing-along"),
        pytest.param(TEXT[:CURSOR] + SHOWN + REST, CURSOR + len(SHOWN), "before", id="accepted"),
        pytest.param(H + REST, len(H), "after", id="accepted-enter"),
        pytest.param(H + "    " + REST, len(H) + 4, "after", id="accepted-enter-indent"),
        pytest.param(H + "    ret" + REST, len(H) + 7, "after", id="typing-the-next-line"),
        pytest.param(TEXT[:CURSOR] + "y" + REST, CURSOR + 1, None, id="typed-something-else"),
        pytest.param(TEXT[:CURSOR] + "compute(1)" + REST, CURSOR + 10, None, id="other-line"),
        pytest.param(H + "    " + "z" + REST, len(H) + 4, None, id="text-after-cursor-changed"),
        pytest.param("#\n" + H + REST, len(H) + 2, None, id="edit-above"),
        pytest.param(TEXT, 3, None, id="cursor-elsewhere"),
    ],
)
def test_relation_table(text, offset, expected):
    assert relation(text, offset, STEP) == expected


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("    x = compute()", "    "),
        ("    if x:", "        "),
        ("print(", "    "),
        ("def f(a,", ""),
        ("\tfor x in y:  ", "\t    "),
        ("return", ""),
    ],
)
def test_auto_indent(line, expected):
    assert auto_indent(line) == expected


@pytest.mark.parametrize(
    ("raw", "final", "reason", "expected"),
    [
        ("compute()\n", "compute()", "stop_rule", True),
        ("compute()  \n    y", "compute()", "stop_rule", True),
        ("compute() compute() compute()\n", "compute()", "stop_rule", False),  # filter cut it
        ("    compute()\n", "compute()", "stop_rule", True),  # indentation capped
        ("compute(", "compute(", "length", False),
        ("compute()", "compute()", "eos", False),
        ("\n", "", "stop_rule", False),
    ],
)
def test_ends_line_only_for_the_models_own_line(raw, final, reason, expected):
    assert ends_line(raw, final, reason) is expected


# -- chains ---------------------------------------------------------------------------------------


async def test_speculates_the_next_line_and_the_cache_serves_it_after_enter():
    h = Harness()
    store, doc = _open()
    h.speculator.after_shown(doc, CURSOR, SHOWN, "s1")
    await _settle()
    # the hypothetical document: accepted, Enter, the editor's auto-indent
    assert h.prompts == [(H + "    " + REST, len(H) + 4)]
    ((request, _cancel, _future),) = h.engine.jobs
    assert request.priority >= BACKGROUND_PRIORITY
    h.engine.answer(0, "return x\n")
    await _settle()
    # accept + Enter + the editor's auto-indent: the answer, with no model call
    _insert(store, doc, CURSOR, SHOWN)
    _insert(store, doc, CURSOR + len(SHOWN), "\n")
    # an editor that does not indent: the indentation to type, then the answer
    assert h.cache.lookup(URI, doc.text[: len(H)], doc.text[len(H) :]) == "    return x"
    _insert(store, doc, len(H), "    ")
    offset = len(H) + 4
    assert h.cache.lookup(URI, doc.text[:offset], doc.text[offset:]) == "return x"
    assert h.speculator.note_served(doc, offset, "return x") is not None
    assert h.speculator.counters()["speculationHits"] == 1
    assert len(h.engine.jobs) == 1


async def test_the_end_of_the_accepted_line_and_a_blank_next_line_need_no_model_call():
    h = Harness()
    store, doc = _open()
    h.speculator.after_shown(doc, CURSOR, SHOWN, "s1")
    await _settle()
    h.engine.answer(0, "\n")  # the model leaves the next line blank
    await _settle()
    assert not h.speculator.answers_nothing(doc, CURSOR)  # shown, not accepted
    _insert(store, doc, CURSOR, SHOWN)
    assert h.speculator.answers_nothing(doc, CURSOR + len(SHOWN))  # the model ended it
    _insert(store, doc, CURSOR + len(SHOWN), "\n")
    assert not h.speculator.answers_nothing(doc, len(H))  # not the request it answered
    _insert(store, doc, len(H), "    ")
    assert h.speculator.answers_nothing(doc, len(H) + 4)
    _insert(store, doc, len(H) + 4, "y")
    assert not h.speculator.answers_nothing(doc, len(H) + 5)


async def test_an_incompatible_request_cancels_the_chain_and_a_compatible_one_keeps_it():
    h = Harness()
    store, doc = _open()
    h.speculator.after_shown(doc, CURSOR, SHOWN, "s1")
    await _settle()
    _request, cancel, _future = h.engine.jobs[0]
    _insert(store, doc, CURSOR, "comp")  # typing along the shown line
    h.speculator.drop_incompatible(doc, CURSOR + 4)
    assert not cancel.is_set() and URI in h.speculator.chains
    _insert(store, doc, CURSOR + 4, "x")  # now off the shown line
    h.speculator.drop_incompatible(doc, CURSOR + 5)
    assert cancel.is_set() and URI not in h.speculator.chains


async def test_one_chain_per_document_and_no_repeat_for_the_same_state():
    h = Harness()
    _store, doc = _open()
    h.speculator.after_shown(doc, CURSOR, SHOWN, "s1")
    await _settle()
    h.speculator.after_shown(doc, CURSOR, SHOWN, "s2")  # the same spot shown again
    await _settle()
    assert len(h.engine.jobs) == 1
    h.speculator.after_shown(doc, CURSOR, "other()", "s3")  # a different suggestion
    await _settle()
    assert len(h.engine.jobs) == 2
    assert h.engine.jobs[0][1].is_set() and not h.engine.jobs[1][1].is_set()
    assert h.prompts[1][0] == TEXT[:CURSOR] + "other()\n    " + REST


@pytest.mark.parametrize("depth", [1, 2])
async def test_depth_bounds_the_lines_computed_ahead(depth):
    h = Harness(speculation_depth=depth)
    _store, doc = _open()
    h.speculator.after_shown(doc, CURSOR, SHOWN, "s1")
    await _settle()
    h.engine.answer(0, "y = x + 1\n")
    await _settle()
    if depth == 2:
        assert len(h.engine.jobs) == 2
        second = H + "    y = x + 1\n    "
        assert h.prompts[1] == (second + REST, len(second))
        h.engine.answer(1, "return y\n")
        await _settle()
    assert len(h.engine.jobs) == depth
    assert len(h.speculator.chains[URI].steps) == depth


async def test_off_switch():
    h = Harness(speculation=False)
    _store, doc = _open()
    h.speculator.after_shown(doc, CURSOR, SHOWN, "s1")
    await _settle()
    assert h.engine.jobs == [] and not h.speculator.chains


async def test_accept_promotes_a_queued_speculation_but_not_a_running_one():
    h = Harness()
    _store, doc = _open()
    h.speculator.after_shown(doc, CURSOR, SHOWN, "s1")
    await _settle()
    assert h.speculator.promote("s1")
    assert h.engine.jobs[0][1].is_set()  # the queued background job is withdrawn ...
    assert h.engine.jobs[1][0].priority < BACKGROUND_PRIORITY  # ... and runs as urgent work
    h.engine.answer(1, "return x\n")
    await _settle()
    assert h.speculator.chains[URI].steps[0].text == "    return x"
    assert not h.speculator.promote("unknown id")

    h2 = Harness()
    _store, doc2 = _open()
    h2.speculator.after_shown(doc2, CURSOR, SHOWN, "s1")
    await _settle()
    h2.engine.jobs[0][2].set_running_or_notify_cancel()  # the engine started it
    h2.speculator.promote("s1")
    assert len(h2.engine.jobs) == 1 and not h2.engine.jobs[0][1].is_set()


async def test_a_request_after_enter_waits_for_the_running_speculation():
    h = Harness()
    store, doc = _open()
    h.speculator.after_shown(doc, CURSOR, SHOWN, "s1")
    await _settle()
    _insert(store, doc, CURSOR, SHOWN + "\n    ")
    waiting = asyncio.ensure_future(h.speculator.wait_for(doc, len(H) + 4, threading.Event(), 30))
    await _settle()
    assert not waiting.done()
    assert h.engine.jobs[-1][0].priority < BACKGROUND_PRIORITY  # promoted while waited for
    h.engine.answer(len(h.engine.jobs) - 1, "return x\n")
    assert await asyncio.wait_for(waiting, 5)
    assert h.cache.lookup(URI, doc.text[: len(H) + 4], doc.text[len(H) + 4 :]) == "return x"
    counters = h.speculator.counters()
    assert counters["speculationWaits"] == 1 and counters["speculativeModelCalls"] == 1


async def test_discarded_speculation_is_counted():
    h = Harness()
    store, doc = _open()
    h.speculator.after_shown(doc, CURSOR, SHOWN, "s1")
    await _settle()
    h.engine.answer(0, "return x\n", ms=40.0)
    await _settle()
    _insert(store, doc, CURSOR, "y")
    h.speculator.drop_incompatible(doc, CURSOR + 1)
    assert h.speculator.counters()["discardedSpeculativeMs"] == 40.0


def test_speculation_depth_setting_is_bounded():
    assert Settings().merged({"speculationDepth": 2}).speculation_depth == 2
    assert Settings().merged({"speculation": False}).speculation is False
    with pytest.raises(SettingsError, match="speculation_depth"):
        Settings().merged({"speculationDepth": 3})
