"""T5 conversion and the one-pass decoder prefix rewrite (inference/t5_prefix_fix.py).

The decoder-only completion path forces the code before the cursor as a decoder prefix. These
tests check that the one-pass prefix (``return_alternatives=True``) of a model converted with
the rewrite gives exactly the tokens of transformers' greedy generate and of CTranslate2's
step-by-step prefix, and that without the rewrite it does not.
"""

from __future__ import annotations

import random

import ctranslate2
import pytest
import torch
from transformers import (
    AutoTokenizer,
    T5ForConditionalGeneration,
)
from transformers.cache_utils import DynamicCache, EncoderDecoderCache
from transformers.models.t5.modeling_t5 import T5Attention

from codet5_lsp.inference.conversion import convert_to_ctranslate2
from codet5_lsp.inference.t5_prefix_fix import relative_position_keys_table, t5_decoder_buckets
from tests.support.checkpoints import (
    SPECIALS,
    TINY_MAX_DISTANCE,
    TINY_VOCAB,
    build_tiny_t5,
    tiny_tokens,
)
from tests.support.paths import LABMODEL, REPO

ENCODER_MARKER = ["<s>", "</s>"]  # the decoder-only task's encoder input


# --- helpers -------------------------------------------------------------------------------


def hf_greedy(
    model: T5ForConditionalGeneration, prefix_ids: list[int], new_tokens: int
) -> list[int]:
    """Transformers greedy continuation of ``<pad> + prefix`` with encoder input ``<s></s>``."""
    with torch.no_grad():
        out = model.generate(
            input_ids=torch.tensor([[1, 2]]),
            decoder_input_ids=torch.tensor([[0, *prefix_ids]]),
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            num_beams=1,
            # transformers 5 needs an explicit cache when encoder and decoder depths differ.
            past_key_values=EncoderDecoderCache(DynamicCache(), DynamicCache()),
        )
    return out[0, 1 + len(prefix_ids) :].tolist()


def ct2_greedy(
    translator: ctranslate2.Translator, prefix: list[str], new_tokens: int, *, one_pass: bool
) -> list[str]:
    """CTranslate2 greedy continuation; ``one_pass`` feeds the whole prefix in one decoder pass."""
    extra = dict(return_alternatives=True, num_hypotheses=1) if one_pass else {}
    total = len(prefix) + new_tokens
    result = translator.translate_batch(
        [ENCODER_MARKER],
        target_prefix=[prefix],
        beam_size=1,
        max_decoding_length=total,
        min_decoding_length=total,
        **extra,
    )
    return result[0].hypotheses[0][len(prefix) :]


def ct2_greedy_steps_batch(
    translator: ctranslate2.Translator, prefixes: list[list[str]], new_tokens: int
) -> list[list[str]]:
    """The step-by-step path for many prefixes at once (each step is one token for every
    sequence, so batching changes no positions); EOS is disabled as in ``ct2_greedy``."""
    total = max(map(len, prefixes)) + new_tokens
    results = translator.translate_batch(
        [ENCODER_MARKER] * len(prefixes),
        target_prefix=prefixes,
        beam_size=1,
        max_decoding_length=total,
        min_decoding_length=total,
    )
    return [r.hypotheses[0][len(p) : len(p) + new_tokens] for r, p in zip(results, prefixes)]


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_t5")
    model = build_tiny_t5(root / "hf")
    convert_to_ctranslate2(root / "hf", root / "fixed", "float32")
    convert_to_ctranslate2(root / "hf", root / "plain", "float32", parallel_prefix=False)
    return root, model


@pytest.fixture(scope="module")
def labmodel(tmp_path_factory):
    out = tmp_path_factory.mktemp("labmodel") / "ct2"
    convert_to_ctranslate2(LABMODEL, out, "float32")
    translator = ctranslate2.Translator(str(out), device="cpu", intra_threads=2)
    model = T5ForConditionalGeneration.from_pretrained(LABMODEL, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(LABMODEL)
    return translator, model, tokenizer


# --- the bucket table ----------------------------------------------------------------------


@pytest.mark.parametrize("num_buckets,max_distance", [(32, 128), (8, TINY_MAX_DISTANCE)])
def test_buckets_match_transformers_and_saturate_at_max_distance(num_buckets, max_distance):
    distances = torch.arange(0, 40 * max_distance)
    ours = t5_decoder_buckets(distances, num_buckets, max_distance)
    # transformers takes memory_position - query_position = -(distance)
    theirs = T5Attention._relative_position_bucket(
        -distances, bidirectional=False, num_buckets=num_buckets, max_distance=max_distance
    )
    assert torch.equal(ours, theirs)
    # Clipping distances at max_distance (what relative_position_keys does) loses nothing.
    assert torch.all(theirs[max_distance:] == theirs[max_distance])


def test_table_holds_each_heads_bias_in_its_extra_dim():
    bias = torch.randn(8, 4)
    table = relative_position_keys_table(bias, max_distance=10, d_kv=16)
    assert table.shape == (21, 20)
    assert torch.all(table[:, :16] == 0)
    buckets = t5_decoder_buckets(torch.tensor([3]), 8, 10)
    assert torch.equal(table[10 - 3, 16:], bias[buckets[0]])  # key 3 positions before the query
    assert torch.equal(table[10 + 2, 16:], bias[0])  # future keys: bucket 0, masked anyway


# --- tiny random T5 ------------------------------------------------------------------------

TINY_PREFIX_LENGTHS = [3, 7, 15, 25, 40, 70, 1, 19, 21, 33, 55, 90]


def test_tiny_t5_one_pass_is_exact_only_with_the_rewrite(tiny):
    root, model = tiny
    fixed = ctranslate2.Translator(str(root / "fixed"), device="cpu", intra_threads=2)
    plain = ctranslate2.Translator(str(root / "plain"), device="cpu", intra_threads=2)
    rng = random.Random(1)
    plain_mismatches = 0
    for length in TINY_PREFIX_LENGTHS:
        prefix_ids = [rng.randrange(len(SPECIALS), TINY_VOCAB) for _ in range(length)]
        prefix = tiny_tokens(prefix_ids)
        expected = tiny_tokens(hf_greedy(model, prefix_ids, 12))
        assert ct2_greedy(fixed, prefix, 12, one_pass=True) == expected, length
        assert ct2_greedy(fixed, prefix, 12, one_pass=False) == expected, length
        assert ct2_greedy(plain, prefix, 12, one_pass=False) == expected, length
        plain_mismatches += ct2_greedy(plain, prefix, 12, one_pass=True) != expected
    # Prefixes beyond max_distance are covered above; without the rewrite one pass is wrong.
    assert max(TINY_PREFIX_LENGTHS) > TINY_MAX_DISTANCE
    assert plain_mismatches >= 2


def test_rewrite_keeps_cache_free_scores(tiny):
    root, _ = tiny
    fixed = ctranslate2.Translator(str(root / "fixed"), device="cpu")
    plain = ctranslate2.Translator(str(root / "plain"), device="cpu")
    # Scoring a full target runs the decoder without a cache, where the stock T5 bias is right:
    # the rewritten model must give the same log-probs there too.
    target = tiny_tokens(list(range(10, 60)))
    a = fixed.score_batch([ENCODER_MARKER], [target])[0].log_probs
    b = plain.score_batch([ENCODER_MARKER], [target])[0].log_probs
    assert a == pytest.approx(b, abs=1e-4)


def test_conversion_is_atomic_and_needs_force(tiny, tmp_path):
    root, _ = tiny
    dst = tmp_path / "model"
    convert_to_ctranslate2(root / "hf", dst, "int8")
    assert (dst / "model.bin").is_file()
    with pytest.raises(FileExistsError):
        convert_to_ctranslate2(root / "hf", dst, "int8")
    with pytest.raises(ValueError):
        convert_to_ctranslate2(root / "hf", tmp_path / "other", "int4")
    convert_to_ctranslate2(root / "hf", dst, "float32", force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temp folder left
    translator = ctranslate2.Translator(str(dst), device="cpu")
    assert len(ct2_greedy(translator, tiny_tokens([5, 6, 7]), 4, one_pass=True)) == 4


def test_failed_conversion_leaves_nothing(tmp_path):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text('{"model_type": "t5"}')
    with pytest.raises(Exception):  # noqa: B017 - any error; what matters is what stays on disk
        convert_to_ctranslate2(tmp_path / "broken", tmp_path / "out", "float32")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken"]


# --- labmodel on real code -----------------------------------------------------------------


def cursor_positions(count: int, max_tokens: int, tokenizer) -> list[list[int]]:
    """Token ids before ``count`` mid-line cursors in this repo's own Python files (written for
    this project, so not in the labmodel's training data); the last ``max_tokens`` of each."""
    files = sorted(
        p
        for d in ("server", "inference")
        for p in (REPO / d).glob("*.py")
        if p.stat().st_size > 2000
    )
    rng = random.Random(0)
    prefixes = []
    for i in range(count):
        source = files[i % len(files)].read_text()
        lines = source.splitlines(keepends=True)
        candidates = [n for n, line in enumerate(lines) if len(line.strip()) > 20 and n > 5]
        n = rng.choice(candidates)
        column = len(lines[n]) - len(lines[n].lstrip()) + len(lines[n].strip()) // 2
        cursor = sum(len(line) for line in lines[:n]) + column
        ids = tokenizer(source[:cursor], add_special_tokens=False).input_ids
        prefixes.append(ids[-max_tokens:])
    return prefixes


@pytest.mark.slow
def test_labmodel_one_pass_matches_step_by_step_and_transformers(labmodel):
    translator, model, tokenizer = labmodel
    prefixes = cursor_positions(20, 150, tokenizer)
    assert sum(len(p) > 128 for p in prefixes) >= 10  # beyond relative_attention_max_distance
    tokens = [tokenizer.convert_ids_to_tokens(ids) for ids in prefixes]
    step_by_step = ct2_greedy_steps_batch(translator, tokens, 16)
    for prefix_ids, prefix, expected_steps in zip(prefixes, tokens, step_by_step):
        one_pass = ct2_greedy(translator, prefix, 16, one_pass=True)
        assert one_pass == expected_steps
        assert tokenizer.convert_tokens_to_ids(one_pass) == hf_greedy(model, prefix_ids, 16)


# --- the probe for a ctranslate2 that runs T5 prefixes exactly by itself -------------------


def test_probe_tells_an_inexact_one_pass_from_an_exact_one(tmp_path):
    from codet5_lsp.inference.prefix_probe import (
        PROBE_PREFIX_LENGTHS,
        build_probe_model,
        one_pass_prefix_mismatches,
    )
    from codet5_lsp.inference.t5_prefix_fix import apply_parallel_prefix_fix

    stock = build_probe_model(tmp_path / "stock")
    rewritten = build_probe_model(tmp_path / "rewritten", rewrite=apply_parallel_prefix_fix)
    # ctranslate2 4.8.5 (pinned) mis-positions the bias in one pass; the rewrite fixes it.
    assert ctranslate2.__version__ == "4.8.5"
    assert one_pass_prefix_mismatches(stock) >= len(PROBE_PREFIX_LENGTHS) // 2  # a clear signal
    assert one_pass_prefix_mismatches(rewritten) == 0


def test_a_native_prefix_conversion_is_not_trusted_by_a_build_that_fails_the_probe(
    tiny, tmp_path, monkeypatch
):
    """As if converted by a fixed ctranslate2 (probe passed): no rewrite, own cache folder.
    Loaded by this (unfixed) build, the engine must fall back to the exact step-by-step path."""
    from codet5_lsp.inference import engine as engine_module
    from codet5_lsp.inference import models, prefix_probe
    from codet5_lsp.inference.generation import GenerationRequest

    root, model = tiny
    key = models.cache_key("some/model", None, "float32")
    monkeypatch.setattr(prefix_probe, "native_t5_prefix_is_exact", lambda: True)
    assert models.cache_key("some/model", None, "float32") == key + "--native-prefix"
    files = models.convert_checkpoint(
        root / "hf", tmp_path / "native", quantization="float32", source="tiny", revision=None
    )
    assert files.metadata.parallel_prefix and files.metadata.native_prefix
    assert b"relative_position_keys" not in (files.folder / "model.bin").read_bytes()
    monkeypatch.undo()  # the real probe: this build is not fixed
    engine = engine_module.CompletionEngine(files, device="cpu", compute_type="float32")
    try:
        rng = random.Random(5)
        for length in (15, 25, 40):
            ids = [rng.randrange(len(SPECIALS), TINY_VOCAB) for _ in range(length)]
            request = GenerationRequest(
                mode="decoder",
                encoder_tokens=list(ENCODER_MARKER),
                decoder_prefix=tiny_tokens(ids),
                max_new_tokens=8,
            )
            result = engine.generate(request)
            assert result.tokens == tiny_tokens(hf_greedy(model, ids, 8))[: len(result.tokens)]
            assert len(result.tokens) > 0
    finally:
        engine.close()


def test_probe_runs_once_per_build_without_loading_torch_into_the_server(tmp_path, monkeypatch):
    import json
    import subprocess
    import sys

    env = dict(__import__("os").environ, XDG_CACHE_HOME=str(tmp_path))
    code = (
        "import sys\n"
        "from codet5_lsp.inference.prefix_probe import native_t5_prefix_is_exact\n"
        "print(native_t5_prefix_is_exact(), 'torch' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.stdout.split() == ["False", "False"], done.stderr  # 4.8.5: not exact; no torch
    (record,) = (tmp_path / "codet5-lsp").glob("ctranslate2-prefix-probe-*.json")
    assert json.loads(record.read_text())["mismatches"] >= 5
    # Later processes read the record instead of probing again.
    from codet5_lsp.inference import prefix_probe

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("probed again"))
    record.write_text(json.dumps({"one_pass_exact": True, "mismatches": 0}))
    assert prefix_probe.native_t5_prefix_is_exact.__wrapped__() is True
