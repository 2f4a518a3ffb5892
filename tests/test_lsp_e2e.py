"""`codet5-lsp serve` as a separate process, driven over stdio by a real LSP client."""

from __future__ import annotations

import asyncio
import sys

import pytest
from lsprotocol import types
from pytest_lsp import ClientServerConfig, client_capabilities

SOURCE = '''import os


def read_config(path):
    """Read a config file."""
    with open(path) as handle:
        return handle.read()


def list_files(folder):
    names = []
    for name in os.listdir(folder):
        names.append(os.path.join(folder, name))
    return names


def main():
    files = list_files(os.getcwd())
    for f in files:
        print(
'''


async def _start(args: list[str], env_cache, **init_options):
    config = ClientServerConfig(
        server_command=[sys.executable, "-m", "codet5_lsp.server.cli", "serve", *args],
        server_env=_env(env_cache),
    )
    client = await config.start()
    statuses: list[dict] = []

    @client.feature("codet5/status")
    def on_status(params):  # noqa: ANN001 - raw JSON object
        statuses.append(params if isinstance(params, dict) else params._asdict())

    caps = client_capabilities("visual-studio-code")
    result = await client.initialize_session(types.InitializeParams(
        capabilities=caps, initialization_options=init_options or None))
    return client, result, statuses


def _env(cache):
    import os

    env = dict(os.environ)
    env["XDG_CACHE_HOME"] = str(cache)
    env["XDG_STATE_HOME"] = str(cache)
    return env


async def _wait_for(predicate, timeout=120.0):
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        if predicate():
            return True
        await asyncio.sleep(0.1)
    return False


def _status_of(statuses):
    return statuses[-1]["state"] if statuses else None


async def test_inline_completion_over_stdio(labmodel_float32, tmp_path):
    """initialize, didOpen, inlineCompletion returns the labmodel's completion, shutdown."""
    client, result, statuses = await _start(
        ["--model", str(labmodel_float32.folder), "--device", "cpu", "--compute-type", "float32"],
        tmp_path, debounceMs=0, requestTimeoutMs=120000)
    try:
        caps = result.capabilities
        assert caps.inline_completion_provider is not None
        uri = "file:///tmp/example.py"
        client.text_document_did_open(types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1,
                                                 text=SOURCE)))
        assert await _wait_for(lambda: _status_of(statuses) == "ready"), statuses
        last = SOURCE.splitlines()
        position = types.Position(line=len(last) - 1, character=len(last[-1]))
        reply = await client.text_document_inline_completion_async(types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri), position=position,
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Automatic)))
        items = reply.items if hasattr(reply, "items") else reply
        assert items, "no inline completion item"
        text = items[0].insert_text
        text = text if isinstance(text, str) else text.value
        assert text.strip()
        assert "\n" not in text  # mid-statement: one line
        expected = await asyncio.to_thread(_in_process_completion, labmodel_float32, SOURCE,
                                           position)
        assert text == expected
        # the same suggestion as a textDocument/completion item
        listing = await client.text_document_completion_async(types.CompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri), position=position))
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

    settings = Settings(model=str(files.folder), device="cpu", compute_type="float32",
                        request_timeout_ms=120000)
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
    client, result, statuses = await _start(["--model", str(model), "--device", "cpu"],
                                            tmp_path)
    try:
        assert result.capabilities.inline_completion_provider is not None
        assert await _wait_for(lambda: _status_of(statuses) == "error", 60), statuses
        assert str(model) in statuses[-1]["message"]
        assert any(str(model) in m.message for m in client.messages)
        uri = "file:///tmp/a.py"
        client.text_document_did_open(types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1,
                                                 text="def f(x):\n    return ")))
        reply = await client.text_document_inline_completion_async(types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=1, character=11),
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Invoked)))
        items = reply.items if hasattr(reply, "items") else reply
        assert list(items) == []
    finally:
        await client.shutdown_session()


def test_completion_item_repeats_the_word_being_typed():
    """For clients without inline completion: the item's edit starts at the word under the
    cursor, so the client's filtering keeps it."""
    from codet5_lsp.server.documents import DocumentStore
    from codet5_lsp.server.lsp import completion_item
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
    client, _, statuses = await _start(
        ["--model", str(labmodel_float32.folder), "--device", "cpu", "--compute-type", "float32"],
        tmp_path, debounceMs=0, requestTimeoutMs=120000, summariesEnabled=False)
    try:
        uri = "file:///tmp/long.py"
        text = "".join(f"def f{i}(a, b):\n    x = [a, b, {i}]\n    return g(x, a * b)\n\n"
                       for i in range(3000))
        client.text_document_did_open(types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1,
                                                 text=text)))
        assert await _wait_for(lambda: _status_of(statuses) == "ready"), statuses
        at = types.Position(line=3, character=0)
        client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[types.TextDocumentContentChangePartial(
                range=types.Range(start=at, end=at), text="value = compute(\n")]))
        finished: list[str] = []

        async def code_actions():
            await client.text_document_code_action_async(types.CodeActionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                range=types.Range(start=types.Position(line=9, character=4),
                                  end=types.Position(line=9, character=4)),
                context=types.CodeActionContext(diagnostics=[])))
            finished.append("code actions")

        async def completion():
            await client.text_document_inline_completion_async(types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=types.Position(line=3, character=16),
                context=types.InlineCompletionContext(
                    trigger_kind=types.InlineCompletionTriggerKind.Automatic)))
            finished.append("completion")

        await asyncio.wait_for(asyncio.gather(code_actions(), completion()), 120)
        assert finished == ["completion", "code actions"]
    finally:
        await client.shutdown_session()
