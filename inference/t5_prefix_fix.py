"""Make CTranslate2's one-pass decoder prefix exact for T5 models (a spec rewrite).

Why
---
Decoder-only completion forces the code before the cursor as a decoder prefix. CTranslate2 can
run that prefix through the decoder in one pass (``return_alternatives=True``), 10-24x faster
than feeding it one token per step, but for T5 the result is wrong: in
``src/layers/attention.cc`` (``dot_product_attention``) the T5 relative attention bias is
computed with ``query_offset = with_cache ? key_length - 1 : 0``, and ``with_cache`` is true
whenever a KV cache exists, also for a multi-token query. Every prefix position is then biased
as if it were the last one. The right offset is ``key_length - query_length``; upstream fix and
repro in ``docs/ctranslate2-t5-prefix/``.

What this does
--------------
CTranslate2's *other* relative-position mechanism, Shaw-style ``relative_position_keys``, uses
the right offset (``make_relative_positions``: ``keys_length - queries_length``). It adds
``q_i . R[clip(j - i, -M, M) + M]`` to the attention logit of query i and key j, with one table
``R`` of shape ``[2M + 1, head_dim]`` shared by all heads. T5 adds instead a per-head scalar
``b_h(bucket(i - j))``. The rewrite turns the scalar into a dot product by widening every
decoder self-attention head by H extra dimensions (H = number of heads):

* fused QKV projection: the extra query dims get zero weights and a bias that is 1 in dim h of
  head h and 0 elsewhere (a constant one-hot per head); the extra key and value dims get zero
  weights and zero bias, so ``q . k`` and the attention output are unchanged;
* output projection: zero columns for the extra dims;
* ``R[(j - i) + M]`` holds, in extra dim h, T5's bias of head h for the bucket of distance
  ``i - j`` (0 in the ``d_kv`` content dims). Head h's one-hot query picks exactly ``b_h``;
* ``M = relative_attention_max_distance``: T5's unidirectional bucket is ``num_buckets - 1``
  for every distance >= max_distance, so clipping at M loses nothing (checked in the tests).
  Rows for future keys (j > i) hold bucket 0, as T5 does; the causal mask hides them anyway;
* ``head_dim = d_kv + H`` and ``queries_scale = 1`` (T5 does not scale logits); no
  ``relative_position_values`` (CTranslate2 reads each table only if present).

T5 computes the bias in layer 0 and reuses it in all layers, so every decoder self-attention
layer gets the same table (the saver stores it once). The encoder and the cross-attention are
untouched. All products with the extra dims are exact (x * 0 and 1 * b), so greedy outputs
match Hugging Face token for token.

Cost (decoder self-attention only): Q/K/V/O widths grow by H/d_kv (12/64 = 19% for
codet5p-220m, 6/64 = 9% for the labmodel), and each layer gathers a ``[Q, K, head_dim]`` table
and does one more ``Q x K`` product of the same size as ``q . k``. Measured figures are in
docs/ctranslate2-t5-prefix/README.md.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from ctranslate2.specs import attention_spec, model_spec, transformer_spec


def t5_decoder_buckets(
    distances: torch.Tensor, num_buckets: int, max_distance: int
) -> torch.Tensor:
    """T5's unidirectional (decoder) bucket of each distance ``i - j >= 0``, as Hugging Face
    does it."""
    max_exact = num_buckets // 2
    n = distances.to(torch.long).clamp(min=0)
    large = max_exact + (
        torch.log(n.float() / max_exact)
        / math.log(max_distance / max_exact)
        * (num_buckets - max_exact)
    ).to(torch.long)
    large = torch.minimum(large, torch.full_like(large, num_buckets - 1))
    return torch.where(n < max_exact, n, large)


def relative_position_keys_table(bias: torch.Tensor, max_distance: int, d_kv: int) -> torch.Tensor:
    """Shaw-style key table ``[2M + 1, d_kv + H]`` that reproduces T5's decoder bias.

    ``bias`` is T5's ``relative_attention_bias`` weight, ``[num_buckets, H]``. Row
    ``(j - i) + M`` holds zeros in the ``d_kv`` content dims and ``bias[bucket(i - j), h]`` in
    extra dim h.
    """
    num_buckets, num_heads = bias.shape
    offsets = torch.arange(-max_distance, max_distance + 1)  # j - i, one per row
    buckets = t5_decoder_buckets(-offsets, num_buckets, max_distance)
    table = torch.zeros(2 * max_distance + 1, d_kv + num_heads, dtype=bias.dtype)
    table[:, d_kv:] = bias[buckets]
    return table


def _widen_heads(rows: torch.Tensor, num_heads: int, d_kv: int) -> torch.Tensor:
    """Insert ``num_heads`` zero rows after each head's ``d_kv`` rows (dim 0 is head-major)."""
    per_head = rows.reshape(num_heads, d_kv, *rows.shape[1:])
    extra = torch.zeros(num_heads, num_heads, *rows.shape[1:], dtype=rows.dtype)
    return torch.cat([per_head, extra], dim=1).reshape(
        num_heads * (d_kv + num_heads), *rows.shape[1:]
    )


def _as_tensor(value) -> torch.Tensor:
    """Spec weights are torch tensors from the Transformers loader (numpy arrays, or wrapped in
    ``Variable`` after ``validate``, elsewhere)."""
    if isinstance(value, model_spec.NumpyVariable):
        value = value.array
    elif isinstance(value, model_spec.PyTorchVariable):
        value = value.tensor
    return torch.as_tensor(value).detach()


def rewrite_self_attention(
    old: attention_spec.MultiHeadAttentionSpec, table: torch.Tensor, num_heads: int
) -> attention_spec.MultiHeadAttentionSpec:
    """A decoder self-attention spec computing the same function with ``relative_position_keys``."""
    qkv = _as_tensor(old.linear[0].weight)
    out = _as_tensor(old.linear[1].weight)
    if not (
        isinstance(getattr(old.linear[0], "bias", None), str)
        and isinstance(getattr(old.linear[1], "bias", None), str)
    ):
        raise ValueError("T5 attention projections are expected to have no bias")
    d_kv = qkv.shape[0] // (3 * num_heads)
    head_dim = d_kv + num_heads
    q, k, v = qkv.split(num_heads * d_kv)
    weight = torch.cat([_widen_heads(w, num_heads, d_kv) for w in (q, k, v)])
    q_bias = torch.cat(
        [torch.zeros(num_heads, d_kv, dtype=qkv.dtype), torch.eye(num_heads, dtype=qkv.dtype)],
        dim=1,
    ).reshape(-1)
    bias = torch.cat([q_bias, torch.zeros(2 * num_heads * head_dim, dtype=qkv.dtype)])
    out_weight = _widen_heads(out.t(), num_heads, d_kv).t().contiguous()

    new = attention_spec.MultiHeadAttentionSpec(
        self_attention=True, relative_position=True, head_dim=head_dim
    )
    new.layer_norm = old.layer_norm
    new.linear[0].weight = weight
    new.linear[0].bias = bias
    new.linear[1].weight = out_weight
    new.queries_scale = np.float32(1.0)
    new.relative_position_keys = table.to(qkv.dtype)
    new.relative_position_values = model_spec.OPTIONAL
    return new


def apply_parallel_prefix_fix(spec: transformer_spec.TransformerSpec) -> None:
    """Rewrite, in place, every decoder self-attention of a T5 spec (see the module docstring).

    Call on the spec that ``TransformersConverter`` builds, before ``validate``/``optimize``.
    """
    decoder = spec.decoder
    layers = decoder.layer
    first = layers[0].self_attention
    if not hasattr(first, "relative_attention_bias"):
        raise ValueError(
            "not a T5 decoder spec: layer 0 self-attention has no relative_attention_bias"
        )
    num_heads = int(decoder.num_heads)
    bias = _as_tensor(first.relative_attention_bias)
    max_distance = int(first.relative_attention_max_distance)
    if bias.shape[1] != num_heads:
        raise ValueError(f"relative_attention_bias has {bias.shape[1]} heads, spec has {num_heads}")
    d_kv = _as_tensor(first.linear[0].weight).shape[0] // (3 * num_heads)
    table = relative_position_keys_table(bias, max_distance, d_kv)
    for layer in layers:
        layer.self_attention = rewrite_self_attention(layer.self_attention, table, num_heads)
