"""Prompt building: pure functions from context text to a `GenerationRequest`.

Each completion mode follows the checkpoints' own conventions (token ids from the CodeT5
tokenizer: <pad>=0 is the decoder start, <s>=1, </s>=2, <extra_id_0>=32099):

| mode      | encoder input                          | decoder                               |
|-----------|----------------------------------------|---------------------------------------|
| decoder   | marker (default `<s></s>`)             | <pad> + code before cursor, continues |
| seq2seq   | <s> code before cursor </s>            | <pad>, generates the continuation     |
| infill    | <s> prefix <extra_id_0> suffix </s>    | <pad> <extra_id_0>, generates middle  |
| causal    | (CodeGen decoder of 2B/6B/16B)         | code before cursor, continues         |
| summary   | function source (template <s> .. </s>) | <pad>, generates the summary          |

The decoder-only marker is configurable because the paper's `[CLM]` token has no id in the
released vocabulary; `<s></s>` (ids [1, 2]) is what the labmodel was trained with.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal, Protocol

from codet5_lsp.inference.generation import GenerationRequest, Mode, Priority
from codet5_lsp.inference.healing import TokenHealer

if TYPE_CHECKING:
    from codet5_lsp.inference.models import ModelMetadata

# Line completions of T5 models come from the decoder-only mode (design card; it is also the
# mode the labmodel and CodeT5+'s CLM pre-training teach). With the parallel-prefix rewrite
# (docs/ctranslate2-t5-prefix/) it is exact and runs the context in one pass; see
# docs/performance.md for the measured speed and quality of all modes.
DEFAULT_T5_MODE: Mode = "decoder"


class Tokenizes(Protocol):
    def tokens(self, text: str) -> list[str]: ...


def keep_last(tokens: list[str], budget: int) -> list[str]:
    """The last `budget` tokens (the text nearest the cursor matters most)."""
    return tokens[-budget:] if budget > 0 else []


def keep_first(tokens: list[str], budget: int) -> list[str]:
    return tokens[:budget] if budget > 0 else []


def marker_tokens(marker: str, tokenizer: Tokenizes) -> list[str]:
    """Encoder input of the decoder-only mode; special tokens in the marker stay special."""
    return tokenizer.tokens(marker)


def build_completion_request(
    mode: Mode,
    prefix: str,
    suffix: str,
    tokenizer: Tokenizes,
    *,
    max_prefix_tokens: int,
    max_suffix_tokens: int,
    max_new_tokens: int,
    bos: str | None = "<s>",
    eos: str = "</s>",
    sentinel: str | None = "<extra_id_0>",
    next_sentinel: str | None = "<extra_id_1>",
    decoder_marker: str = "<s></s>",
    stop_rule: Callable[[str], bool] | None = None,
    healer: TokenHealer | None = None,
    alternatives: int = 1,
) -> GenerationRequest:
    """The request for completing `prefix` (text before the cursor) in `mode`.

    With a `healer`, the code's trailing partial token(s) are backed off and carried as
    `heal_tokens` (the model writes them again; see inference/healing.py), in every mode: at
    the end of the decoder prefix (decoder, causal) or of the encoder's code (seq2seq,
    infill), whose decoder output then starts with them. The token budget for new text grows
    by as many tokens, so the suggestion may be as long as without healing.
    """
    code = keep_last(tokenizer.tokens(prefix), max_prefix_tokens)
    heal: tuple[str, ...] = ()
    if healer is not None:
        plan = healer.plan(code)
        if plan.removed:
            heal = tuple(code[len(plan.kept) :])
            code = plan.kept
            max_new_tokens += len(heal)
    n = max(1, alternatives)
    bos_list = [bos] if bos else []
    if mode == "decoder":
        return GenerationRequest(
            "decoder",
            marker_tokens(decoder_marker, tokenizer),
            code,
            max_new_tokens,
            stop_rule,
            heal_tokens=heal,
            alternatives=n,
        )
    if mode == "seq2seq":
        return GenerationRequest(
            "seq2seq",
            bos_list + code + [eos],
            [],
            max_new_tokens,
            stop_rule,
            heal_tokens=heal,
            alternatives=n,
        )
    if mode == "infill":
        if sentinel is None:
            raise ValueError("infill mode needs a sentinel token (<extra_id_0>) in the vocabulary")
        after = keep_first(tokenizer.tokens(suffix), max_suffix_tokens)
        ends = (next_sentinel,) if next_sentinel else ()
        return GenerationRequest(
            "infill",
            bos_list + code + [sentinel] + after + [eos],
            [sentinel],
            max_new_tokens,
            stop_rule,
            end_tokens=ends,
            heal_tokens=heal,
            alternatives=n,
        )
    if mode == "causal":
        return GenerationRequest(
            "causal", None, code, max_new_tokens, stop_rule, heal_tokens=heal, alternatives=n
        )
    raise ValueError(f"unknown completion mode {mode!r}")


def choose_mode(setting: str, family: str) -> Mode:
    """The completion mode actually served for a model family (`setting`: the
    `completionMode` setting, "auto" or a mode name)."""
    if family == "codegen":
        return "causal"  # the CodeGen decoder of codet5p-2b/6b/16b, through ctranslate2.Generator
    if setting == "auto":
        return DEFAULT_T5_MODE
    return setting  # type: ignore[return-value]


@dataclass(frozen=True)
class CompletionQuery:
    """What the server asks for at a cursor, in text: the engine makes tokens of it
    (`completion_request`), with the special tokens and mode of its own model family.

    - `mode_setting`: "auto" or a mode name (the `completionMode` setting).
    - `heal`: back off the prompt's trailing partial token (inference/healing.py).
    - `decoder_marker`: the encoder input of the decoder-only mode (T5 models).
    """

    prefix: str
    suffix: str
    max_prefix_tokens: int
    max_suffix_tokens: int
    max_new_tokens: int
    mode_setting: str = "auto"
    stop_rule: StopRule | None = None
    heal: bool = False
    alternatives: int = 1
    decoder_marker: str = "<s></s>"


@dataclass(frozen=True)
class SummaryQuery:
    """A function's source (docstring removed) to summarize, and where it queues."""

    source: str
    max_source_tokens: int
    max_new_tokens: int
    priority: int = Priority.HOVER


def completion_request(
    query: CompletionQuery, meta: "ModelMetadata", tokenizer: Tokenizes, healer: TokenHealer | None
) -> GenerationRequest:
    """The request for `query` to a model described by `meta` (its family's mode and special
    tokens); `healer` is used when the query asks for healing."""
    return build_completion_request(
        choose_mode(query.mode_setting, meta.family),
        query.prefix,
        query.suffix,
        tokenizer,
        max_prefix_tokens=query.max_prefix_tokens,
        max_suffix_tokens=query.max_suffix_tokens,
        max_new_tokens=query.max_new_tokens,
        bos=meta.bos_token,
        eos=meta.eos_token,
        sentinel=meta.sentinel_token,
        next_sentinel=meta.next_sentinel_token,
        decoder_marker=query.decoder_marker,
        stop_rule=query.stop_rule,
        healer=healer if query.heal else None,
        alternatives=query.alternatives,
    )


def summary_request(
    query: SummaryQuery, meta: "ModelMetadata", tokenizer: Tokenizes
) -> GenerationRequest:
    """The summary request for `query` with the special tokens of `meta`'s family."""
    request = build_summary_request(
        query.source,
        tokenizer,
        max_source_tokens=query.max_source_tokens,
        max_new_tokens=query.max_new_tokens,
        bos=meta.bos_token,
        eos=meta.eos_token,
    )
    return replace(request, priority=query.priority)


def build_summary_request(
    source: str,
    tokenizer: Tokenizes,
    *,
    max_source_tokens: int,
    max_new_tokens: int,
    bos: str | None = "<s>",
    eos: str = "</s>",
) -> GenerationRequest:
    """Summary of a function: its source (docstring removed by the caller) to the encoder."""
    body = keep_first(tokenizer.tokens(source), max_source_tokens - 2)
    bos_list = [bos] if bos else []
    return GenerationRequest(
        "summary",
        bos_list + body + [eos],
        [],
        max_new_tokens,
        stop_rule=None,
        priority=Priority.BACKGROUND,
    )


@dataclass(frozen=True)
class StopRule:
    """When generation ends early: called with the text generated so far (True: stop).

    Plain data (`kind`, `base_indent`, `line_tokens`) rather than a closure, so a request can
    travel to a remote engine (inference/engine_api.py serialises it as these fields).

    - "line": stop at the first line end; a single-line completion is complete there.
    - "block": stop a multi-line completion once a finished line returns to `base_indent` or
      less. The block started at the cursor has body lines indented deeper than its opener; a
      non-empty line at or left of the opener's indentation means the block has ended.
    - "next_line": stop at the end of the line after the first: a line suggestion and the
      model's next line in one call (speculation's same-call source, server/speculation.py).
      `line_tokens` (> 0) is the first line's own budget: the engine ends a first line that
      has not ended within it exactly where a "line" request with that budget would, so the
      shown line is the same whichever way the next line is computed (engine.py,
      `_first_line_cut`).
    """

    kind: Literal["line", "block", "next_line"]
    base_indent: int = 0
    line_tokens: int = 0

    def __call__(self, generated: str) -> bool:
        if self.kind == "line":
            return "\n" in generated
        if self.kind == "next_line":
            return generated.count("\n") >= 2
        lines = generated.split("\n")
        for line in lines[1:-1]:  # complete lines after the first
            if line.strip() and len(line) - len(line.lstrip()) <= self.base_indent:
                return True
        return False


line_stop_rule = StopRule("line")


def block_stop_rule(base_indent: int) -> StopRule:
    """Stop a multi-line completion once a finished line returns to `base_indent` or less."""
    return StopRule("block", base_indent)


def next_line_stop_rule(line_tokens: int) -> StopRule:
    """Stop at the end of the second line; the first line keeps its own `line_tokens` budget."""
    return StopRule("next_line", line_tokens=line_tokens)
