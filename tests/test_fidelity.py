"""The engine's tokens equal transformers' greedy `generate` on the same weights (float32)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from transformers import DynamicCache, EncoderDecoderCache

from codet5_lsp.inference.prompts import build_completion_request
from tests.support.sources import real_code_cases

pytestmark = pytest.mark.slow  # the labmodel in transformers as the reference

NEW_TOKENS = 16
CASES = real_code_cases(50, seed=7)


def _reference_tokens(model, engine, request) -> list[str]:
    tok = engine.tokenizer
    ids = lambda tokens: [tok.token_to_id(t) for t in tokens]  # noqa: E731
    with torch.no_grad():
        out = model.generate(
            input_ids=torch.tensor([ids(request.encoder_tokens)]),
            decoder_input_ids=torch.tensor([[0] + ids(request.decoder_prefix)]),
            max_new_tokens=NEW_TOKENS,
            do_sample=False,
            num_beams=1,
            past_key_values=EncoderDecoderCache(DynamicCache(), DynamicCache()),
        )
    new = out[0, 1 + len(request.decoder_prefix) :].tolist()
    return [tok.id_to_token(i) for i in new]


def _strip_eos(tokens: list[str]) -> list[str]:
    return tokens[: tokens.index("</s>")] if "</s>" in tokens else tokens


@pytest.mark.parametrize("mode", ["infill", "decoder"])
def test_engine_matches_transformers_on_real_code(mode, engine, reference):
    assert len(CASES) >= 50
    if mode == "decoder":
        assert engine.meta.parallel_prefix, "decoder mode must use the exact one-pass prefix"
    mismatches = []
    for prefix, _rest, after in CASES:
        request = build_completion_request(
            mode,
            prefix,
            after,
            engine.tokenizer,
            max_prefix_tokens=384,
            max_suffix_tokens=64,
            max_new_tokens=NEW_TOKENS,
        )
        request = dataclasses.replace(request, end_tokens=())
        ours = engine.generate(request).tokens
        theirs = _strip_eos(_reference_tokens(reference, engine, request))
        if _strip_eos(ours) != theirs:
            mismatches.append((prefix[-60:], ours, theirs))
    assert not mismatches, f"{len(mismatches)}/{len(CASES)} differ, first: {mismatches[0]}"
