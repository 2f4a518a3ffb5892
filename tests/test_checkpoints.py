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
from safetensors.torch import load_file
from transformers import (
    AutoTokenizer,
    CodeGenForCausalLM,
    T5ForConditionalGeneration,
)

from codet5_lsp.inference.checkpoints import (
    CheckpointLayoutError,
    UnsupportedCheckpointError,
    bimodal_to_t5,
    codegen_parameter_names,
    detect_checkpoint_kind,
    extract_codegen_decoder,
    t5_parameter_names,
)
from codet5_lsp.inference.conversion import convert_to_ctranslate2
from tests.support.checkpoints import (
    ADDED,
    CODEGEN_EOS,
    CODEGEN_VOCAB,
    CODEGEN_WORDS,
    T5_EOS,
    T5_SHAPE,
    T5_VOCAB,
    T5_WORDS,
    codegen_decoder,
    codet5p_tensors,
    cut_at_eos,
    reference_t5,
    save_bimodal,
    save_codet5p,
)

NEW_TOKENS = 10


def _min_greedy_margin(scores: tuple[torch.Tensor, ...]) -> float:
    top2 = torch.stack([s[0].topk(2).values for s in scores])
    return float((top2[:, 0] - top2[:, 1]).min())


# --------------------------------------------------------------------------------------------
# detection
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "kind"),
    [
        ({"model_type": "t5", "architectures": ["T5ForConditionalGeneration"]}, "t5"),
        (
            {"model_type": "codet5p", "architectures": ["CodeT5pEncoderDecoderModel"]},
            "codet5p_encoder_decoder",
        ),
        (
            {"model_type": "codet5p_bimodal", "architectures": ["CodeT5pBimodalModel"]},
            "codet5p_bimodal",
        ),
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


@pytest.fixture(scope="module")
def codegen_case(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("codet5p_2b")
    model = codegen_decoder()
    src = save_codet5p(root / "codet5p-tiny", model, codet5p_tensors(model), "safetensors-sharded")
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
    assert (config["n_embd"], config["n_layer"], config["n_head"], config["rotary_dim"]) == (
        64,
        3,
        4,
        8,
    )
    assert "head_dim" not in config and "add_cross_attention" not in config
    # CodeGen's bos is its eos (<|endoftext|>); the sub-config's bos 1 is not copied
    assert config["bos_token_id"] == config["eos_token_id"] == CODEGEN_EOS
    assert (hf_dir / "tokenizer.json").is_file() and not (hf_dir / "modeling_codet5p.py").exists()
    assert not hf_dir.with_name(hf_dir.name + ".partial").exists()


def test_ct2_generator_greedy_matches_transformers_on_original_weights(codegen_case: dict) -> None:
    model: CodeGenForCausalLM = codegen_case["model"]
    generator = ctranslate2.Generator(
        str(codegen_case["ct2_dir"]), device="cpu", compute_type="float32"
    )
    vocabulary = json.loads((codegen_case["ct2_dir"] / "vocabulary.json").read_text())
    assert vocabulary[:CODEGEN_VOCAB] == CODEGEN_WORDS
    rng = torch.Generator().manual_seed(11)
    prompts = [
        torch.randint(0, CODEGEN_VOCAB - 1, (n,), generator=rng).tolist()
        for n in (1, 2, 3, 5, 8, 13, 21)
    ]

    expected, margins = [], []
    with torch.no_grad():
        for prompt in prompts:
            out = model.generate(
                torch.tensor([prompt]),
                attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                max_new_tokens=NEW_TOKENS,
                do_sample=False,
                eos_token_id=CODEGEN_EOS,
                pad_token_id=CODEGEN_EOS,
                output_scores=True,
                return_dict_in_generate=True,
            )
            expected.append(cut_at_eos(out.sequences[0, len(prompt) :].tolist(), CODEGEN_EOS))
            margins.append(_min_greedy_margin(out.scores))
    assert min(margins) > 1e-3, "test weights too close to a tie for a token-exact comparison"

    # One prompt per call: in a batch of unequal prompts, ct2 forwards only the shortest prompt's
    # length at once and force-decodes the rest, which then appears in (and counts against) the
    # result.
    got = []
    for prompt in prompts:
        (result,) = generator.generate_batch(
            [[vocabulary[i] for i in prompt]],
            max_length=NEW_TOKENS,
            sampling_topk=1,
            include_prompt_in_result=False,
        )
        got.append(cut_at_eos(result.sequences_ids[0], CODEGEN_EOS))
    assert got == expected
    assert sum(len(ids) for ids in got) >= 30  # the comparison covered real continuations


def test_bin_checkpoint_and_small_shards_give_the_same_decoder(
    codegen_case: dict, tmp_path: Path
) -> None:
    model: CodeGenForCausalLM = codegen_case["model"]
    src = save_codet5p(tmp_path / "bin", model, codet5p_tensors(model), "bin")
    dst = tmp_path / "codegen"
    extract_codegen_decoder(src, dst, max_shard_bytes=40_000)
    index = json.loads((dst / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1 and not (dst / "model.safetensors").exists()
    reloaded = CodeGenForCausalLM.from_pretrained(str(dst)).state_dict()
    for name in codegen_parameter_names(3):
        assert torch.equal(reloaded[name], model.state_dict()[name]), name


def test_missing_decoder_tensor_is_named_and_nothing_is_written(
    codegen_case: dict, tmp_path: Path
) -> None:
    model: CodeGenForCausalLM = codegen_case["model"]
    tensors = codet5p_tensors(model)
    del tensors["decoder.transformer.h.1.mlp.fc_in.bias"]
    src = save_codet5p(tmp_path / "broken", model, tensors, "safetensors-sharded")
    with pytest.raises(
        CheckpointLayoutError,
        match=r"missing decoder tensors: decoder\.transformer\.h\.1\.mlp\.fc_in\.bias",
    ):
        extract_codegen_decoder(src, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


def test_unknown_decoder_tensor_is_an_error_not_silently_dropped(
    codegen_case: dict, tmp_path: Path
) -> None:
    model: CodeGenForCausalLM = codegen_case["model"]
    tensors = codet5p_tensors(model)
    tensors["decoder.transformer.h.0.attn.rotary_scale"] = torch.ones(4)
    src = save_codet5p(tmp_path / "odd", model, tensors, "bin")
    with pytest.raises(
        CheckpointLayoutError,
        match=r"unexpected decoder tensors: decoder\.transformer\.h\.0\.attn\.rotary_scale",
    ):
        extract_codegen_decoder(src, tmp_path / "out")


def test_extraction_rejects_a_non_codet5p_folder_and_an_occupied_destination(
    codegen_case: dict, tmp_path: Path
) -> None:
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


@pytest.fixture(scope="module", params=[True, False], ids=["tied", "untied"])
def bimodal_case(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    tied: bool = request.param
    root = tmp_path_factory.mktemp("bimodal")
    reference = reference_t5(tied)
    drop = ("shared.weight", "lm_head.weight") if tied else ()
    src = save_bimodal(root / "bimodal", reference, tied, drop=drop)
    hf_dir = root / "t5"
    bimodal_to_t5(src, hf_dir)
    return {"tied": tied, "reference": reference, "src": src, "hf_dir": hf_dir, "root": root}


def _bimodal_inputs() -> list[list[int]]:
    rng = torch.Generator().manual_seed(13)
    lengths = (1, 2, 4, 6, 9, 12, 16)
    inputs = [
        torch.randint(3, len(T5_WORDS), (n,), generator=rng).tolist() + [T5_EOS] for n in lengths
    ]
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
        set() if bimodal_case["tied"] else {"lm_head.weight"}
    )

    converted = T5ForConditionalGeneration.from_pretrained(str(hf_dir)).eval()
    with torch.no_grad():
        decoder_ids = torch.tensor([[0, 5, 7, 30, 9]])
        for ids in _bimodal_inputs():
            source = torch.tensor([ids])
            ref_logits = reference(input_ids=source, decoder_input_ids=decoder_ids).logits
            new_logits = converted(input_ids=source, decoder_input_ids=decoder_ids).logits
            torch.testing.assert_close(new_logits, ref_logits, rtol=1e-5, atol=1e-5)
            kwargs = {"max_new_tokens": NEW_TOKENS, "do_sample": False, "num_beams": 1}
            assert torch.equal(
                converted.generate(source, **kwargs), reference.generate(source, **kwargs)
            )

    tokenizer = AutoTokenizer.from_pretrained(str(hf_dir))
    assert tokenizer.convert_tokens_to_ids(ADDED) == [29, 30, 31]


def test_ct2_translator_greedy_and_scores_match_transformers(bimodal_case: dict) -> None:
    reference: T5ForConditionalGeneration = bimodal_case["reference"]
    ct2_dir = convert_to_ctranslate2(
        bimodal_case["hf_dir"], bimodal_case["root"] / "t5-ct2", parallel_prefix=False, force=True
    )
    vocabulary = json.loads((ct2_dir / "shared_vocabulary.json").read_text())
    assert vocabulary == T5_WORDS + ADDED
    translator = ctranslate2.Translator(str(ct2_dir), device="cpu", compute_type="float32")
    inputs = _bimodal_inputs()

    expected, margins = [], []
    with torch.no_grad():
        for ids in inputs:
            out = reference.generate(
                torch.tensor([ids]),
                max_new_tokens=NEW_TOKENS,
                do_sample=False,
                num_beams=1,
                output_scores=True,
                return_dict_in_generate=True,
            )
            expected.append(cut_at_eos(out.sequences[0, 1:].tolist(), T5_EOS))
            margins.append(_min_greedy_margin(out.scores))
    assert min(margins) > 1e-3, "test weights too close to a tie for a token-exact comparison"

    sources = [[vocabulary[i] for i in ids] for ids in inputs]
    results = translator.translate_batch(sources, beam_size=1, max_decoding_length=NEW_TOKENS)
    got = [[vocabulary.index(token) for token in result.hypotheses[0]] for result in results]
    assert got == expected
    assert sum(len(ids) for ids in got) >= 30

    # Scores catch what argmax cannot: a wrong decoder output scale (untied T5 under
    # transformers 5).
    targets = [[vocabulary[i] for i in ids] or ["w3"] for ids in expected]
    scored = translator.score_batch(sources, targets)
    with torch.no_grad():
        for ids, target, result in zip(inputs, targets, scored):
            target_ids = [vocabulary.index(t) for t in target] + [T5_EOS]
            decoder_ids = torch.tensor([[0] + target_ids[:-1]])
            log_probs = reference(
                input_ids=torch.tensor([ids]), decoder_input_ids=decoder_ids
            ).logits.log_softmax(-1)
            want = log_probs[0, torch.arange(len(target_ids)), torch.tensor(target_ids)]
            torch.testing.assert_close(torch.tensor(result.log_probs), want, rtol=1e-4, atol=1e-4)


def test_bimodal_errors_name_missing_and_inconsistent_tensors(tmp_path: Path) -> None:
    reference = reference_t5(tied=True)
    src = save_bimodal(
        tmp_path / "missing",
        reference,
        True,
        drop=("decoder.block.1.layer.1.EncDecAttention.k.weight",),
    )
    with pytest.raises(
        CheckpointLayoutError, match=r"decoder\.block\.1\.layer\.1\.EncDecAttention\.k\.weight"
    ):
        bimodal_to_t5(src, tmp_path / "out")
    src = save_bimodal(tmp_path / "prefixed", reference, True)
    weights = torch.load(src / "pytorch_model.bin", weights_only=True)
    torch.save({f"model.{k}": v for k, v in weights.items()}, src / "pytorch_model.bin")
    with pytest.raises(CheckpointLayoutError, match=r"unexpected tensors: model\."):
        bimodal_to_t5(src, tmp_path / "out")
    different = torch.randn(T5_VOCAB, T5_SHAPE["d_model"])
    src = save_bimodal(
        tmp_path / "untied_weights_tied_config", reference, True, lm_head_override=different
    )
    with pytest.raises(CheckpointLayoutError, match="lm_head.weight differs"):
        bimodal_to_t5(src, tmp_path / "out")
    src = save_bimodal(
        tmp_path / "untied_no_head", reference_t5(tied=False), False, drop=("lm_head.weight",)
    )
    with pytest.raises(CheckpointLayoutError, match="lm_head.weight"):
        bimodal_to_t5(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "stored", ["shared.weight", "encoder.embed_tokens.weight", "decoder.embed_tokens.weight"]
)
def test_bimodal_embedding_may_be_stored_under_any_of_its_three_names(
    tmp_path: Path, stored: str
) -> None:
    """Which embedding the published .bin holds is not documented (the class lists
    encoder.embed_tokens.weight as an authorized missing key): each one alone must do."""
    reference = reference_t5(tied=True)
    names = {"shared.weight", "encoder.embed_tokens.weight", "decoder.embed_tokens.weight"}
    present = set(reference.state_dict())
    drop = tuple(sorted((names - {stored}) & present)) + (
        ("lm_head.weight",) if "lm_head.weight" in present else ()
    )
    src = save_bimodal(tmp_path / "src", reference, True, drop=drop)
    bimodal_to_t5(src, tmp_path / "out")
    written = load_file(str(tmp_path / "out" / "model.safetensors"))
    assert torch.equal(written["shared.weight"], reference.shared.weight)
    assert not names - {"shared.weight"} & set(written)
