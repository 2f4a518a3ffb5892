"""A tiny random T5, written straight from CTranslate2 specs, to test the installed ctranslate2.

Why: stock CTranslate2 (4.8.5 and earlier) positions T5's relative attention bias wrongly when
a decoder prefix goes through in one pass (docs/ctranslate2-t5-prefix/), so we rewrite T5
decoders at conversion time (`t5_prefix_fix`), which costs 2.5-3x on the prefix pass. A
ctranslate2 build with the one-line upstream patch (or a future release with the fix) makes the
rewrite unnecessary. `native_t5_prefix_is_exact` runs this model both ways (one pass and one
token per step, `one_pass_prefix_mismatches`) to find out which kind of build is installed, so
a fixed build is used at full speed without any setting. The answer is kept per ctranslate2
build (`_ctranslate2_fingerprint`) in a record file in the user cache.

The model is built with numpy only (no torch, no transformers): the probe also runs where only
the serving dependencies are installed. Its position biases are large, so that a mis-positioned
bias changes every score.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import ctranslate2
import numpy as np

from codet5_lsp.inference.atomic import atomic_write_text

if TYPE_CHECKING:  # imported where a model is built: specs load slowly (and torch if present)
    from ctranslate2.specs import common_spec, transformer_spec

log = logging.getLogger(__name__)

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


def _linear(spec: common_spec.LinearSpec, rng: np.random.Generator, rows: int, cols: int) -> None:
    spec.weight = rng.normal(0.0, cols**-0.5, (rows, cols)).astype(np.float32)


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


def build_probe_model(
    folder: Path,
    seed: int = 0,
    rewrite: Callable[[transformer_spec.TransformerSpec], None] | None = None,
) -> Path:
    """Write a random T5 (1 encoder, 2 decoder layers) as a CTranslate2 model into `folder`,
    converted the stock way (T5 relative attention bias), or changed by `rewrite` (tests pass
    `t5_prefix_fix.apply_parallel_prefix_fix` for a model that must pass the probe)."""
    from ctranslate2.specs import common_spec, transformer_spec

    rng = np.random.default_rng(seed)
    spec = transformer_spec.TransformerSpec.from_config(
        (1, 2),
        PROBE_HEADS,
        pre_norm=True,
        activation=common_spec.Activation.RELU,
        relative_attention_bias=True,
        rms_norm=True,
    )
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


PROBE_PREFIX_LENGTHS = (4, 6, 9, 12, 14, 17, 20, 25, 31, 40)
PROBE_NEW_TOKENS = 6


def one_pass_prefix_mismatches(
    folder: Path,
    lengths: tuple[int, ...] = PROBE_PREFIX_LENGTHS,
    new_tokens: int = PROBE_NEW_TOKENS,
    seed: int = 1,
) -> int:
    """For how many random prefixes the T5 model in `folder` continues differently when a forced
    decoder prefix goes through in one pass (`return_alternatives`) than when it is fed one
    token per step (ctranslate2's exact path). Tokens only: the two paths report scores on
    different scales."""
    translator = ctranslate2.Translator(str(folder), device="cpu", intra_threads=1)
    rng = random.Random(seed)
    mismatches = 0
    try:
        for length in lengths:
            prefix = probe_tokens([rng.randrange(3, PROBE_VOCAB) for _ in range(length)])
            total = length + new_tokens
            common = dict(
                target_prefix=[prefix],
                beam_size=1,
                max_decoding_length=total,
                min_decoding_length=total,
            )
            steps = translator.translate_batch([PROBE_ENCODER_INPUT], **common)[0]
            one_pass = translator.translate_batch(
                [PROBE_ENCODER_INPUT], return_alternatives=True, num_hypotheses=1, **common
            )[0]
            mismatches += steps.hypotheses[0] != one_pass.hypotheses[0]
        return mismatches
    finally:
        translator.unload_model()
        del translator


_PROBE_SCRIPT = """
import sys
sys.modules["torch"] = None  # ctranslate2.specs imports torch when it can: slow and large
import tempfile
from pathlib import Path
from codet5_lsp.inference.prefix_probe import build_probe_model, one_pass_prefix_mismatches
with tempfile.TemporaryDirectory(prefix="codet5-prefix-probe-") as tmp:
    print(one_pass_prefix_mismatches(build_probe_model(Path(tmp) / "model")))
"""


def _ctranslate2_fingerprint() -> str:
    """Identifies the installed ctranslate2 build (a patched one may keep the version)."""
    import hashlib

    folder = Path(ctranslate2.__file__).resolve().parent
    libraries = set(folder.rglob("*.so*"))
    try:  # the loaded libctranslate2 may live elsewhere (a wheel's .libs, a source build)
        with open("/proc/self/maps") as maps:
            libraries.update(
                Path(line.split()[-1])
                for line in maps
                if "libctranslate2" in line.rsplit("/", 1)[-1]
            )
    except OSError:
        pass
    h = hashlib.sha256(f"{ctranslate2.__version__}\0{folder}".encode())
    for path in sorted(libraries):
        try:
            st = path.stat()
        except OSError:
            continue
        h.update(f"{path}\0{st.st_size}\0{int(st.st_mtime)}\n".encode())
    return h.hexdigest()[:16]


@functools.lru_cache(maxsize=1)
def native_t5_prefix_is_exact() -> bool:
    """Whether the installed ctranslate2 itself runs a T5 decoder prefix in one exact pass.

    Stock ctranslate2 4.8.5 does not (docs/ctranslate2-t5-prefix/), so T5 models are converted
    with our rewrite (`t5_prefix_fix`), which makes the prefix pass several times slower
    (bench/results/prefix-cost-cpu.md). A build with the
    one-line upstream patch, or a release with the fix, passes this probe; conversions then skip
    the rewrite and run at ctranslate2's full speed.

    The probe (a tiny random T5 run both ways, `prefix_probe`) runs once per ctranslate2 build,
    in a subprocess where torch cannot be imported (building specs would otherwise load torch
    into the server: seconds and hundreds of MB), and its answer is kept in the user cache."""
    import subprocess
    import sys

    import platformdirs

    record = (
        Path(platformdirs.user_cache_dir("codet5-lsp"))
        / f"ctranslate2-prefix-probe-{_ctranslate2_fingerprint()}.json"
    )
    try:
        return bool(json.loads(record.read_text())["one_pass_exact"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:
        done = subprocess.run(
            [sys.executable, "-c", _PROBE_SCRIPT],
            capture_output=True,
            text=True,
            timeout=120,
            env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)),
        )
        mismatches = int(done.stdout.strip().splitlines()[-1])
    except Exception:  # a probe that cannot run proves nothing: keep the safe rewrite
        log.warning("ctranslate2 prefix probe failed; using the T5 prefix rewrite", exc_info=True)
        return False
    exact = mismatches == 0
    try:
        atomic_write_text(
            record,
            json.dumps(
                {
                    "one_pass_exact": exact,
                    "mismatches": mismatches,
                    "ctranslate2": ctranslate2.__version__,
                }
            )
            + "\n",
        )
    except OSError:
        pass
    return exact
