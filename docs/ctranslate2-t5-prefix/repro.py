"""Minimal reproduction: a T5 decoder prefix run in one pass gives wrong outputs in CTranslate2.

    pip install ctranslate2==4.8.5 torch transformers tokenizers
    python repro.py

Builds a tiny random T5 (no download), converts it with the stock TransformersConverter and
continues the same forced decoder prefix three ways, greedy:

* transformers ``generate`` (reference);
* ``translate_batch(target_prefix=...)``: CTranslate2 feeds the prefix one token per step;
* ``translate_batch(target_prefix=..., return_alternatives=True, num_hypotheses=1)``: the
  prefix goes through the decoder in one pass.

The first two agree; the one-pass output differs, because the decoder's relative attention
bias is computed with ``query_offset = key_length - 1`` for every query of a multi-token pass
(src/layers/attention.cc, ``dot_product_attention``).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import ctranslate2
import torch
import transformers
from ctranslate2.converters import TransformersConverter
from tokenizers import Tokenizer, models
from transformers import PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration
from transformers.cache_utils import DynamicCache, EncoderDecoderCache

VOCAB = 200
SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]
NEW_TOKENS = 12


def build_tiny_t5(folder: Path) -> T5ForConditionalGeneration:
    torch.manual_seed(0)
    config = T5Config(vocab_size=VOCAB, d_model=64, d_kv=16, d_ff=128, num_layers=2,
                      num_decoder_layers=3, num_heads=4, relative_attention_num_buckets=8,
                      relative_attention_max_distance=20, feed_forward_proj="relu",
                      tie_word_embeddings=True, decoder_start_token_id=0, pad_token_id=0,
                      bos_token_id=1, eos_token_id=2, dropout_rate=0.0, initializer_factor=4.0)
    model = T5ForConditionalGeneration(config).eval()
    with torch.no_grad():  # strong position biases make the error visible in greedy tokens
        for name, param in model.named_parameters():
            if "relative_attention_bias" in name:
                param.normal_(0.0, 10.0)
    model.save_pretrained(folder)
    vocab = {tok: i for i, tok in enumerate(SPECIALS)}
    vocab.update({f"t{i}": i for i in range(len(SPECIALS), VOCAB)})
    PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="<unk>")),
        pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>",
    ).save_pretrained(folder)
    return model


def transformers_greedy(model, prefix_ids: list[int]) -> list[int]:
    with torch.no_grad():
        out = model.generate(
            input_ids=torch.tensor([[1, 2]]), decoder_input_ids=torch.tensor([[0, *prefix_ids]]),
            max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False, num_beams=1,
            past_key_values=EncoderDecoderCache(DynamicCache(), DynamicCache()))
    return out[0, 1 + len(prefix_ids):].tolist()


def ct2_greedy(translator, prefix_ids: list[int], one_pass: bool) -> list[int]:
    prefix = [f"t{i}" for i in prefix_ids]
    extra = dict(return_alternatives=True, num_hypotheses=1) if one_pass else {}
    total = len(prefix) + NEW_TOKENS
    result = translator.translate_batch([["<s>", "</s>"]], target_prefix=[prefix], beam_size=1,
                                        max_decoding_length=total, min_decoding_length=total,
                                        **extra)
    return [int(t[1:]) if t.startswith("t") else -1 for t in result[0].hypotheses[0][len(prefix):]]


def main() -> int:
    print(f"ctranslate2 {ctranslate2.__version__}, transformers {transformers.__version__}, "
          f"torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny_t5(Path(tmp) / "hf")
        TransformersConverter(str(Path(tmp) / "hf")).convert(str(Path(tmp) / "ct2"),
                                                             quantization="float32")
        translator = ctranslate2.Translator(str(Path(tmp) / "ct2"), device="cpu")
        generator = torch.Generator().manual_seed(1)
        wrong = 0
        for length in (7, 15, 25, 70):
            prefix_ids = torch.randint(len(SPECIALS), VOCAB, (length,), generator=generator).tolist()
            reference = transformers_greedy(model, prefix_ids)
            step = ct2_greedy(translator, prefix_ids, one_pass=False)
            one_pass = ct2_greedy(translator, prefix_ids, one_pass=True)
            wrong += one_pass != reference
            print(f"\nprefix of {length} tokens")
            print(f"  transformers      {reference}")
            print(f"  ct2 step-by-step  {step}  {'OK' if step == reference else 'DIFFERS'}")
            print(f"  ct2 one pass      {one_pass}  {'OK' if one_pass == reference else 'DIFFERS'}")
    print(f"\none pass differs from transformers for {wrong} of 4 prefixes")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
