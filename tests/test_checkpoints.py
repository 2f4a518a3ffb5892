"""Mapping CodeT5+ checkpoints onto standard CodeGen / T5 folders, checked end to end.

Real CodeT5+ weights cannot be downloaded here, so each test builds a tiny random model with the
real checkpoint's structure and naming, saves it in that layout, maps it with
``codet5_lsp.inference.checkpoints`` and checks that CTranslate2 (float32) decodes exactly like
transformers on the original weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import ctranslate2
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    AutoTokenizer,
    CodeGenConfig,
    CodeGenForCausalLM,
    PreTrainedTokenizerFast,
    T5Config,
    T5ForConditionalGeneration,
)

from codet5_lsp.inference.checkpoints import (
    CheckpointLayoutError,
    UnsupportedCheckpointError,
    bimodal_to_t5,
    codegen_parameter_names,
    convert_to_ctranslate2,
    detect_checkpoint_kind,
    extract_codegen_decoder,
    t5_parameter_names,
)

NEW_TOKENS = 10


def _save_word_tokenizer(folder: Path, words: list[str], added: list[str] = (), **special: str) -> None:
    """A whitespace word-level tokenizer whose ids are the list positions (then ``added``)."""
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token=special["unk_token"]))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, **special)
    if added:
        fast.add_special_tokens({"additional_special_tokens": list(added)})
    fast.save_pretrained(str(folder))


def _randomize(model: torch.nn.Module, seed: int) -> None:
    """Spread-out random weights: logits far from ties, so fp32 kernels agree on every argmax."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            if param.dim() == 1 and ("ln" in name or "norm" in name) and name.endswith("weight"):
                param.copy_(1.0 + 0.2 * noise)
            elif param.dim() == 1:
                param.copy_(0.2 * noise)
            elif "wte" in name or "shared" in name or "embed" in name or "relative_attention_bias" in name:
                param.copy_(noise)
            else:
                param.copy_(noise * (2.0 / param.shape[1]) ** 0.5)


def _min_greedy_margin(scores: tuple[torch.Tensor, ...]) -> float:
    top2 = torch.stack([s[0].topk(2).values for s in scores])
    return float((top2[:, 0] - top2[:, 1]).min())


def _cut_at_eos(ids: list[int], eos: int) -> list[int]:
    return ids[: ids.index(eos)] if eos in ids else ids


# --------------------------------------------------------------------------------------------
# detection
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "kind"),
    [
        ({"model_type": "t5", "architectures": ["T5ForConditionalGeneration"]}, "t5"),
        ({"model_type": "codet5p", "architectures": ["CodeT5pEncoderDecoderModel"]}, "codet5p_encoder_decoder"),
        ({"model_type": "codet5p_bimodal", "architectures": ["CodeT5pBimodalModel"]}, "codet5p_bimodal"),
        ({"model_type": "t5", "architectures": ["CodeT5pBimodalModel"]}, "codet5p_bimodal"),
        ({"model_type": "codegen", "architectures": ["CodeGenForCausalLM"]}, "codegen"),
    ],
)
def test_detect_checkpoint_kind(config: dict, kind: str) -> None:
    assert detect_checkpoint_kind(config) == kind


@pytest.mark.parametrize(
    "config",
    [
        {"model_type": "codet5p_embedding", "architectures": ["CodeT5pEmbeddingModel"]},
        {"model_type": "llama", "architectures": ["LlamaForCausalLM"]},
        {"model_type": "t5", "architectures": ["T5EncoderModel"]},
    ],
)
def test_detect_checkpoint_kind_rejects_others_by_name(config: dict) -> None:
    with pytest.raises(UnsupportedCheckpointError, match=config["architectures"][0]):
        detect_checkpoint_kind(config)


# --------------------------------------------------------------------------------------------
# codet5p-2b/6b/16b layout -> CodeGenForCausalLM -> ct2 Generator
# --------------------------------------------------------------------------------------------

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


def _codegen_decoder() -> CodeGenForCausalLM:
    config = CodeGenConfig(
        vocab_size=CODEGEN_VOCAB, n_positions=128, n_ctx=128, n_embd=64, n_layer=3, n_head=4,
        rotary_dim=8, activation_function="gelu_new", bos_token_id=CODEGEN_EOS, eos_token_id=CODEGEN_EOS,
    )
    model = CodeGenForCausalLM(config).eval()
    _randomize(model, seed=3)
    return model


def _codet5p_config(decoder: CodeGenConfig) -> dict:
    sub = {key: getattr(decoder, key) for key in (
        "vocab_size", "n_positions", "n_ctx", "n_embd", "n_layer", "n_head", "rotary_dim", "n_inner",
        "activation_function", "resid_pdrop", "embd_pdrop", "attn_pdrop", "layer_norm_epsilon",
        "initializer_range", "bos_token_id", "eos_token_id")}
    return {
        "architectures": ["CodeT5pEncoderDecoderModel"],
        "auto_map": {"AutoModelForSeq2SeqLM": "modeling_codet5p.CodeT5pEncoderDecoderModel"},
        "model_type": "codet5p",
        "decoder_start_token_id": CODEGEN_EOS,
        "pad_token_id": CODEGEN_EOS,
        "torch_dtype": "float32",
        "encoder": {**sub, "model_type": "codet5p_module", "n_embd": 32, "n_layer": 1},
        # as published: no head_dim, bos 1 (not CodeGen's), eos <|endoftext|>, pad null
        "decoder": {**sub, "model_type": "codet5p_module", "add_cross_attention": True,
                    "is_decoder": True, "bos_token_id": 1, "pad_token_id": None,
                    "architectures": ["CodeT5pForCausalLM"]},
    }


def _codet5p_tensors(model: CodeGenForCausalLM) -> dict[str, torch.Tensor]:
    """Decoder under ``decoder.``, fake cross-attention, buffers, a small fake encoder."""
    generator = torch.Generator().manual_seed(7)
    tensors = {f"decoder.{k}": v.detach().clone() for k, v in model.state_dict().items()}
    tensors.update({k: torch.randn(s, generator=generator) for k, s in CROSS_ATTENTION_TENSORS.items()})
    for layer in range(model.config.n_layer):  # persistent buffers, as published
        tensors[f"decoder.transformer.h.{layer}.attn.causal_mask"] = torch.ones(1, 1, 8, 8, dtype=torch.bool)
    tensors["decoder.transformer.h.2.crossattention.causal_mask"] = torch.ones(1, 1, 8, 8, dtype=torch.bool)
    # the encoder's names have no "transformer." (CodeGen-350M-like, narrower than the decoder)
    tensors["encoder.wte.weight"] = torch.randn(CODEGEN_VOCAB, 32, generator=generator)
    tensors["encoder.h.0.attn.qkv_proj.weight"] = torch.randn(96, 32, generator=generator)
    tensors["encoder.h.0.attn.causal_mask"] = torch.ones(1, 1, 8, 8, dtype=torch.bool)
    tensors["encoder.ln_f.weight"] = torch.ones(32)
    tensors["encoder.ln_f.bias"] = torch.zeros(32)
    tensors["enc_to_dec_proj.weight"] = torch.randn(64, 32, generator=generator)
    return tensors


def _save_codet5p(folder: Path, model: CodeGenForCausalLM, tensors: dict[str, torch.Tensor], fmt: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(_codet5p_config(model.config)))
    (folder / "modeling_codet5p.py").write_text("# remote code, must not be copied\n")
    _save_word_tokenizer(folder, CODEGEN_WORDS, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                         unk_token="<|endoftext|>")
    names = sorted(tensors)
    if fmt == "safetensors-sharded":  # interleave tensors over two shards, like HF sharding does not
        shards = {"model-00001-of-00002.safetensors": names[0::2], "model-00002-of-00002.safetensors": names[1::2]}
        for shard, shard_names in shards.items():
            save_file({n: tensors[n].contiguous() for n in shard_names}, str(folder / shard), metadata={"format": "pt"})
        weight_map = {n: shard for shard, shard_names in shards.items() for n in shard_names}
        (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    else:
        torch.save(tensors, folder / "pytorch_model.bin")
    return folder


@pytest.fixture(scope="module")
def codegen_case(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("codet5p_2b")
    model = _codegen_decoder()
    src = _save_codet5p(root / "codet5p-tiny", model, _codet5p_tensors(model), "safetensors-sharded")
    hf_dir = root / "codegen"
    extract_codegen_decoder(src, hf_dir)
    ct2_dir = convert_to_ctranslate2(hf_dir, root / "codegen-ct2")
    return {"model": model, "src": src, "hf_dir": hf_dir, "ct2_dir": ct2_dir, "root": root}


def test_extracted_decoder_is_exactly_the_codegen_weights(codegen_case: dict) -> None:
    hf_dir: Path = codegen_case["hf_dir"]
    written = load_file(str(hf_dir / "model.safetensors"))
    original = codegen_case["model"].state_dict()
    assert sorted(written) == sorted(codegen_parameter_names(3))
    assert set(codegen_parameter_names(3)) <= set(original)  # names are CodeGen's, buffers aside
    for name, tensor in written.items():
        assert torch.equal(tensor, original[name]), name
    assert not any("cross" in name or "encoder" in name for name in written)
    config = json.loads((hf_dir / "config.json").read_text())
    assert config["model_type"] == "codegen" and config["architectures"] == ["CodeGenForCausalLM"]
    assert (config["n_embd"], config["n_layer"], config["n_head"], config["rotary_dim"]) == (64, 3, 4, 8)
    assert "head_dim" not in config and "add_cross_attention" not in config
    # CodeGen's bos is its eos (<|endoftext|>); the sub-config's bos 1 is not copied
    assert config["bos_token_id"] == config["eos_token_id"] == CODEGEN_EOS
    assert (hf_dir / "tokenizer.json").is_file() and not (hf_dir / "modeling_codet5p.py").exists()
    assert not hf_dir.with_name(hf_dir.name + ".partial").exists()


def test_ct2_generator_greedy_matches_transformers_on_original_weights(codegen_case: dict) -> None:
    model: CodeGenForCausalLM = codegen_case["model"]
    generator = ctranslate2.Generator(str(codegen_case["ct2_dir"]), device="cpu", compute_type="float32")
    vocabulary = json.loads((codegen_case["ct2_dir"] / "vocabulary.json").read_text())
    assert vocabulary[:CODEGEN_VOCAB] == CODEGEN_WORDS
    rng = torch.Generator().manual_seed(11)
    prompts = [torch.randint(0, CODEGEN_VOCAB - 1, (n,), generator=rng).tolist() for n in (1, 2, 3, 5, 8, 13, 21)]

    expected, margins = [], []
    with torch.no_grad():
        for prompt in prompts:
            out = model.generate(
                torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                max_new_tokens=NEW_TOKENS, do_sample=False, eos_token_id=CODEGEN_EOS, pad_token_id=CODEGEN_EOS,
                output_scores=True, return_dict_in_generate=True,
            )
            expected.append(_cut_at_eos(out.sequences[0, len(prompt):].tolist(), CODEGEN_EOS))
            margins.append(_min_greedy_margin(out.scores))
    assert min(margins) > 1e-3, "test weights too close to a tie for a token-exact comparison"

    # One prompt per call: in a batch of unequal prompts, ct2 forwards only the shortest prompt's
    # length at once and force-decodes the rest, which then appears in (and counts against) the result.
    got = []
    for prompt in prompts:
        (result,) = generator.generate_batch(
            [[vocabulary[i] for i in prompt]], max_length=NEW_TOKENS, sampling_topk=1, include_prompt_in_result=False
        )
        got.append(_cut_at_eos(result.sequences_ids[0], CODEGEN_EOS))
    assert got == expected
    assert sum(len(ids) for ids in got) >= 30  # the comparison covered real continuations


def test_bin_checkpoint_and_small_shards_give_the_same_decoder(codegen_case: dict, tmp_path: Path) -> None:
    model: CodeGenForCausalLM = codegen_case["model"]
    src = _save_codet5p(tmp_path / "bin", model, _codet5p_tensors(model), "bin")
    dst = tmp_path / "codegen"
    extract_codegen_decoder(src, dst, max_shard_bytes=40_000)
    index = json.loads((dst / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1 and not (dst / "model.safetensors").exists()
    reloaded = CodeGenForCausalLM.from_pretrained(str(dst)).state_dict()
    for name in codegen_parameter_names(3):
        assert torch.equal(reloaded[name], model.state_dict()[name]), name


def test_missing_decoder_tensor_is_named_and_nothing_is_written(codegen_case: dict, tmp_path: Path) -> None:
    model: CodeGenForCausalLM = codegen_case["model"]
    tensors = _codet5p_tensors(model)
    del tensors["decoder.transformer.h.1.mlp.fc_in.bias"]
    src = _save_codet5p(tmp_path / "broken", model, tensors, "safetensors-sharded")
    with pytest.raises(CheckpointLayoutError, match=r"missing decoder tensors: decoder\.transformer\.h\.1\.mlp\.fc_in\.bias"):
        extract_codegen_decoder(src, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


def test_unknown_decoder_tensor_is_an_error_not_silently_dropped(codegen_case: dict, tmp_path: Path) -> None:
    model: CodeGenForCausalLM = codegen_case["model"]
    tensors = _codet5p_tensors(model)
    tensors["decoder.transformer.h.0.attn.rotary_scale"] = torch.ones(4)
    src = _save_codet5p(tmp_path / "odd", model, tensors, "bin")
    with pytest.raises(CheckpointLayoutError, match=r"unexpected decoder tensors: decoder\.transformer\.h\.0\.attn\.rotary_scale"):
        extract_codegen_decoder(src, tmp_path / "out")


def test_extraction_rejects_a_non_codet5p_folder_and_an_occupied_destination(codegen_case: dict, tmp_path: Path) -> None:
    with pytest.raises(UnsupportedCheckpointError, match="codegen"):
        extract_codegen_decoder(codegen_case["hf_dir"], tmp_path / "out")
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError):
        extract_codegen_decoder(codegen_case["src"], occupied)
    assert (occupied / "keep.txt").read_text() == "x"


# --------------------------------------------------------------------------------------------
# codet5p-220m-bimodal layout -> T5ForConditionalGeneration -> ct2 Translator
# --------------------------------------------------------------------------------------------

T5_WORDS = ["<pad>", "</s>", "<unk>"] + [f"w{i}" for i in range(3, 29)]
ADDED = ["[ENC]", "[TDEC]", "[CDEC]"]  # ids 29, 30, 31 (32100..32102 in the real vocabulary)
T5_VOCAB = len(T5_WORDS) + len(ADDED)
T5_EOS = 1
T5_SHAPE = {"d_model": 32, "d_kv": 8, "d_ff": 64, "num_layers": 2, "num_decoder_layers": 2, "num_heads": 4,
            "relative_attention_num_buckets": 8, "relative_attention_max_distance": 16, "feed_forward_proj": "relu"}


def _reference_t5(tied: bool) -> T5ForConditionalGeneration:
    config = T5Config(vocab_size=T5_VOCAB, pad_token_id=0, eos_token_id=T5_EOS, decoder_start_token_id=0,
                      tie_word_embeddings=tied, dropout_rate=0.0, **T5_SHAPE)
    model = T5ForConditionalGeneration(config)
    if not tied:  # transformers 5 ties in memory regardless; give lm_head its own weight
        model.lm_head = torch.nn.Linear(T5_SHAPE["d_model"], T5_VOCAB, bias=False)
    _randomize(model, seed=5 if tied else 6)
    return model.eval()


def _save_bimodal(folder: Path, reference: T5ForConditionalGeneration, tied: bool,
                  drop: tuple[str, ...] = (), lm_head_override: torch.Tensor | None = None) -> Path:
    folder.mkdir(parents=True)
    generator = torch.Generator().manual_seed(9)
    tensors = {k: v.detach().clone() for k, v in reference.state_dict().items()}
    tensors.update({
        "proj.weight": torch.randn(16, T5_SHAPE["d_model"], generator=generator),
        "proj.bias": torch.randn(16, generator=generator),
        "itm_head.weight": torch.randn(2, T5_SHAPE["d_model"], generator=generator),
        "itm_head.bias": torch.randn(2, generator=generator),
    })
    if lm_head_override is not None:
        tensors["lm_head.weight"] = lm_head_override
    for name in drop:
        del tensors[name]
    config = {"architectures": ["CodeT5pBimodalModel"], "model_type": "codet5p_bimodal",
              "auto_map": {"AutoModel": "modeling_codet5p_bimodal.CodeT5pBimodalModel"}, "embed_dim": 16,
              "vocab_size": T5_VOCAB, "pad_token_id": 0, "eos_token_id": T5_EOS, "bos_token_id": 1,
              "decoder_start_token_id": 0, "tie_word_embeddings": tied, "dropout_rate": 0.1,
              "layer_norm_epsilon": 1e-6, **T5_SHAPE}
    (folder / "config.json").write_text(json.dumps(config))
    _save_word_tokenizer(folder, T5_WORDS, ADDED, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    if tied:  # tied: the real 220m-bimodal ships pytorch_model.bin; no shared/lm_head copies
        torch.save(tensors, folder / "pytorch_model.bin")
    else:
        save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder


@pytest.fixture(scope="module", params=[True, False], ids=["tied", "untied"])
def bimodal_case(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    tied: bool = request.param
    root = tmp_path_factory.mktemp("bimodal")
    reference = _reference_t5(tied)
    drop = ("shared.weight", "lm_head.weight") if tied else ()
    src = _save_bimodal(root / "bimodal", reference, tied, drop=drop)
    hf_dir = root / "t5"
    bimodal_to_t5(src, hf_dir)
    return {"tied": tied, "reference": reference, "src": src, "hf_dir": hf_dir, "root": root}


def _bimodal_inputs() -> list[list[int]]:
    rng = torch.Generator().manual_seed(13)
    lengths = (1, 2, 4, 6, 9, 12, 16)
    inputs = [torch.randint(3, len(T5_WORDS), (n,), generator=rng).tolist() + [T5_EOS] for n in lengths]
    inputs[2][0] = 29  # an added token ([ENC]) in the encoder input
    return inputs


def test_bimodal_maps_to_t5_with_the_same_greedy_output_and_logits(bimodal_case: dict) -> None:
    reference: T5ForConditionalGeneration = bimodal_case["reference"]
    hf_dir: Path = bimodal_case["hf_dir"]
    config = json.loads((hf_dir / "config.json").read_text())
    assert config["model_type"] == "t5" and config["vocab_size"] == T5_VOCAB
    assert config["tie_word_embeddings"] is bimodal_case["tied"]
    assert "embed_dim" not in config and "auto_map" not in config
    with safe_open(str(hf_dir / "model.safetensors"), framework="pt") as handle:
        names = set(handle.keys())
    assert not any(n.startswith(("proj.", "itm_head.")) for n in names)
    assert ("lm_head.weight" in names) is not bimodal_case["tied"]
    assert names == set(t5_parameter_names(2, 2, False)) | {"shared.weight"} | (
        set() if bimodal_case["tied"] else {"lm_head.weight"})

    converted = T5ForConditionalGeneration.from_pretrained(str(hf_dir)).eval()
    with torch.no_grad():
        decoder_ids = torch.tensor([[0, 5, 7, 30, 9]])
        for ids in _bimodal_inputs():
            source = torch.tensor([ids])
            ref_logits = reference(input_ids=source, decoder_input_ids=decoder_ids).logits
            new_logits = converted(input_ids=source, decoder_input_ids=decoder_ids).logits
            torch.testing.assert_close(new_logits, ref_logits, rtol=1e-5, atol=1e-5)
            kwargs = {"max_new_tokens": NEW_TOKENS, "do_sample": False, "num_beams": 1}
            assert torch.equal(converted.generate(source, **kwargs), reference.generate(source, **kwargs))

    tokenizer = AutoTokenizer.from_pretrained(str(hf_dir))
    assert tokenizer.convert_tokens_to_ids(ADDED) == [29, 30, 31]


def test_ct2_translator_greedy_and_scores_match_transformers(bimodal_case: dict) -> None:
    reference: T5ForConditionalGeneration = bimodal_case["reference"]
    ct2_dir = convert_to_ctranslate2(bimodal_case["hf_dir"], bimodal_case["root"] / "t5-ct2", force=True)
    vocabulary = json.loads((ct2_dir / "shared_vocabulary.json").read_text())
    assert vocabulary == T5_WORDS + ADDED
    translator = ctranslate2.Translator(str(ct2_dir), device="cpu", compute_type="float32")
    inputs = _bimodal_inputs()

    expected, margins = [], []
    with torch.no_grad():
        for ids in inputs:
            out = reference.generate(torch.tensor([ids]), max_new_tokens=NEW_TOKENS, do_sample=False,
                                     num_beams=1, output_scores=True, return_dict_in_generate=True)
            expected.append(_cut_at_eos(out.sequences[0, 1:].tolist(), T5_EOS))
            margins.append(_min_greedy_margin(out.scores))
    assert min(margins) > 1e-3, "test weights too close to a tie for a token-exact comparison"

    sources = [[vocabulary[i] for i in ids] for ids in inputs]
    results = translator.translate_batch(sources, beam_size=1, max_decoding_length=NEW_TOKENS)
    got = [[vocabulary.index(token) for token in result.hypotheses[0]] for result in results]
    assert got == expected
    assert sum(len(ids) for ids in got) >= 30

    # Scores catch what argmax cannot: a wrong decoder output scale (untied T5 under transformers 5).
    targets = [[vocabulary[i] for i in ids] or ["w3"] for ids in expected]
    scored = translator.score_batch(sources, targets)
    with torch.no_grad():
        for ids, target, result in zip(inputs, targets, scored):
            target_ids = [vocabulary.index(t) for t in target] + [T5_EOS]
            decoder_ids = torch.tensor([[0] + target_ids[:-1]])
            log_probs = reference(input_ids=torch.tensor([ids]), decoder_input_ids=decoder_ids).logits.log_softmax(-1)
            want = log_probs[0, torch.arange(len(target_ids)), torch.tensor(target_ids)]
            torch.testing.assert_close(torch.tensor(result.log_probs), want, rtol=1e-4, atol=1e-4)


def test_bimodal_errors_name_missing_and_inconsistent_tensors(tmp_path: Path) -> None:
    reference = _reference_t5(tied=True)
    src = _save_bimodal(tmp_path / "missing", reference, True, drop=("decoder.block.1.layer.1.EncDecAttention.k.weight",))
    with pytest.raises(CheckpointLayoutError, match=r"decoder\.block\.1\.layer\.1\.EncDecAttention\.k\.weight"):
        bimodal_to_t5(src, tmp_path / "out")
    src = _save_bimodal(tmp_path / "prefixed", reference, True)
    weights = torch.load(src / "pytorch_model.bin", weights_only=True)
    torch.save({f"model.{k}": v for k, v in weights.items()}, src / "pytorch_model.bin")
    with pytest.raises(CheckpointLayoutError, match=r"unexpected tensors: model\."):
        bimodal_to_t5(src, tmp_path / "out")
    different = torch.randn(T5_VOCAB, T5_SHAPE["d_model"])
    src = _save_bimodal(tmp_path / "untied_weights_tied_config", reference, True, lm_head_override=different)
    with pytest.raises(CheckpointLayoutError, match="lm_head.weight differs"):
        bimodal_to_t5(src, tmp_path / "out")
    src = _save_bimodal(tmp_path / "untied_no_head", _reference_t5(tied=False), False, drop=("lm_head.weight",))
    with pytest.raises(CheckpointLayoutError, match="lm_head.weight"):
        bimodal_to_t5(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("stored", ["shared.weight", "encoder.embed_tokens.weight",
                                    "decoder.embed_tokens.weight"])
def test_bimodal_embedding_may_be_stored_under_any_of_its_three_names(tmp_path: Path, stored: str) -> None:
    """Which embedding the published .bin holds is not documented (the class lists
    encoder.embed_tokens.weight as an authorized missing key): each one alone must do."""
    reference = _reference_t5(tied=True)
    names = {"shared.weight", "encoder.embed_tokens.weight", "decoder.embed_tokens.weight"}
    present = set(reference.state_dict())
    drop = tuple(sorted((names - {stored}) & present)) + (("lm_head.weight",) if "lm_head.weight" in present else ())
    src = _save_bimodal(tmp_path / "src", reference, True, drop=drop)
    bimodal_to_t5(src, tmp_path / "out")
    written = load_file(str(tmp_path / "out" / "model.safetensors"))
    assert torch.equal(written["shared.weight"], reference.shared.weight)
    assert not names - {"shared.weight"} & set(written)
