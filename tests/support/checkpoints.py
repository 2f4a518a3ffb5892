"""Checkpoints built in tests: tiny random models with a real checkpoint's structure and naming
(no download), and the stand-in labmodel as CTranslate2 files or as a transformers model."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    AutoModelForSeq2SeqLM,
    CodeGenConfig,
    CodeGenForCausalLM,
    PreTrainedTokenizerFast,
    T5Config,
    T5ForConditionalGeneration,
)


def save_word_tokenizer(
    folder: Path, words: list[str], added: tuple[str, ...] | list[str] = (), **special: str
) -> None:
    """A whitespace word-level tokenizer whose ids are the list positions (then ``added``)."""
    tokenizer = Tokenizer(
        models.WordLevel({w: i for i, w in enumerate(words)}, unk_token=special["unk_token"])
    )
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, **special)
    if added:
        fast.add_special_tokens({"additional_special_tokens": list(added)})
    fast.save_pretrained(str(folder))


def randomize(model: torch.nn.Module, seed: int) -> None:
    """Spread-out random weights: logits far from ties, so fp32 kernels agree on every argmax."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            if param.dim() == 1 and ("ln" in name or "norm" in name) and name.endswith("weight"):
                param.copy_(1.0 + 0.2 * noise)
            elif param.dim() == 1:
                param.copy_(0.2 * noise)
            elif any(
                part in name for part in ("wte", "shared", "embed", "relative_attention_bias")
            ):
                param.copy_(noise)
            else:
                param.copy_(noise * (2.0 / param.shape[1]) ** 0.5)


def cut_at_eos(ids: list[int], eos: int) -> list[int]:
    return ids[: ids.index(eos)] if eos in ids else ids


# ---- CodeT5+ 2B/6B/16B layout (a CodeGen decoder under `decoder.`) --------------------

CODEGEN_VOCAB = 256
CODEGEN_EOS = 255
CODEGEN_WORDS = [f"w{i}" for i in range(CODEGEN_VOCAB - 1)] + ["<|endoftext|>"]
# The published layout (docs/checkpoints.md): cross-attention in exactly one block, the last
# (layer_idx == n_layer - 1), no ln_cross_attn; qkv_proj holds k and v (2 * n_embd rows).
CROSS_ATTENTION_TENSORS = {
    "decoder.transformer.h.2.crossattention.q_attn.weight": (64, 64),
    "decoder.transformer.h.2.crossattention.qkv_proj.weight": (128, 64),
    "decoder.transformer.h.2.crossattention.out_proj.weight": (64, 64),
}


def codegen_decoder() -> CodeGenForCausalLM:
    config = CodeGenConfig(
        vocab_size=CODEGEN_VOCAB,
        n_positions=128,
        n_ctx=128,
        n_embd=64,
        n_layer=3,
        n_head=4,
        rotary_dim=8,
        activation_function="gelu_new",
        bos_token_id=CODEGEN_EOS,
        eos_token_id=CODEGEN_EOS,
    )
    model = CodeGenForCausalLM(config).eval()
    randomize(model, seed=3)
    return model


def codet5p_config(decoder: CodeGenConfig) -> dict:
    sub = {
        key: getattr(decoder, key)
        for key in (
            "vocab_size",
            "n_positions",
            "n_ctx",
            "n_embd",
            "n_layer",
            "n_head",
            "rotary_dim",
            "n_inner",
            "activation_function",
            "resid_pdrop",
            "embd_pdrop",
            "attn_pdrop",
            "layer_norm_epsilon",
            "initializer_range",
            "bos_token_id",
            "eos_token_id",
        )
    }
    return {
        "architectures": ["CodeT5pEncoderDecoderModel"],
        "auto_map": {"AutoModelForSeq2SeqLM": "modeling_codet5p.CodeT5pEncoderDecoderModel"},
        "model_type": "codet5p",
        "decoder_start_token_id": CODEGEN_EOS,
        "pad_token_id": CODEGEN_EOS,
        "torch_dtype": "float32",
        "encoder": {**sub, "model_type": "codet5p_module", "n_embd": 32, "n_layer": 1},
        # as published: no head_dim, bos 1 (not CodeGen's), eos <|endoftext|>, pad null
        "decoder": {
            **sub,
            "model_type": "codet5p_module",
            "add_cross_attention": True,
            "is_decoder": True,
            "bos_token_id": 1,
            "pad_token_id": None,
            "architectures": ["CodeT5pForCausalLM"],
        },
    }


def codet5p_tensors(model: CodeGenForCausalLM) -> dict[str, torch.Tensor]:
    """Decoder under ``decoder.``, fake cross-attention, buffers, a small fake encoder."""
    generator = torch.Generator().manual_seed(7)
    tensors = {f"decoder.{k}": v.detach().clone() for k, v in model.state_dict().items()}
    tensors.update(
        {k: torch.randn(s, generator=generator) for k, s in CROSS_ATTENTION_TENSORS.items()}
    )
    for layer in range(model.config.n_layer):  # persistent buffers, as published
        tensors[f"decoder.transformer.h.{layer}.attn.causal_mask"] = torch.ones(
            1, 1, 8, 8, dtype=torch.bool
        )
    tensors["decoder.transformer.h.2.crossattention.causal_mask"] = torch.ones(
        1, 1, 8, 8, dtype=torch.bool
    )
    # the encoder's names have no "transformer." (CodeGen-350M-like, narrower than the decoder)
    tensors["encoder.wte.weight"] = torch.randn(CODEGEN_VOCAB, 32, generator=generator)
    tensors["encoder.h.0.attn.qkv_proj.weight"] = torch.randn(96, 32, generator=generator)
    tensors["encoder.h.0.attn.causal_mask"] = torch.ones(1, 1, 8, 8, dtype=torch.bool)
    tensors["encoder.ln_f.weight"] = torch.ones(32)
    tensors["encoder.ln_f.bias"] = torch.zeros(32)
    tensors["enc_to_dec_proj.weight"] = torch.randn(64, 32, generator=generator)
    return tensors


def save_codet5p(
    folder: Path, model: CodeGenForCausalLM, tensors: dict[str, torch.Tensor], fmt: str
) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(codet5p_config(model.config)))
    (folder / "modeling_codet5p.py").write_text("# remote code, must not be copied\n")
    save_word_tokenizer(
        folder,
        CODEGEN_WORDS,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    names = sorted(tensors)
    # "safetensors-sharded" interleaves tensors over two shards (HF sharding does not)
    if fmt == "safetensors-sharded":
        shards = {
            "model-00001-of-00002.safetensors": names[0::2],
            "model-00002-of-00002.safetensors": names[1::2],
        }
        for shard, shard_names in shards.items():
            save_file(
                {n: tensors[n].contiguous() for n in shard_names},
                str(folder / shard),
                metadata={"format": "pt"},
            )
        weight_map = {n: shard for shard, shard_names in shards.items() for n in shard_names}
        (folder / "model.safetensors.index.json").write_text(
            json.dumps({"metadata": {}, "weight_map": weight_map})
        )
    else:
        torch.save(tensors, folder / "pytorch_model.bin")
    return folder


# ---- CodeT5+ 220m-bimodal layout (a T5 with extra heads) ----------------------------------

T5_WORDS = ["<pad>", "</s>", "<unk>"] + [f"w{i}" for i in range(3, 29)]
ADDED = ["[ENC]", "[TDEC]", "[CDEC]"]  # ids 29, 30, 31 (32100..32102 in the real vocabulary)
T5_VOCAB = len(T5_WORDS) + len(ADDED)
T5_EOS = 1
T5_SHAPE = {
    "d_model": 32,
    "d_kv": 8,
    "d_ff": 64,
    "num_layers": 2,
    "num_decoder_layers": 2,
    "num_heads": 4,
    "relative_attention_num_buckets": 8,
    "relative_attention_max_distance": 16,
    "feed_forward_proj": "relu",
}


def reference_t5(tied: bool) -> T5ForConditionalGeneration:
    config = T5Config(
        vocab_size=T5_VOCAB,
        pad_token_id=0,
        eos_token_id=T5_EOS,
        decoder_start_token_id=0,
        tie_word_embeddings=tied,
        dropout_rate=0.0,
        **T5_SHAPE,
    )
    model = T5ForConditionalGeneration(config)
    if not tied:  # transformers 5 ties in memory regardless; give lm_head its own weight
        model.lm_head = torch.nn.Linear(T5_SHAPE["d_model"], T5_VOCAB, bias=False)
    randomize(model, seed=5 if tied else 6)
    return model.eval()


def save_bimodal(
    folder: Path,
    reference: T5ForConditionalGeneration,
    tied: bool,
    drop: tuple[str, ...] = (),
    lm_head_override: torch.Tensor | None = None,
) -> Path:
    folder.mkdir(parents=True)
    generator = torch.Generator().manual_seed(9)
    tensors = {k: v.detach().clone() for k, v in reference.state_dict().items()}
    tensors.update(
        {
            "proj.weight": torch.randn(16, T5_SHAPE["d_model"], generator=generator),
            "proj.bias": torch.randn(16, generator=generator),
            "itm_head.weight": torch.randn(2, T5_SHAPE["d_model"], generator=generator),
            "itm_head.bias": torch.randn(2, generator=generator),
        }
    )
    if lm_head_override is not None:
        tensors["lm_head.weight"] = lm_head_override
    for name in drop:
        del tensors[name]
    config = {
        "architectures": ["CodeT5pBimodalModel"],
        "model_type": "codet5p_bimodal",
        "auto_map": {"AutoModel": "modeling_codet5p_bimodal.CodeT5pBimodalModel"},
        "embed_dim": 16,
        "vocab_size": T5_VOCAB,
        "pad_token_id": 0,
        "eos_token_id": T5_EOS,
        "bos_token_id": 1,
        "decoder_start_token_id": 0,
        "tie_word_embeddings": tied,
        "dropout_rate": 0.1,
        "layer_norm_epsilon": 1e-6,
        **T5_SHAPE,
    }
    (folder / "config.json").write_text(json.dumps(config))
    save_word_tokenizer(
        folder, T5_WORDS, ADDED, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )
    if tied:  # tied: the real 220m-bimodal ships pytorch_model.bin; no shared/lm_head copies
        torch.save(tensors, folder / "pytorch_model.bin")
    else:
        save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder


# ---- a tiny T5 with strong position biases (the prefix-fix conversion) --------------------

SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]
TINY_VOCAB = 200
TINY_MAX_DISTANCE = 20


def build_tiny_t5(folder: Path) -> T5ForConditionalGeneration:
    """A random T5 with different encoder/decoder depths and strong position biases, plus a
    word-level tokenizer (``t4`` … ``t199``) so the stock converter can read it."""
    torch.manual_seed(0)
    config = T5Config(
        vocab_size=TINY_VOCAB,
        d_model=64,
        d_kv=16,
        d_ff=128,
        num_layers=2,
        num_decoder_layers=3,
        num_heads=4,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=TINY_MAX_DISTANCE,
        feed_forward_proj="relu",
        tie_word_embeddings=True,
        decoder_start_token_id=0,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        dropout_rate=0.0,
        initializer_factor=4.0,
    )
    model = T5ForConditionalGeneration(config).eval()
    with torch.no_grad():  # sharp, position-dependent attention makes an offset error visible
        for name, param in model.named_parameters():
            if "relative_attention_bias" in name:
                param.normal_(0.0, 10.0)
    model.save_pretrained(folder)
    vocab = {tok: i for i, tok in enumerate(SPECIALS)}
    vocab.update({f"t{i}": i for i in range(len(SPECIALS), TINY_VOCAB)})
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="<unk>")),
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
    )
    tokenizer.save_pretrained(folder)
    return model


def tiny_tokens(ids: list[int]) -> list[str]:
    return [SPECIALS[i] if i < len(SPECIALS) else f"t{i}" for i in ids]


# ---- the stand-in labmodel ------------------------------------------------------------------


def convert_labmodel(labmodel: Path, cache: Path, quantization: str):
    """The labmodel converted for the engine, as the server resolves a model (cached in `cache`)."""
    from codet5_lsp.inference.models import resolve_model

    return resolve_model(str(labmodel), quantization=quantization, cache_dir=cache)


def labmodel_reference(labmodel: Path) -> torch.nn.Module:
    """The labmodel in transformers (float32, eval): the reference the engine must equal."""
    model = AutoModelForSeq2SeqLM.from_pretrained(str(labmodel), dtype=torch.float32)
    return model.eval()
