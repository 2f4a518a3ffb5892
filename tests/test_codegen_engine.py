"""The 2B/6B/16B path end to end: a CodeT5+-layout checkpoint -> resolve_model (decoder
extraction + conversion) -> CompletionEngine on ctranslate2.Generator, equal to transformers."""

from __future__ import annotations

import pytest
import torch

from codet5_lsp.inference.engine import CompletionEngine
from codet5_lsp.inference.models import resolve_model
from codet5_lsp.inference.prompts import build_completion_request, choose_mode
from tests.support.checkpoints import (
    CODEGEN_EOS,
    CODEGEN_VOCAB,
    CODEGEN_WORDS,
    codegen_decoder,
    codet5p_tensors,
    cut_at_eos,
    save_codet5p,
)

NEW = 8


def test_codet5p_2b_layout_serves_exact_causal_completions(tmp_path):
    model = codegen_decoder()
    src = save_codet5p(
        tmp_path / "codet5p-tiny", model, codet5p_tensors(model), "safetensors-sharded"
    )
    files = resolve_model(str(src), quantization="float32", cache_dir=tmp_path / "cache")
    assert files.metadata.family == "codegen"
    assert files.metadata.eos_token == "<|endoftext|>"
    assert choose_mode("auto", files.metadata.family) == "causal"
    assert choose_mode("decoder", files.metadata.family) == "causal"

    engine = CompletionEngine(files, device="cpu", compute_type="float32")
    try:
        rng = torch.Generator().manual_seed(5)
        prompts = [
            torch.randint(0, CODEGEN_VOCAB - 1, (n,), generator=rng).tolist() for n in (2, 5, 9, 14)
        ]
        produced = 0
        for prompt in prompts:
            text = " ".join(CODEGEN_WORDS[i] for i in prompt)
            request = build_completion_request(
                "causal",
                text,
                "",
                engine.tokenizer,
                max_prefix_tokens=64,
                max_suffix_tokens=0,
                max_new_tokens=NEW,
                bos=None,
                eos=files.metadata.eos_token,
                sentinel=None,
            )
            assert request.encoder_tokens is None
            assert request.decoder_prefix == [CODEGEN_WORDS[i] for i in prompt]
            ours = engine.generate(request).tokens
            with torch.no_grad():
                out = model.generate(
                    torch.tensor([prompt]),
                    attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                    max_new_tokens=NEW,
                    do_sample=False,
                    eos_token_id=CODEGEN_EOS,
                    pad_token_id=CODEGEN_EOS,
                )
            expected = cut_at_eos(out[0, len(prompt) :].tolist(), CODEGEN_EOS)
            assert ours == [CODEGEN_WORDS[i] for i in expected]
            produced += len(ours)
        assert produced >= 12
    finally:
        engine.close()


@pytest.mark.slow
def test_doctor_says_a_2b_layout_serves_the_codegen_mono_decoder(tmp_path):
    """Decoder-only use of a 2B+ checkpoint drops what CodeT5+ training changed (the
    cross-attention): doctor tells the user which model really completes their code."""
    import subprocess
    import sys

    model = codegen_decoder()
    src = save_codet5p(
        tmp_path / "codet5p-tiny", model, codet5p_tensors(model), "safetensors-sharded"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "codet5_lsp.server.cli",
            "doctor",
            "--model",
            str(src),
            "--device",
            "cpu",
            "--compute-type",
            "float32",
            "--cache-dir",
            str(tmp_path / "cache"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    family = next(line for line in proc.stdout.splitlines() if "model_family:" in line)
    assert "CodeGen-mono decoder" in family and "cross-attention" in family
