"""A tiny random T5, written straight from CTranslate2 specs, to test the installed ctranslate2.

Why: stock CTranslate2 (4.8.5 and earlier) positions T5's relative attention bias wrongly when
a decoder prefix goes through in one pass (docs/ctranslate2-t5-prefix/), so we rewrite T5
decoders at conversion time (`t5_prefix_fix`), which costs 2.5-3x on the prefix pass. A
ctranslate2 build with the one-line upstream patch (or a future release with the fix) makes the
rewrite unnecessary. `engine.native_t5_prefix_is_exact` runs this model both ways (one pass and
one token per step) to find out which kind of build is installed, so a fixed build is used at
full speed without any setting.

The model is built with numpy only (no torch, no transformers): the probe also runs where only
the serving dependencies are installed. Its position biases are large, so that a mis-positioned
bias changes every score.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
from ctranslate2.specs import common_spec, transformer_spec

PROBE_VOCAB = 64
PROBE_SPECIALS = ("<pad>", "</s>", "<unk>")
PROBE_D_MODEL = 32
PROBE_HEADS = 2
PROBE_D_FF = 64
PROBE_BUCKETS = 8
PROBE_MAX_DISTANCE = 12
PROBE_ENCODER_INPUT = ["t3", "</s>"]  # ctranslate2 returns nothing for a bare "</s>"


def probe_tokens(ids: list[int]) -> list[str]:
    return [PROBE_SPECIALS[i] if i < len(PROBE_SPECIALS) else f"t{i}" for i in ids]


def _linear(spec: common_spec.LinearSpec, rng: np.random.Generator, rows: int,
            cols: int) -> None:
    spec.weight = rng.normal(0.0, cols ** -0.5, (rows, cols)).astype(np.float32)


def _norm(spec: common_spec.LayerNormSpec, d_model: int) -> None:
    spec.gamma = np.ones(d_model, dtype=np.float32)


def _attention(spec, rng: np.random.Generator, d_model: int, *, self_attention: bool) -> None:
    spec.queries_scale = np.float32(1.0)  # T5 does not scale attention logits
    if self_attention:
        _linear(spec.linear[0], rng, 3 * d_model, d_model)
        _linear(spec.linear[1], rng, d_model, d_model)
    else:
        _linear(spec.linear[0], rng, d_model, d_model)
        _linear(spec.linear[1], rng, 2 * d_model, d_model)
        _linear(spec.linear[2], rng, d_model, d_model)
    _norm(spec.layer_norm, d_model)


def _stack(stack, rng: np.random.Generator, *, decoder: bool) -> None:
    d = PROBE_D_MODEL
    _norm(stack.layer_norm, d)
    embeddings = stack.embeddings[0] if isinstance(stack.embeddings, list) else stack.embeddings
    embeddings.weight = rng.normal(0.0, 1.0, (PROBE_VOCAB, d)).astype(np.float32)
    stack.scale_embeddings = False
    bias = rng.normal(0.0, 10.0, (PROBE_BUCKETS, PROBE_HEADS)).astype(np.float32)
    for layer in stack.layer:
        _attention(layer.self_attention, rng, d, self_attention=True)
        layer.self_attention.relative_attention_bias = bias  # T5 shares layer 0's table
        layer.self_attention.relative_attention_max_distance = np.int32(PROBE_MAX_DISTANCE)
        if decoder:
            _attention(layer.attention, rng, d, self_attention=False)
        _linear(layer.ffn.linear_0, rng, PROBE_D_FF, d)
        _linear(layer.ffn.linear_1, rng, d, PROBE_D_FF)
        _norm(layer.ffn.layer_norm, d)


def build_probe_model(folder: Path, seed: int = 0,
                      rewrite: Callable[[transformer_spec.TransformerSpec], None] | None = None
                      ) -> Path:
    """Write a random T5 (1 encoder, 2 decoder layers) as a CTranslate2 model into `folder`,
    converted the stock way (T5 relative attention bias), or changed by `rewrite` (tests pass
    `t5_prefix_fix.apply_parallel_prefix_fix` for a model that must pass the probe)."""
    rng = np.random.default_rng(seed)
    spec = transformer_spec.TransformerSpec.from_config(
        (1, 2), PROBE_HEADS, pre_norm=True, activation=common_spec.Activation.RELU,
        relative_attention_bias=True, rms_norm=True)
    _stack(spec.encoder, rng, decoder=False)
    _stack(spec.decoder, rng, decoder=True)
    _linear(spec.decoder.projection, rng, PROBE_VOCAB, PROBE_D_MODEL)
    tokens = probe_tokens(list(range(PROBE_VOCAB)))
    spec.register_source_vocabulary(tokens)
    spec.register_target_vocabulary(tokens)
    spec.config.bos_token = "<pad>"
    spec.config.eos_token = "</s>"
    spec.config.unk_token = "<unk>"
    spec.config.decoder_start_token = "<pad>"
    if rewrite is not None:
        rewrite(spec)
    spec.validate()
    spec.optimize(quantization=None)
    folder.mkdir(parents=True, exist_ok=True)
    spec.save(str(folder))
    return folder
