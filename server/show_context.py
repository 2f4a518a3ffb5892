"""`codet5.showContext`: what the model sees for a position, as parts by kind.

Why: the context step chooses what goes in front of the cursor window (imports, signatures,
lines of other files...); a user who wonders why a suggestion came out as it did should see
exactly the text the model got. So the parts are not re-derived from the context: they are
decoded from the request the pipeline builds (`pipeline.prompt_for`, the completion path
itself), encoder tokens first, then the decoder prefix, special tokens left out; each piece
of decoded text is then attributed to the context part (kind) it came from.
"""

from __future__ import annotations

from typing import Any, Protocol

from codet5_lsp.server.context import CompletionContext
from codet5_lsp.server.errors import InvalidParamsError
from codet5_lsp.server.retrieval import SUFFIX, WINDOW


class _Tokenizer(Protocol):
    def decode_tokens(self, tokens: list[str]) -> str: ...

    def count(self, text: str) -> int: ...


class ShowContextError(ValueError, InvalidParamsError):
    """Arguments of codet5.showContext that cannot be used (said in the message)."""


def parse_arguments(args: Any) -> tuple[str, int, int]:
    """(uri, line, character) from `[{"uri": ..., "position": {"line", "character"}}]`."""
    first = args[0] if isinstance(args, (list, tuple)) and args else args
    if isinstance(first, (list, tuple)) and first:  # pygls may pass the list as one arg
        first = first[0]
    if not isinstance(first, dict) or not isinstance(first.get("uri"), str):
        raise ShowContextError(
            'codet5.showContext expects [{"uri": ..., "position": {"line": ..., "character": ...}}]'
        )
    position = first.get("position")
    if not isinstance(position, dict):
        raise ShowContextError(
            'codet5.showContext: position must be {"line": ..., "character": ...}'
        )
    line, character = position.get("line"), position.get("character")
    if not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (line, character)
    ):
        raise ShowContextError(
            "codet5.showContext: line and character must be non-negative integers"
        )
    return first["uri"], int(line), int(character)  # type: ignore[arg-type]


def _runs(tokens: list[str], tokenizer: _Tokenizer) -> list[list[str]]:
    """Runs of consecutive tokens that are not special (a special token decodes to '')."""
    runs: list[list[str]] = [[]]
    for token in tokens:
        if tokenizer.decode_tokens([token]) == "" and token:
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append(token)
    return [r for r in runs if r]


def _token_starts(run: list[str], text: str) -> list[int] | None:
    """str offset in `text` where each token of a byte-level BPE run starts (each token
    string has one char per byte), or None when the run is not byte-level."""
    data = text.encode("utf-8", "surrogatepass")
    if sum(len(t) for t in run) != len(data):
        return None
    starts, byte = [], 0
    for token in run:
        starts.append(len(data[:byte].decode("utf-8", "ignore")))
        byte += len(token)
    return starts


def _sections(ctx: CompletionContext) -> list[tuple[str, str]]:
    parts = list(ctx.prefix_parts) or [(WINDOW, ctx.prefix)]
    return [(k, t) for k, t in parts if t]


def _split(
    run_text: str, run: list[str], sections: list[tuple[str, str]], tokenizer: _Tokenizer
) -> list[dict[str, Any]]:
    """Parts of one decoded run that lies inside the text of `sections` joined."""
    whole = "".join(t for _, t in sections)
    at = len(whole) - len(run_text) if whole.endswith(run_text) else whole.find(run_text)
    starts = _token_starts(run, run_text)
    out: list[dict[str, Any]] = []
    offset = 0
    for kind, text in sections:
        lo, hi = max(offset, at), min(offset + len(text), at + len(run_text))
        offset += len(text)
        if lo >= hi:
            continue
        piece = whole[lo:hi]
        if starts is not None:
            tokens = sum(lo - at <= s < hi - at for s in starts)
        else:
            tokens = tokenizer.count(piece)
        out.append({"kind": kind, "tokens": tokens, "text": piece})
    return out


def shown_parts(
    ctx: CompletionContext,
    encoder_tokens: list[str] | None,
    decoder_prefix: list[str],
    tokenizer: _Tokenizer,
    heal_tokens: tuple[str, ...] | list[str] = (),
) -> list[dict[str, Any]]:
    """Everything the model sees, in order: the encoder input, then the decoder prefix, as
    {"kind", "tokens", "text"} parts (special tokens left out). Text from the context's
    prefix is split by its parts' kinds, text from its suffix is "suffix"; anything else
    (a marker that is not special) is "other". With token healing, the typed text the
    request backed off (the model must write it again first) comes last as "healed"."""
    sections = _sections(ctx)
    whole = "".join(t for _, t in sections)
    parts: list[dict[str, Any]] = []
    for tokens in (encoder_tokens or [], decoder_prefix):
        for run in _runs(tokens, tokenizer):
            text = tokenizer.decode_tokens(run)
            if text and text in whole:
                parts.extend(_split(text, run, sections, tokenizer))
            elif text and ctx.suffix and ctx.suffix.startswith(text):
                parts.append({"kind": SUFFIX, "tokens": len(run), "text": text})
            elif text:
                parts.append({"kind": "other", "tokens": len(run), "text": text})
    if heal_tokens:
        parts.append(
            {
                "kind": HEALED,
                "tokens": len(heal_tokens),
                "text": tokenizer.decode_tokens(list(heal_tokens)),
            }
        )
    return parts


HEALED = "healed"


def format_parts(parts: list[dict[str, Any]]) -> str:
    """Plain-text rendering for terminals and editor buffers: a header line per part."""
    out = []
    for part in parts:
        out.append(f"----- {part['kind']} ({part['tokens']} tokens) -----\n")
        out.append(part["text"] if part["text"].endswith("\n") else part["text"] + "\n")
    total = sum(p["tokens"] for p in parts)
    out.append(f"----- {total} tokens in all -----\n")
    return "".join(out)


def file_context(
    settings: Any,
    path: Any,
    text: str,
    line: int,
    character: int,
    open_texts: dict[str, tuple[str, str]],
) -> tuple[list[dict[str, Any]], str]:
    """(parts, mode) for 0-based `line`/`character` of a file (the `codet5-lsp context`
    command): the file and `open_texts` (uri -> (languageId, text): other files taken as
    open in the editor) go into a document store, and the pipeline builds the request, as
    the server would. Raises RuntimeError with the loader's message if the model fails."""
    from lsprotocol import types

    from codet5_lsp.server.documents import DocumentStore
    from codet5_lsp.server.languages import language_id_for_path
    from codet5_lsp.server.model_manager import ModelManager
    from codet5_lsp.server.pipeline import prompt_for

    store = DocumentStore(encoding="utf-32", max_bytes=settings.max_file_bytes)
    doc = store.open(path.resolve().as_uri(), text, language_id_for_path(path), 0)
    others = [
        store.open(uri, other, language, 0)
        for uri, (language, other) in open_texts.items()
        if uri != doc.uri
    ]
    models = ModelManager(settings)
    try:
        models.wait_ready()
        state, error = models.state()
        engine = models.completion_engine()
        if state != "ready" or engine is None:
            raise RuntimeError(str(error or state))
        ctx, mode, request = prompt_for(
            doc, types.Position(line=line, character=character), engine, settings, others
        )
        return shown_parts(
            ctx,
            request.encoder_tokens,
            request.decoder_prefix,
            engine.tokenizer,
            request.heal_tokens,
        ), mode
    finally:
        models.close()
