"""`codet5-lsp serve` as a separate process, driven over stdio by a real LSP client."""

from __future__ import annotations

import asyncio

import pytest
from lsprotocol import types

from tests.support.lsp import open_document, start_client, status_of, wait_for
from tests.support.sources import EDITOR_SOURCE

pytestmark = pytest.mark.slow  # server processes


async def test_inline_completion_over_stdio(labmodel_float32, tmp_path):
    """initialize, didOpen, inlineCompletion returns the labmodel's completion, shutdown."""
    client, result, statuses = await start_client(
        ["--model", str(labmodel_float32.folder), "--device", "cpu", "--compute-type", "float32"],
        tmp_path,
        debounceMs=0,
        requestTimeoutMs=120000,
    )
    try:
        caps = result.capabilities
        assert caps.inline_completion_provider is not None
        uri = "file:///tmp/example.py"
        open_document(client, uri, EDITOR_SOURCE)
        assert await wait_for(lambda: status_of(statuses) == "ready"), statuses
        last = EDITOR_SOURCE.splitlines()
        position = types.Position(line=len(last) - 1, character=len(last[-1]))
        reply = await client.text_document_inline_completion_async(
            types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=position,
                context=types.InlineCompletionContext(
                    trigger_kind=types.InlineCompletionTriggerKind.Automatic
                ),
            )
        )
        items = reply.items if hasattr(reply, "items") else reply
        assert items, "no inline completion item"
        text = items[0].insert_text
        text = text if isinstance(text, str) else text.value
        assert text.strip()
        assert "\n" not in text  # mid-statement: one line
        expected = await asyncio.to_thread(
            _in_process_completion, labmodel_float32, EDITOR_SOURCE, position
        )
        assert text == expected
        # the same suggestion as a textDocument/completion item
        listing = await client.text_document_completion_async(
            types.CompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri), position=position
            )
        )
        (item,) = listing.items
        assert item.text_edit.new_text.endswith(text)
    finally:
        await client.shutdown_session()


def _in_process_completion(files, text, position):
    """The same request through the pipeline in this process (the reference for the server)."""
    from codet5_lsp.server.documents import DocumentStore
    from codet5_lsp.server.model_manager import ModelManager
    from codet5_lsp.server.pipeline import CompletionPipeline
    from codet5_lsp.server.settings import Settings

    settings = Settings(
        model=str(files.folder), device="cpu", compute_type="float32", request_timeout_ms=120000
    )
    store = DocumentStore()
    doc = store.open("file:///tmp/example.py", text, "python", 1)
    models = ModelManager(settings)
    models.wait_ready()
    try:
        pipeline = CompletionPipeline(models, settings)
        suggestion = asyncio.run(pipeline.complete(doc, position, debounce=False))
        return suggestion.text if suggestion else None
    finally:
        models.close()


@pytest.mark.parametrize("kind", ["missing", "partial", "corrupt"])
async def test_bad_model_is_reported_and_server_keeps_serving(kind, tmp_path, labmodel_float32):
    import shutil

    model = tmp_path / f"model-{kind}"
    if kind == "partial":
        model.mkdir()
        shutil.copy(labmodel_float32.folder / "config.json", model / "config.json")
        (model / "model.bin").write_bytes(b"")
    elif kind == "corrupt":
        shutil.copytree(labmodel_float32.folder, model)
        (model / "model.bin").write_bytes(b"\x00garbage" * 100)
    client, result, statuses = await start_client(
        ["--model", str(model), "--device", "cpu"], tmp_path
    )
    try:
        assert result.capabilities.inline_completion_provider is not None
        assert await wait_for(lambda: status_of(statuses) == "error", 60), statuses
        assert str(model) in statuses[-1]["message"]
        assert any(str(model) in m.message for m in client.messages)
        uri = "file:///tmp/a.py"
        open_document(client, uri, "def f(x):\n    return ")
        reply = await client.text_document_inline_completion_async(
            types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=types.Position(line=1, character=11),
                context=types.InlineCompletionContext(
                    trigger_kind=types.InlineCompletionTriggerKind.Invoked
                ),
            )
        )
        items = reply.items if hasattr(reply, "items") else reply
        assert list(items) == []
    finally:
        await client.shutdown_session()


def test_completion_item_repeats_the_word_being_typed():
    """For clients without inline completion: the item's edit starts at the word under the
    cursor, so the client's filtering keeps it."""
    from codet5_lsp.server.documents import DocumentStore
    from codet5_lsp.server.handlers.completion import completion_item
    from codet5_lsp.server.pipeline import Suggestion

    doc = DocumentStore(encoding="utf-16").open("file:///t.py", "x = '😀'; ret", "python", 1)
    cursor = types.Position(line=0, character=len("x = '😀'; ret") + 1)  # emoji: 2 units
    item = completion_item(doc, cursor, Suggestion("s1", "urn value", 1.0, 1.0))
    assert item.text_edit.new_text == "return value"
    assert item.filter_text == "return value" and item.label == "return value"
    assert item.text_edit.range.start == types.Position(line=0, character=cursor.character - 3)
    assert item.text_edit.range.end == cursor
    assert item.command.arguments == ["s1"]


async def test_a_long_reparse_does_not_hold_completions(labmodel_float32, tmp_path):
    """After an edit that sends tree-sitter's error recovery through a 12k-line file (seconds
    of parsing), a completion is answered from plain-text context while a request that needs
    the tree (code actions) is still waiting for the parse, which runs in slices."""
    client, _, statuses = await start_client(
        ["--model", str(labmodel_float32.folder), "--device", "cpu", "--compute-type", "float32"],
        tmp_path,
        debounceMs=0,
        requestTimeoutMs=120000,
        summariesEnabled=False,
    )
    try:
        uri = "file:///tmp/long.py"
        text = "".join(
            f"def f{i}(a, b):\n    x = [a, b, {i}]\n    return g(x, a * b)\n\n" for i in range(3000)
        )
        open_document(client, uri, text)
        assert await wait_for(lambda: status_of(statuses) == "ready"), statuses
        at = types.Position(line=3, character=0)
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
                content_changes=[
                    types.TextDocumentContentChangePartial(
                        range=types.Range(start=at, end=at), text="value = compute(\n"
                    )
                ],
            )
        )
        finished: list[str] = []

        async def code_actions():
            await client.text_document_code_action_async(
                types.CodeActionParams(
                    text_document=types.TextDocumentIdentifier(uri=uri),
                    range=types.Range(
                        start=types.Position(line=9, character=4),
                        end=types.Position(line=9, character=4),
                    ),
                    context=types.CodeActionContext(diagnostics=[]),
                )
            )
            finished.append("code actions")

        async def completion():
            await client.text_document_inline_completion_async(
                types.InlineCompletionParams(
                    text_document=types.TextDocumentIdentifier(uri=uri),
                    position=types.Position(line=3, character=16),
                    context=types.InlineCompletionContext(
                        trigger_kind=types.InlineCompletionTriggerKind.Automatic
                    ),
                )
            )
            finished.append("completion")

        await asyncio.wait_for(asyncio.gather(code_actions(), completion()), 120)
        assert finished == ["completion", "code actions"]
    finally:
        await client.shutdown_session()


async def test_healing_and_alternatives_over_stdio(labmodel_float32, tmp_path):
    """After Enter + auto-indent the item starts with code (token healing; off, the labmodel
    suggests a stray space); with `alternatives: 3` one request answers several distinct
    items, the first the same as the single answer."""
    client, _result, statuses = await start_client(
        ["--model", str(labmodel_float32.folder), "--device", "cpu", "--compute-type", "float32"],
        tmp_path,
        debounceMs=0,
        requestTimeoutMs=120000,
    )

    async def items_at(uri: str, text: str, position: types.Position) -> list[str]:
        open_document(client, uri, text)
        reply = await client.text_document_inline_completion_async(
            types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=position,
                context=types.InlineCompletionContext(
                    trigger_kind=types.InlineCompletionTriggerKind.Automatic
                ),
            )
        )
        items = reply.items if hasattr(reply, "items") else reply
        return [
            i.insert_text if isinstance(i.insert_text, str) else i.insert_text.value for i in items
        ]

    def configure(**values) -> None:
        client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(settings={"codet5": values})
        )

    try:
        assert await wait_for(lambda: status_of(statuses) == "ready"), statuses
        after_enter = "def add(a, b):\n    \n"
        at_indent = types.Position(line=1, character=4)
        (healed, *_) = await items_at("file:///tmp/h1.py", after_enter, at_indent)
        assert healed and not healed[0].isspace(), repr(healed)
        configure(tokenHealing=False)
        (plain, *_) = await items_at("file:///tmp/h2.py", after_enter, at_indent)
        # post-processing caps the indent; the unhealed model text is a different suggestion
        assert plain != healed

        configure(tokenHealing=True, alternatives=3)
        source = "import os\n\n\ndef join_all(parts):\n    return os.path.\n"
        at_dot = types.Position(line=4, character=19)
        several = await items_at("file:///tmp/n1.py", source, at_dot)
        assert len(several) >= 2 and len(set(several)) == len(several), several
        configure(alternatives=1)
        single = await items_at("file:///tmp/n2.py", source, at_dot)
        assert single == several[:1]
    finally:
        await client.shutdown_session()


SPECULATION_SOURCE = (
    """def build(settings, ctx, tokenizer, meta):
    request = build_completion_request(
        ctx.prefix, ctx.suffix, tokenizer,
        max_prefix_tokens=settings.max_context_tokens,
"""
    + " " * 8
    + "\n"
)  # after Enter: the auto-indent, nothing typed


async def test_accept_and_enter_are_served_from_the_speculation(labmodel_float32, tmp_path):
    """A line suggestion is shown; the client applies it (didChange), sends the accept command,
    then Enter with auto-indent (didChange). The request at the end of the accepted line and
    the next inline completion are answered by the speculation (no model call:
    codet5.debugStats), and the latter equals what a request on a fresh document with the same
    text produces."""
    client, _result, statuses = await start_client(
        ["--model", str(labmodel_float32.folder), "--device", "cpu", "--compute-type", "float32"],
        tmp_path,
        debounceMs=0,
        requestTimeoutMs=120000,
        summariesEnabled=False,
    )

    async def inline(uri: str, position: types.Position) -> list:
        reply = await client.text_document_inline_completion_async(
            types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=position,
                context=types.InlineCompletionContext(
                    trigger_kind=types.InlineCompletionTriggerKind.Automatic
                ),
            )
        )
        return list(reply.items if hasattr(reply, "items") else reply)

    def insert(uri: str, version: int, at: types.Position, text: str) -> None:
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[
                    types.TextDocumentContentChangePartial(
                        range=types.Range(start=at, end=at), text=text
                    )
                ],
            )
        )

    async def stats() -> dict:
        return await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="codet5.debugStats")
        )

    def text_of(item) -> str:
        return item.insert_text if isinstance(item.insert_text, str) else item.insert_text.value

    try:
        assert await wait_for(lambda: status_of(statuses) == "ready"), statuses
        uri = "file:///tmp/spec.py"
        open_document(client, uri, SPECULATION_SOURCE)
        lines = SPECULATION_SOURCE.split("\n")
        line = len(lines) - 2
        indent = lines[line]
        shown_at = types.Position(line=line, character=len(indent))
        (item, *_) = await inline(uri, shown_at)
        shown = text_of(item)
        assert shown.strip() and "\n" not in shown
        # the speculation runs in the background; let it start (a request waits for it anyway)
        for _ in range(600):
            if (await stats())["speculativeModelCalls"] >= 1:
                break
            await asyncio.sleep(0.1)
        insert(uri, 2, shown_at, shown)  # accept: the editor inserts the item ...
        await client.workspace_execute_command_async(
            types.ExecuteCommandParams(
                command=item.command.command, arguments=item.command.arguments
            )
        )  # ... and says so
        end_of_line = types.Position(line=line, character=len(indent) + len(shown))
        before = await stats()
        assert await inline(uri, end_of_line) == []  # the model ended that line
        insert(uri, 3, end_of_line, "\n" + indent)  # Enter, auto-indent keeps the indentation
        after_enter = types.Position(line=line + 1, character=len(indent))
        items = await inline(uri, after_enter)
        after = await stats()
        assert after["modelCalls"] == before["modelCalls"]  # no model call for it
        assert after["speculationHits"] == before["speculationHits"] + 1
        served = text_of(items[0]) if items else None
        text = (
            SPECULATION_SOURCE[:-1].rsplit("\n", 1)[0]
            + "\n"
            + indent
            + shown
            + "\n"
            + indent
            + "\n"
        )
        fresh_uri = "file:///tmp/fresh.py"  # the same text, opened fresh: a model call
        open_document(client, fresh_uri, text)
        (fresh, *_) = await inline(fresh_uri, after_enter)
        assert (await stats())["modelCalls"] == after["modelCalls"] + 1
        assert served is not None and served == text_of(fresh)
    finally:
        await client.shutdown_session()
