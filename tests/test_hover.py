"""Hover summaries and the "Insert generated docstring" code action."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
import torch
from lsprotocol import types
from transformers import AutoModelForSeq2SeqLM

from codet5_lsp.inference.prompts import build_summary_request
from codet5_lsp.server.documents import DocumentStore
from codet5_lsp.server.model_manager import ModelManager
from codet5_lsp.server.repetition import cut_repeated_words
from codet5_lsp.server.settings import Settings
from codet5_lsp.server.summaries import MAX_SOURCE_TOKENS, SummaryService, first_sentence
from codet5_lsp.server.syntax import definition_at
from tests.support.lsp import open_document, start_client, status_of, wait_for

CODE = '''import os

TIMEOUT = 30


def join_all(folder, names):
    result = []
    for name in names:
        result.append(os.path.join(folder, name))
    return result


def documented(x):
    """Already documented."""
    return x * 2


class Box:
    def area(self, width, height):
        return width * height
'''


@pytest.fixture(scope="module")
def service(labmodel_float32):
    folder = str(labmodel_float32.folder)
    settings = Settings(model=folder, summary_model=folder, device="cpu", compute_type="float32")
    models = ModelManager(settings)
    assert models.wait_ready(120)
    yield SummaryService(models, settings)
    models.close()


def _doc():
    return DocumentStore().open("file:///tmp/h.py", CODE, "python", 1)


def _pos(line_text: str, column_in_line: int = 0) -> types.Position:
    line = CODE.splitlines().index(line_text)
    return types.Position(line=line, character=column_in_line)


def test_summary_equals_transformers_greedy(service, labmodel_path):
    definition = definition_at(_doc(), _pos("def join_all(folder, names):", 5))
    assert definition is not None and definition.name == "join_all"
    summary = asyncio.run(service.summarize(definition))
    assert summary is not None and not summary.from_cache

    engine = service.models.summary_engine()
    request = build_summary_request(
        definition.source_without_docstring,
        engine.tokenizer,
        max_source_tokens=MAX_SOURCE_TOKENS,
        max_new_tokens=service.settings.summary_max_tokens,
    )
    ids = [engine.tokenizer.token_to_id(t) for t in request.encoder_tokens]
    model = AutoModelForSeq2SeqLM.from_pretrained(str(labmodel_path), dtype=torch.float32).eval()
    with torch.no_grad():
        out = model.generate(
            input_ids=torch.tensor([ids]),
            do_sample=False,
            num_beams=1,
            max_new_tokens=service.settings.summary_max_tokens,
        )
    reference = engine.tokenizer._tok.decode(out[0].tolist(), skip_special_tokens=True)
    # the server shows transformers' greedy sentence through the loop filter (the labmodel
    # loops here: "... of the given list of the given list ...")
    assert summary.text == cut_repeated_words(first_sentence(reference))
    assert summary.text


def test_unchanged_function_is_never_summarized_twice(service):
    definition = definition_at(_doc(), _pos("        return width * height", 10))
    first = asyncio.run(service.summarize(definition))
    calls = service.model_calls
    # the same body elsewhere in an edited file: same hash, served from the cache
    edited = DocumentStore().open("file:///tmp/h2.py", "# new header\n" + CODE, "python", 2)
    moved = definition_at(
        edited, types.Position(line=_pos("        return width * height").line + 1, character=10)
    )
    assert moved.body_hash == definition.body_hash
    second = asyncio.run(service.summarize(moved))
    assert service.model_calls == calls
    assert second.from_cache and second.text == first.text


def test_cache_is_bounded(service):
    from codet5_lsp.server.summaries import SummaryCache

    cache = SummaryCache(capacity=3)
    for i in range(5):
        cache.put("m", str(i), f"s{i}")
    assert len(cache) == 3 and cache.get("m", "0") is None and cache.get("m", "4") == "s4"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Join the names. Then return.", "Join the names."),
        ("Join  the\nnames", "Join the names"),
        ("First paragraph.\n\nSecond.", "First paragraph."),
        ("", ""),
    ],
)
def test_first_sentence(text, expected):
    assert first_sentence(text) == expected


@pytest.mark.slow
async def test_hover_over_lsp(labmodel_float32, tmp_path):
    folder = str(labmodel_float32.folder)
    client, _result, statuses = await start_client(
        ["--model", folder, "--summary-model", folder, "--device", "cpu"],
        tmp_path,
        requestTimeoutMs=120000,
    )
    try:
        uri = "file:///tmp/hover.py"
        open_document(client, uri, CODE)
        assert await wait_for(lambda: status_of(statuses) == "ready"), statuses

        async def hover(position):
            return await client.text_document_hover_async(
                types.HoverParams(
                    text_document=types.TextDocumentIdentifier(uri=uri), position=position
                )
            )

        on_name = await hover(_pos("def join_all(folder, names):", 6))
        assert on_name is not None
        assert on_name.contents.kind == types.MarkupKind.Markdown
        assert "summary by" in on_name.contents.value
        assert on_name.contents.value.split("\n")[0].strip()
        on_body = await hover(_pos("        result.append(os.path.join(folder, name))", 12))
        assert on_body.contents.value == on_name.contents.value
        on_method = await hover(_pos("    def area(self, width, height):", 9))
        assert on_method is not None
        # not a function: no hover, so other servers' hovers show unchanged
        for position in (_pos("import os", 3), _pos("TIMEOUT = 30", 2), _pos("", 0)):
            assert await hover(position) is None
        # unknown document: a clear error, and the server keeps serving
        with pytest.raises(Exception, match="file:///nowhere.py"):
            await client.text_document_hover_async(
                types.HoverParams(
                    text_document=types.TextDocumentIdentifier(uri="file:///nowhere.py"),
                    position=types.Position(line=0, character=0),
                )
            )
        assert await hover(_pos("def join_all(folder, names):", 6)) is not None

        # code action: offered on a function without a docstring, resolved into an edit
        def actions_at(position):
            return client.text_document_code_action_async(
                types.CodeActionParams(
                    text_document=types.TextDocumentIdentifier(uri=uri),
                    range=types.Range(start=position, end=position),
                    context=types.CodeActionContext(diagnostics=[]),
                )
            )

        assert list(await actions_at(_pos("    return x * 2", 6))) == []
        actions = await actions_at(_pos("def join_all(folder, names):", 6))
        assert [a.title for a in actions] == ["Insert generated docstring"]
        resolved = await client.code_action_resolve_async(actions[0])
        (edit,) = resolved.edit.changes[uri]
        body_line = _pos("    result = []").line
        assert edit.range.start == types.Position(line=body_line, character=0)
        assert edit.new_text.startswith('    """') and edit.new_text.endswith('"""\n')
        summary = on_name.contents.value.split("\n")[0].strip().rstrip(".")
        assert summary[1:] in edit.new_text
    finally:
        await client.shutdown_session()


def test_background_neighbour_search_never_parses():
    from codet5_lsp.server.syntax import neighbour_functions

    store = DocumentStore()
    doc = store.open("file:///tmp/h.py", CODE, "python", 1)
    middle = definition_at(doc, _pos("def documented(x):", 5))
    at = types.Position(line=0, character=0)
    store.change(
        doc.uri,
        2,
        [
            types.TextDocumentContentChangePartial(
                range=types.Range(start=at, end=at), text="# edited\n"
            )
        ],
    )
    assert neighbour_functions(doc, middle) == []
    assert not doc.tree_is_current  # it did not parse on the loop behind our back
    doc.parse()
    assert neighbour_functions(doc, middle)


def test_neighbours_of_a_function_are_prefetched_in_the_background(service):
    from codet5_lsp.server.syntax import neighbour_functions

    doc = _doc()
    middle = definition_at(doc, _pos("def documented(x):", 5))
    neighbours = neighbour_functions(doc, middle)
    assert [d.name for d in neighbours] == ["join_all", "area"]
    model = service.models.summary_engine().meta.source

    async def run():
        service.prefetch(neighbours)
        for _ in range(600):
            if all(service.cache.get(model, d.body_hash) for d in neighbours):
                return True
            await asyncio.sleep(0.05)
        return False

    assert asyncio.run(run())


class FakeClock:
    """Seconds that pass only when a test says so (SummaryService's `clock`)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _with_prefetch_delay(service, delay_ms: int, clock: FakeClock) -> SummaryService:
    """A SummaryService on the fixture's models with its own prefetch quiet period, timed by
    `clock`: the test fires the prefetch timer itself (`run_pending_prefetch`) after advancing
    it, so no test waits for the quiet period in real time."""
    return SummaryService(
        service.models,
        dataclasses.replace(service.settings, summary_prefetch_delay_ms=delay_ms),
        clock=clock,
    )


def test_prefetch_waits_until_the_editor_is_quiet(service):
    clock = FakeClock()
    quiet = _with_prefetch_delay(service, 1000, clock)
    asked = []

    async def run():
        quiet.schedule_prefetch(lambda: asked.append("neighbours") or [])
        for _ in range(15):  # 1.5 s of activity, each well inside the 1 s quiet period
            clock.advance(0.1)
            quiet.run_pending_prefetch()  # the timer fires: the editor was not quiet
            quiet.note_activity()
        busy = list(asked)
        clock.advance(1.01)  # then a quiet period passes
        quiet.run_pending_prefetch()
        return busy

    assert asyncio.run(run()) == []  # nothing started while the user was active
    assert asked == ["neighbours"]  # and it ran once things were quiet


def test_a_newer_prefetch_replaces_the_older_one(service):
    clock = FakeClock()
    quiet = _with_prefetch_delay(service, 50, clock)
    asked = []

    async def run():
        quiet.schedule_prefetch(lambda: asked.append("old") or [])
        quiet.schedule_prefetch(lambda: asked.append("new") or [])
        for _ in range(10):  # ten quiet periods, the timer firing after each
            clock.advance(0.05)
            quiet.run_pending_prefetch()

    asyncio.run(run())
    assert asked == ["new"]


def test_prefetch_waits_while_a_completion_or_hover_is_running(service):
    import threading

    from codet5_lsp.inference.prompts import build_completion_request

    engine = service.models.summary_engine()
    clock = FakeClock()
    quiet = _with_prefetch_delay(service, 50, clock)
    release, started = threading.Event(), threading.Event()

    def hold(_text):
        started.set()
        release.wait(10)
        return True

    slow = engine.submit(
        dataclasses.replace(
            build_completion_request(
                "decoder",
                "def f(x):\n    return ",
                "",
                engine.tokenizer,
                max_prefix_tokens=64,
                max_suffix_tokens=0,
                max_new_tokens=4,
            ),
            stop_rule=hold,
        )
    )
    assert started.wait(30)
    asked = []

    async def run():
        quiet.schedule_prefetch(lambda: asked.append("neighbours") or [])
        for _ in range(10):  # ten quiet periods, but a completion is still running
            clock.advance(0.05)
            quiet.run_pending_prefetch()
        during = list(asked)
        release.set()
        await asyncio.wrap_future(slow)  # the engine thread finishes the held completion
        for _ in range(100):  # and counts it done (on that thread, just after)
            if asked:
                break
            clock.advance(0.05)
            quiet.run_pending_prefetch()
            await asyncio.sleep(0.01)
        return during

    assert asyncio.run(run()) == []
    assert asked == ["neighbours"]
    slow.result(30)


async def _hover_at(client, uri, position):
    return await client.text_document_hover_async(
        types.HoverParams(text_document=types.TextDocumentIdentifier(uri=uri), position=position)
    )


@pytest.mark.slow
async def test_a_hover_while_the_summary_model_loads_says_so(
    labmodel_float32, labmodel_path, tmp_path
):
    """A raw checkpoint as summary model: it converts for seconds after the completion model
    is ready; a hover meanwhile is a short note, then the summary; the status item follows."""
    client, _result, statuses = await start_client(
        [
            "--model",
            str(labmodel_float32.folder),
            "--summary-model",
            str(labmodel_path),
            "--device",
            "cpu",
            "--cache-dir",
            str(tmp_path / "cache"),
        ],
        tmp_path,
        requestTimeoutMs=120000,
    )
    try:
        uri = "file:///tmp/hover.py"
        open_document(client, uri, CODE)
        assert await wait_for(lambda: status_of(statuses) == "ready"), statuses
        position = _pos("def join_all(folder, names):", 6)
        early = await _hover_at(client, uri, position)
        assert early is not None, "a silent null while the summary model loads"
        assert early.contents.value == "*codet5-lsp: loading the summary model labmodel…*"
        assert await wait_for(lambda: statuses[-1].get("summaryState") == "ready"), statuses
        assert statuses[-1]["state"] == "ready"
        assert statuses[-1]["summaryModel"] == str(labmodel_path)
        later = await _hover_at(client, uri, position)
        assert "summary by labmodel" in later.contents.value
    finally:
        await client.shutdown_session()


@pytest.mark.slow
async def test_a_summary_model_that_fails_falls_back_visibly(labmodel_float32, tmp_path):
    missing = tmp_path / "no-summary-model"
    folder = labmodel_float32.folder
    client, _result, statuses = await start_client(
        [
            "--model",
            str(folder),
            "--summary-model",
            str(missing),
            "--device",
            "cpu",
            "--compute-type",
            "float32",
        ],
        tmp_path,
        requestTimeoutMs=120000,
    )
    try:
        uri = "file:///tmp/hover.py"
        open_document(client, uri, CODE)
        assert await wait_for(
            lambda: (
                statuses
                and statuses[-1]["state"] == "ready"
                and statuses[-1].get("summaryState") == "fallback"
            )
        ), statuses
        assert str(missing) in statuses[-1]["summaryMessage"]
        hover = await _hover_at(client, uri, _pos("def join_all(folder, names):", 6))
        # written by the completion model (named by its source: the labmodel checkpoint)
        assert "summary by labmodel" in hover.contents.value
    finally:
        await client.shutdown_session()
