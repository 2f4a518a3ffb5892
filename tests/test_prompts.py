"""Prompt building follows the checkpoints' conventions (table of cases)."""

from __future__ import annotations

import pytest

from codet5_lsp.inference.engine_api import EngineRequests
from codet5_lsp.inference.prompts import (
    block_stop_rule,
    build_completion_request,
    build_summary_request,
    keep_last,
    line_stop_rule,
)


class CharTokenizer:
    """One token per character; special tokens written literally stay one token."""

    SPECIAL = ("<s>", "</s>", "<extra_id_0>", "<extra_id_1>", "<pad>")

    def tokens(self, text: str) -> list[str]:
        out, i = [], 0
        while i < len(text):
            for special in self.SPECIAL:
                if text.startswith(special, i):
                    out.append(special)
                    i += len(special)
                    break
            else:
                out.append(text[i])
                i += 1
        return out


TOK = CharTokenizer()


@pytest.mark.parametrize(
    "mode, prefix, suffix, encoder, decoder",
    [
        ("decoder", "ab", "", ["<s>", "</s>"], ["a", "b"]),
        ("decoder", "abcdef", "", ["<s>", "</s>"], ["c", "d", "e", "f"]),
        ("seq2seq", "ab", "zz", ["<s>", "a", "b", "</s>"], []),
        (
            "infill",
            "ab",
            "xy",
            ["<s>", "a", "b", "<extra_id_0>", "x", "y", "</s>"],
            ["<extra_id_0>"],
        ),
        (
            "infill",
            "abcdef",
            "uvwxyz",
            ["<s>", "c", "d", "e", "f", "<extra_id_0>", "u", "v", "w", "</s>"],
            ["<extra_id_0>"],
        ),
        ("causal", "abcdef", "", None, ["c", "d", "e", "f"]),
    ],
)
def test_completion_prompts(mode, prefix, suffix, encoder, decoder):
    req = build_completion_request(
        mode, prefix, suffix, TOK, max_prefix_tokens=4, max_suffix_tokens=3, max_new_tokens=8
    )
    assert req.mode == mode
    assert req.encoder_tokens == encoder
    assert req.decoder_prefix == decoder
    assert req.max_new_tokens == 8


def test_infill_stops_at_the_next_sentinel():
    req = build_completion_request(
        "infill", "a", "b", TOK, max_prefix_tokens=4, max_suffix_tokens=4, max_new_tokens=8
    )
    assert req.end_tokens == ("<extra_id_1>",)


def test_decoder_marker_is_configurable():
    req = build_completion_request(
        "decoder",
        "ab",
        "",
        TOK,
        max_prefix_tokens=4,
        max_suffix_tokens=0,
        max_new_tokens=8,
        decoder_marker="</s>",
    )
    assert req.encoder_tokens == ["</s>"]


def test_unknown_mode_is_an_error():
    with pytest.raises(ValueError, match="unknown completion mode"):
        build_completion_request(
            "fim", "a", "", TOK, max_prefix_tokens=4, max_suffix_tokens=0, max_new_tokens=8
        )


def test_summary_prompt_wraps_source_and_is_low_priority():
    req = build_summary_request("defg", TOK, max_source_tokens=4, max_new_tokens=5)
    assert req.encoder_tokens == ["<s>", "d", "e", "</s>"]
    assert req.decoder_prefix == []
    assert req.priority > 0


@pytest.mark.parametrize(
    "tokens, budget, expected",
    [
        (["a", "b", "c"], 2, ["b", "c"]),
        (["a"], 5, ["a"]),
        (["a", "b"], 0, []),
    ],
)
def test_keep_last(tokens, budget, expected):
    assert keep_last(tokens, budget) == expected


@pytest.mark.parametrize(
    "text, stop",
    [
        ("foo", False),
        ("foo(bar)\n", True),
        ("\n", True),
        ("", False),
    ],
)
def test_line_stop_rule(text, stop):
    assert line_stop_rule(text) is stop


@pytest.mark.parametrize(
    "base, text, stop",
    [
        (3, "x = 1\n    y = 2\n", False),  # still inside the body (indent 4 > 3)
        (3, "x = 1\n    y = 2\nz = 3\n", True),  # dedent to 0 ends the block
        (3, "x = 1\n\n    y = 2\n", False),  # blank lines do not end it
        (0, "{\n  a;\n}\n", True),  # closing brace at the opener's level
        (3, "x = 1\n    y", False),  # the last line is unfinished
    ],
)
def test_block_stop_rule(base, text, stop):
    assert block_stop_rule(base)(text) is stop


# -- the seam: the server's text query, the engine's tokens (engine_api.EngineRequests) --------


def _meta(family: str):
    from codet5_lsp.inference.models import ModelMetadata

    if family == "codegen":
        return ModelMetadata(
            "m",
            "codegen",
            "none",
            "4.8.5",
            bos_token=None,
            eos_token="<|endoftext|>",
            pad_token="<|endoftext|>",
            sentinel_token=None,
            next_sentinel_token=None,
        )
    return ModelMetadata("m", "t5", "none", "4.8.5")


class _Engine(EngineRequests):
    """The query side of an engine, as both real engines have it (EngineRequests)."""

    def __init__(self, family: str):
        self.meta, self.tokenizer = _meta(family), TOK
        self.healer = None  # type: ignore[assignment]  # heal=False below: never used


@pytest.mark.parametrize(
    "family, setting, mode, encoder, decoder, ends",
    [
        # T5: "auto" is the decoder-only mode; a mode named in the setting is served as it is
        ("t5", "auto", "decoder", ["<s>", "</s>"], ["c", "d", "e", "f"], ()),
        ("t5", "seq2seq", "seq2seq", ["<s>", "c", "d", "e", "f", "</s>"], [], ()),
        (
            "t5",
            "infill",
            "infill",
            ["<s>", "c", "d", "e", "f", "<extra_id_0>", "x", "y", "</s>"],
            ["<extra_id_0>"],
            ("<extra_id_1>",),
        ),
        # CodeGen: always the causal decoder, whatever the setting, and no T5 special tokens
        ("codegen", "auto", "causal", None, ["c", "d", "e", "f"], ()),
        ("codegen", "infill", "causal", None, ["c", "d", "e", "f"], ()),
    ],
)
def test_a_query_becomes_the_families_own_request(family, setting, mode, encoder, decoder, ends):
    from codet5_lsp.inference.prompts import CompletionQuery

    engine = _Engine(family)
    assert engine.completion_mode(setting) == mode
    query = CompletionQuery(
        "abcdef",
        "xy",
        max_prefix_tokens=4,
        max_suffix_tokens=3,
        max_new_tokens=8,
        mode_setting=setting,
        stop_rule=line_stop_rule,
        alternatives=2,
    )
    req = engine.completion_request(query)
    assert (req.mode, req.encoder_tokens, req.decoder_prefix, req.end_tokens) == (
        mode,
        encoder,
        decoder,
        ends,
    )
    assert req.stop_rule is line_stop_rule and req.alternatives == 2 and req.max_new_tokens == 8
    assert req.priority == 0


def test_summaries_are_for_encoder_decoder_models_at_the_queried_priority():
    from codet5_lsp.inference.generation import Priority
    from codet5_lsp.inference.prompts import SummaryQuery

    t5, codegen = _Engine("t5"), _Engine("codegen")
    assert t5.can_summarize and not codegen.can_summarize
    hover = t5.summary_request(SummaryQuery("defg", max_source_tokens=4, max_new_tokens=5))
    assert hover.encoder_tokens == ["<s>", "d", "e", "</s>"] and hover.max_new_tokens == 5
    assert hover.priority == Priority.HOVER
    background = t5.summary_request(
        SummaryQuery("defg", max_source_tokens=4, max_new_tokens=5, priority=Priority.BACKGROUND)
    )
    assert Priority.is_background(background.priority)
    assert not Priority.is_background(Priority.HOVER)


def test_priorities_travel_as_plain_numbers():
    import json

    from codet5_lsp.inference.engine_api import request_from_json, request_to_json
    from codet5_lsp.inference.generation import GenerationRequest, Priority

    request = GenerationRequest("summary", ["<s>", "</s>"], [], 4, priority=Priority.HOVER)
    wire = json.loads(json.dumps(request_to_json(request)))
    assert wire["priority"] == 5
    assert request_from_json(wire).priority == Priority.HOVER
