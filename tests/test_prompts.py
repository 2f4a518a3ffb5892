"""Prompt building follows the checkpoints' conventions (table of cases)."""

from __future__ import annotations

import pytest

from codet5_lsp.inference.prompts import (block_stop_rule, build_completion_request,
                                          build_summary_request, keep_last, line_stop_rule)


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


@pytest.mark.parametrize("mode, prefix, suffix, encoder, decoder", [
    ("decoder", "ab", "", ["<s>", "</s>"], ["a", "b"]),
    ("decoder", "abcdef", "", ["<s>", "</s>"], ["c", "d", "e", "f"]),
    ("seq2seq", "ab", "zz", ["<s>", "a", "b", "</s>"], []),
    ("infill", "ab", "xy", ["<s>", "a", "b", "<extra_id_0>", "x", "y", "</s>"], ["<extra_id_0>"]),
    ("infill", "abcdef", "uvwxyz", ["<s>", "c", "d", "e", "f", "<extra_id_0>", "u", "v", "w",
                                    "</s>"], ["<extra_id_0>"]),
    ("causal", "abcdef", "", None, ["c", "d", "e", "f"]),
])
def test_completion_prompts(mode, prefix, suffix, encoder, decoder):
    req = build_completion_request(mode, prefix, suffix, TOK, max_prefix_tokens=4,
                                   max_suffix_tokens=3, max_new_tokens=8)
    assert req.mode == mode
    assert req.encoder_tokens == encoder
    assert req.decoder_prefix == decoder
    assert req.max_new_tokens == 8


def test_infill_stops_at_the_next_sentinel():
    req = build_completion_request("infill", "a", "b", TOK, max_prefix_tokens=4,
                                   max_suffix_tokens=4, max_new_tokens=8)
    assert req.end_tokens == ("<extra_id_1>",)


def test_decoder_marker_is_configurable():
    req = build_completion_request("decoder", "ab", "", TOK, max_prefix_tokens=4,
                                   max_suffix_tokens=0, max_new_tokens=8,
                                   decoder_marker="</s>")
    assert req.encoder_tokens == ["</s>"]


def test_unknown_mode_is_an_error():
    with pytest.raises(ValueError, match="unknown completion mode"):
        build_completion_request("fim", "a", "", TOK, max_prefix_tokens=4,
                                 max_suffix_tokens=0, max_new_tokens=8)


def test_summary_prompt_wraps_source_and_is_low_priority():
    req = build_summary_request("defg", TOK, max_source_tokens=4, max_new_tokens=5)
    assert req.encoder_tokens == ["<s>", "d", "e", "</s>"]
    assert req.decoder_prefix == []
    assert req.priority > 0


@pytest.mark.parametrize("tokens, budget, expected", [
    (["a", "b", "c"], 2, ["b", "c"]), (["a"], 5, ["a"]), (["a", "b"], 0, []),
])
def test_keep_last(tokens, budget, expected):
    assert keep_last(tokens, budget) == expected


@pytest.mark.parametrize("text, stop", [
    ("foo", False), ("foo(bar)\n", True), ("\n", True), ("", False),
])
def test_line_stop_rule(text, stop):
    assert line_stop_rule(text) is stop


@pytest.mark.parametrize("base, text, stop", [
    (3, "x = 1\n    y = 2\n", False),          # still inside the body (indent 4 > 3)
    (3, "x = 1\n    y = 2\nz = 3\n", True),    # dedent to 0 ends the block
    (3, "x = 1\n\n    y = 2\n", False),        # blank lines do not end it
    (0, "{\n  a;\n}\n", True),                 # closing brace at the opener's level
    (3, "x = 1\n    y", False),                # the last line is unfinished
])
def test_block_stop_rule(base, text, stop):
    assert block_stop_rule(base)(text) is stop
