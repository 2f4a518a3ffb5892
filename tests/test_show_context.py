"""codet5.showContext: what the model sees, over LSP, on the command line, and as a pure
function."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from codet5_lsp.inference.prompts import build_completion_request
from codet5_lsp.inference.tokenizer import CodeTokenizer
from codet5_lsp.server.context import build_completion_context
from codet5_lsp.server.documents import DocumentStore
from codet5_lsp.server.show_context import (
    ShowContextError,
    format_parts,
    parse_arguments,
    shown_parts,
)
from tests.support.lsp import open_document, start_client, status_of, wait_for
from tests.support.sources import WORD_AT_CURSOR_SOURCE

SHAPES = """class Box:
    def __init__(self, width, height):
        self.width = width
        self.height = height

    def area(self):
        return self.width * self.height

    def scaled(self, factor):
        return Box(self.width * factor, self.height * factor)
"""

MAIN = (
    """import math

from shapes import Box


def total_area(boxes):
    return sum(box.area() for box in boxes)


def largest(boxes):
    return max(boxes, key=lambda box: box.area())


def grow(boxes, factor):
    return [box.scaled(factor) for box in boxes]


def shrink(boxes, factor):
    return [box.scaled(1 / factor) for box in boxes if box.area() > factor]


def build(count):
    boxes = []
"""
    + "".join(f"    step_{i} = math.floor({i} * 1.5)\n" for i in range(90))
    + """\
    for i in range(count):
        boxes.append(Box(i, i))
    first = boxes[0]
    return first."""
)
MAIN_END = types.Position(line=MAIN.count("\n"), character=len("    return first."))
TAIL = "\n\n\nprint(build(3))\n"  # after the cursor: the infill prompt shows it


@pytest.fixture(scope="module")
def tokenizer(labmodel_float32):
    return CodeTokenizer(labmodel_float32.folder / "tokenizer.json")


def _documents():
    store = DocumentStore()
    main = store.open("file:///w/main.py", MAIN + TAIL, "python", 1)
    shapes = store.open("file:///w/shapes.py", SHAPES, "python", 1)
    return main, shapes


@pytest.mark.parametrize("mode", ["decoder", "infill"])
def test_shown_parts_are_the_request_decoded_and_split_by_kind(tokenizer, mode):
    main, shapes = _documents()
    suffix_budget = 128 if mode == "infill" else 0
    ctx = build_completion_context(main, MAIN_END, tokenizer.count, 384, suffix_budget, [shapes])
    request = build_completion_request(
        mode,
        ctx.prefix,
        ctx.suffix,
        tokenizer,
        max_prefix_tokens=384,
        max_suffix_tokens=suffix_budget,
        max_new_tokens=8,
    )
    parts = shown_parts(ctx, request.encoder_tokens, request.decoder_prefix, tokenizer)
    kinds = [p["kind"] for p in parts]
    prefix_kinds = [k for k, t in ctx.prefix_parts if t]
    assert prefix_kinds[-1] == "cursor_window" and len(prefix_kinds) > 1
    if mode == "decoder":  # encoder: the marker <s></s>, special tokens only: not shown
        assert kinds == prefix_kinds and "after_cursor" in kinds  # the suffix is not shown
        assert sum(p["tokens"] for p in parts) == len(request.decoder_prefix)
    else:  # <s> prefix <extra_id_0> suffix </s>; decoder <extra_id_0>: nothing to show
        assert kinds == prefix_kinds + ["suffix"] and kinds[0] == "other_files"
        assert sum(p["tokens"] for p in parts) == len(request.encoder_tokens) - 3
        assert parts[-1]["text"] == ctx.suffix == TAIL
        assert "# w/shapes.py\nclass Box:\n" in parts[0]["text"]
    assert "".join(p["text"] for p in parts if p["kind"] != "suffix") == ctx.prefix
    assert all(p["tokens"] > 0 for p in parts)
    assert format_parts(parts).startswith(f"----- {kinds[0]} ({parts[0]['tokens']} tokens) -----\n")


def test_shown_parts_follow_a_request_that_kept_only_the_last_tokens(tokenizer):
    """If the prompt builder cuts the prefix (or heals its last token), the parts show what is
    left, not what the context step produced."""
    main, shapes = _documents()
    ctx = build_completion_context(main, MAIN_END, tokenizer.count, 384, 0, [shapes])
    request = build_completion_request(
        "decoder",
        ctx.prefix,
        "",
        tokenizer,
        max_prefix_tokens=40,
        max_suffix_tokens=0,
        max_new_tokens=8,
    )
    parts = shown_parts(ctx, request.encoder_tokens, request.decoder_prefix, tokenizer)
    assert [p["kind"] for p in parts] == ["cursor_window"]
    assert parts[0]["tokens"] == 40 and ctx.prefix.endswith(parts[0]["text"])


def test_a_healed_tail_is_shown_last(tokenizer):
    """Token healing backs the typed end of the prompt off; the model must write it first."""
    main, shapes = _documents()
    ctx = build_completion_context(main, MAIN_END, tokenizer.count, 384, 0, [shapes])
    tokens = tokenizer.tokens(ctx.prefix)
    parts = shown_parts(ctx, ["<s>", "</s>"], tokens[:-1], tokenizer, tuple(tokens[-1:]))
    assert parts[-1] == {
        "kind": "healed",
        "tokens": 1,
        "text": tokenizer.decode_tokens(tokens[-1:]),
    }
    assert "".join(p["text"] for p in parts) == ctx.prefix


@pytest.mark.parametrize(
    "args,problem",
    [
        ([], "expects"),
        ([{"uri": 3, "position": {"line": 0, "character": 0}}], "expects"),
        ([{"uri": "file:///a.py"}], "position must be"),
        ([{"uri": "file:///a.py", "position": {"line": -1, "character": 0}}], "non-negative"),
        ([{"uri": "file:///a.py", "position": {"line": 0, "character": "2"}}], "non-negative"),
        ([{"uri": "file:///a.py", "position": {"line": True, "character": 0}}], "non-negative"),
    ],
)
def test_bad_show_context_arguments_are_named(args, problem):
    with pytest.raises(ShowContextError, match=problem):
        parse_arguments(args)


def test_show_context_arguments_as_pygls_passes_them():
    arguments = [{"uri": "file:///a.py", "position": {"line": 3, "character": 7}}]
    assert parse_arguments(arguments) == ("file:///a.py", 3, 7)
    assert parse_arguments((arguments,)) == ("file:///a.py", 3, 7)


async def test_completions_get_the_other_open_documents(labmodel_int8, monkeypatch):
    """The pipeline hands the workspace's other documents to the context step."""
    from codet5_lsp.server import pipeline as pipeline_module
    from codet5_lsp.server.model_manager import ModelManager
    from codet5_lsp.server.settings import Settings

    seen = []
    real = pipeline_module.build_completion_context

    def spy(doc, position, count, prefix_tokens, suffix_tokens, open_documents=()):
        seen.append(list(open_documents))
        return real(doc, position, count, prefix_tokens, suffix_tokens, open_documents)

    monkeypatch.setattr(pipeline_module, "build_completion_context", spy)
    settings = Settings(
        model=str(labmodel_int8.folder),
        device="cpu",
        compute_type="int8",
        request_timeout_ms=120000,
    )
    models = ModelManager(settings)
    models.wait_ready()
    try:
        main, shapes = _documents()
        pipeline = pipeline_module.CompletionPipeline(models, settings)
        await pipeline.complete(main, MAIN_END, debounce=False, open_documents=[shapes])
    finally:
        models.close()
    assert seen == [[shapes]]


# ---- over LSP and on the command line ---------------------------------------------------------
@pytest.mark.slow
async def test_show_context_over_lsp(labmodel_float32, tmp_path, tokenizer):
    client, result, statuses = await start_client(  # infill: the prompt shows the suffix too
        ["--model", str(labmodel_float32.folder), "--device", "cpu", "--compute-type", "float32"],
        tmp_path,
        debounceMs=0,
        requestTimeoutMs=120000,
        completionMode="infill",
        maxContextTokens=384,
    )  # the budget MAIN and SHAPES are sized for (CPU default: 256)
    try:
        assert "codet5.showContext" in result.capabilities.execute_command_provider.commands
        for uri, text in (("file:///w/main.py", MAIN + TAIL), ("file:///w/shapes.py", SHAPES)):
            open_document(client, uri, text)
        assert await wait_for(lambda: status_of(statuses) == "ready"), statuses

        async def show(arguments):
            return await client.workspace_execute_command_async(
                types.ExecuteCommandParams(command="codet5.showContext", arguments=arguments)
            )

        here = {"line": MAIN_END.line, "character": MAIN_END.character}
        reply = await show([{"uri": "file:///w/main.py", "position": here}])
        parts = list(reply["parts"])
        # exactly the request the pipeline builds for this position (prompt_for, the same
        # settings), decoded: another open file's lines first, the suffix last
        assert parts == await asyncio.to_thread(_in_process_parts, labmodel_float32)
        assert parts[0]["kind"] == "other_files" and "def scaled(self, factor)" in parts[0]["text"]
        # token healing may back off the typed end ("healed": the model writes it first)
        healed = parts.pop()["text"] if parts[-1]["kind"] == "healed" else ""
        assert [p["kind"] for p in parts][-2:] == ["cursor_window", "suffix"]
        assert (parts[-2]["text"] + healed).endswith("    first = boxes[0]\n    return first.")
        assert parts[-1]["text"] == TAIL and reply["mode"] == "infill"
        assert sum(p["tokens"] for p in parts[:-1]) <= 384

        for arguments, message in (
            ([{"uri": "file:///w/nope.py", "position": here}], "not open"),
            ([{"uri": "file:///w/main.py"}], "position must be"),
            ([{"uri": "file:///w/main.py", "position": {"line": 999, "character": 0}}], "outside"),
        ):
            with pytest.raises(JsonRpcException, match=message) as caught:
                await show(arguments)
            assert caught.value.code == -32602
        again = await show([{"uri": "file:///w/main.py", "position": here}])  # still serving
        assert again["parts"] == reply["parts"]  # and it left nothing behind that changes it
    finally:
        await client.shutdown_session()


def _in_process_parts(files) -> list[dict]:
    from codet5_lsp.server.model_manager import ModelManager
    from codet5_lsp.server.pipeline import prompt_for
    from codet5_lsp.server.settings import Settings

    settings = Settings(
        model=str(files.folder),
        device="cpu",
        compute_type="float32",
        completion_mode="infill",
        max_context_tokens=384,
    )
    models = ModelManager(settings)
    models.wait_ready()
    try:
        engine = models.completion_engine()
        main, shapes = _documents()
        ctx, _, request = prompt_for(main, MAIN_END, engine, settings, [shapes])
        return shown_parts(
            ctx,
            request.encoder_tokens,
            request.decoder_prefix,
            engine.tokenizer,
            request.heal_tokens,
        )
    finally:
        models.close()


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "codet5_lsp.server.cli", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_context_command_prints_the_parts(labmodel_float32, tmp_path, tokenizer):
    (tmp_path / "main.py").write_text(MAIN)
    (tmp_path / "shapes.py").write_text(SHAPES)
    model = [
        "--model",
        str(labmodel_float32.folder),
        "--device",
        "cpu",
        "--compute-type",
        "float32",
    ]
    location = f"{tmp_path / 'main.py'}:{MAIN_END.line + 1}:{MAIN_END.character + 1}"
    done = _cli(
        "context",
        location,
        "--open",
        str(tmp_path / "shapes.py"),
        "--json",
        "--mode",
        "infill",
        *model,
    )
    assert done.returncode == 0, done.stderr
    reply = json.loads(done.stdout)
    parts = reply["parts"]
    assert reply["mode"] == "infill" and parts[0]["kind"] == "other_files"
    assert parts[0]["text"].startswith("# ") and "class Box:" in parts[0]["text"]
    healed = parts.pop()["text"] if parts[-1]["kind"] == "healed" else ""
    assert parts[-1]["kind"] == "cursor_window"  # nothing after the cursor in this file
    assert (parts[-1]["text"] + healed).endswith("    first = boxes[0]\n    return first.")

    plain = _cli("context", location, *model)  # no other file open: nothing from shapes.py
    assert plain.returncode == 0, plain.stderr
    assert "----- cursor_window (" in plain.stdout and "class Box:" not in plain.stdout
    assert plain.stdout.rstrip().endswith("tokens in all -----")

    bad = _cli("context", f"{tmp_path / 'main.py'}:9999:1", *model)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.startswith("codet5-lsp: ") and "ends at line" in bad.stderr
    missing = _cli("context", location, "--open", str(tmp_path / "nope.py"), *model)
    assert missing.returncode == 1 and "cannot read" in missing.stderr


@pytest.mark.slow
def test_context_command_shows_the_line_that_completes_the_word_at_the_cursor(
    labmodel_float32, tmp_path
):
    """`conf` is completed only by a local name 150 lines up: the default budget's window
    cannot reach it, and the context shows the line that uses it."""
    (tmp_path / "finish.py").write_text(WORD_AT_CURSOR_SOURCE)
    lines = WORD_AT_CURSOR_SOURCE.split("\n")
    location = f"{tmp_path / 'finish.py'}:{len(lines)}:{len(lines[-1]) + 1}"
    model = ["--model", str(labmodel_float32.folder), "--device", "cpu"]
    done = _cli("context", location, "--json", "--mode", "decoder", *model)
    assert done.returncode == 0, done.stderr
    parts = {p["kind"]: p["text"] for p in json.loads(done.stdout)["parts"]}
    assert "confirmation_token" not in parts["cursor_window"]
    assert "    return confirmation_token\n" in parts["definitions"]
