"""Map the non-standard CodeT5+ checkpoints onto model folders CTranslate2 can convert.

CTranslate2 4.8.5 converts Hugging Face folders by their config class (``T5Config``,
``CodeGenConfig``, ...). Two CodeT5+ families ship custom (``trust_remote_code``) classes
that it does not know, so this module rewrites them into standard folders first:

* ``Salesforce/codet5p-2b`` / ``-6b`` / ``-16b`` (``CodeT5pEncoderDecoderModel``): only the
  decoder is kept. It is a CodeGen causal LM plus one cross-attention block (in its last
  layer); the cross-attention only runs when encoder states are passed, so without it the
  decoder is a plain ``CodeGenForCausalLM`` (served through ``ctranslate2.Generator``) -- see
  :func:`extract_codegen_decoder`. What that decoder is: CodeT5+ training froze the decoder
  except its cross-attention (``freeze_decoder_except_xattn_codegen`` in the authors'
  instruct_tune_codet5p.py; the paper's "frozen off-the-shelf LLMs"), so the decoder used
  alone is, as far as the published code shows, the CodeGen-mono decoder it started from;
  what CodeT5+ training (and instructcodet5p-16b's instruction tuning) added lives in the
  encoder and cross-attention that decoder-only use drops.
* ``Salesforce/codet5p-220m-bimodal`` (``CodeT5pBimodalModel``): a T5 encoder-decoder with an
  extra contrastive projection (``proj``) and a text-code matching head (``itm_head``). Dropping
  those two leaves a plain ``T5ForConditionalGeneration`` (served through
  ``ctranslate2.Translator``) -- see :func:`bimodal_to_t5`.

Real weights were not downloaded; the tensor names and config keys below follow the published
configs and remote-code files (checked 2026-11-30, docs/checkpoints.md), and every rule is
strict (exact names, clear errors naming what is missing or unexpected) so that a different
real layout fails loudly instead of producing a silently broken model.

Only ``safetensors`` and ``torch`` are needed (both part of the ``convert`` extra); tensors are
streamed shard by shard so that a 16B checkpoint never has to fit in memory twice.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from codet5_lsp.inference.atomic import atomic_folder

logger = logging.getLogger(__name__)

__all__ = [
    "CheckpointLayoutError",
    "UnsupportedCheckpointError",
    "detect_checkpoint_kind",
    "extract_codegen_decoder",
    "bimodal_to_t5",
    "codegen_parameter_names",
    "t5_parameter_names",
    "TOKENIZER_FILES",
]

#: Files copied verbatim from the source folder when present (the model's tokenizer, including
#: its added tokens). Remote-code files, weights and generation configs are not copied.
TOKENIZER_FILES: tuple[str, ...] = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "spiece.model",
)

#: Default upper bound for one written safetensors shard (and so for tensors held in memory).
DEFAULT_MAX_SHARD_BYTES = 2 * 1024**3


class UnsupportedCheckpointError(ValueError):
    """The config describes a model this module cannot map onto a CTranslate2 model type."""


class CheckpointLayoutError(ValueError):
    """The weights do not have the tensor names this module expects (missing or unexpected)."""


# --------------------------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------------------------


def detect_checkpoint_kind(config: Mapping[str, Any]) -> str:
    """Classify a Hugging Face ``config.json`` (as a dict).

    Returns one of:

    * ``"t5"`` -- plain ``T5ForConditionalGeneration`` (codet5p-220m, -770m, -220m-py, ...):
      convert directly.
    * ``"codet5p_encoder_decoder"`` -- codet5p-2b/6b/16b (``model_type == "codet5p"`` or the
      ``CodeT5pEncoderDecoderModel`` architecture): run :func:`extract_codegen_decoder` first.
    * ``"codet5p_bimodal"`` -- codet5p-220m-bimodal (``CodeT5pBimodalModel`` architecture or a
      ``codet5p_bimodal`` model_type): run :func:`bimodal_to_t5` first.
    * ``"codegen"`` -- plain ``CodeGenForCausalLM`` (e.g. an already extracted decoder).

    The architecture name wins over model_type, so that a bimodal checkpoint re-saved with
    ``model_type`` "t5" is still recognised (the published config says ``codet5p_bimodal``
    and derives from ``PretrainedConfig``). Anything else (e.g. the encoder-only
    codet5p-110m-embedding: ``CodeT5p_Embedding``, ``codet5p_embedding``) raises
    :class:`UnsupportedCheckpointError`.
    """
    model_type = str(config.get("model_type", "") or "")
    architectures = [str(a) for a in (config.get("architectures") or [])]
    if any("bimodal" in arch.lower() for arch in architectures) or model_type == "codet5p_bimodal":
        return "codet5p_bimodal"
    if model_type == "codet5p" or "CodeT5pEncoderDecoderModel" in architectures:
        return "codet5p_encoder_decoder"
    if any("embedding" in arch.lower() for arch in architectures):
        raise UnsupportedCheckpointError(
            f"encoder-only embedding checkpoint (model_type {model_type!r}, architectures "
            f"{architectures}) has no decoder and cannot generate text"
        )
    if model_type == "t5" and (
        not architectures
        or {"T5ForConditionalGeneration", "T5WithLMHeadModel"} & set(architectures)
    ):
        return "t5"
    if model_type == "codegen" and (not architectures or "CodeGenForCausalLM" in architectures):
        return "codegen"
    raise UnsupportedCheckpointError(
        f"unsupported checkpoint: model_type {model_type!r}, architectures {architectures}; "
        "supported: t5 (T5ForConditionalGeneration), codegen (CodeGenForCausalLM), "
        "codet5p (CodeT5pEncoderDecoderModel), CodeT5pBimodalModel"
    )


# --------------------------------------------------------------------------------------------
# Reading and writing weights, one tensor at a time
# --------------------------------------------------------------------------------------------


def _weight_files(src: Path) -> list[Path]:
    """The weight files of a Hugging Face folder, safetensors preferred over ``.bin``."""
    for index_name, single_name in (
        ("model.safetensors.index.json", "model.safetensors"),
        ("pytorch_model.bin.index.json", "pytorch_model.bin"),
    ):
        index = src / index_name
        if index.is_file():
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            return [src / name for name in sorted(set(weight_map.values()))]
        if (src / single_name).is_file():
            return [src / single_name]
    raise FileNotFoundError(
        f"no weights in {src}: expected model.safetensors[.index.json] or "
        "pytorch_model.bin[.index.json]"
    )


def _iter_tensor_names(files: list[Path]) -> Iterator[tuple[Path, str]]:
    """(file, name) for every tensor, reading only headers (safetensors) or mmap (.bin)."""
    for path in files:
        if path.suffix == ".safetensors":
            with safe_open(str(path), framework="pt") as handle:
                names = list(handle.keys())
        else:
            names = list(_load_bin(path).keys())
        for name in names:
            yield path, name


def _load_bin(path: Path) -> dict[str, torch.Tensor]:
    # mmap keeps a multi-GB shard on disk; tensors are copied only when written out.
    try:
        return torch.load(str(path), map_location="cpu", mmap=True, weights_only=True)
    except RuntimeError:  # pre-zipfile (legacy) serialization cannot be memory-mapped
        logger.warning("%s is in torch's legacy format; loading it fully into memory", path)
        return torch.load(str(path), map_location="cpu", weights_only=True)


def _iter_tensors(
    files: list[Path], wanted: Mapping[str, str]
) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield ``(new_name, tensor)`` for source names in ``wanted`` (source -> new), shard by shard.

    Only one source shard is open at a time; safetensors tensors are read one by one, ``.bin``
    tensors are cloned out of the memory map (so they own their storage and can be saved).
    """
    for path in files:
        if path.suffix == ".safetensors":
            with safe_open(str(path), framework="pt") as handle:
                for name in handle.keys():
                    if name in wanted:
                        yield wanted[name], handle.get_tensor(name)
        else:
            state = _load_bin(path)
            for name in list(state.keys()):
                if name in wanted:
                    yield wanted[name], state[name].detach().clone().contiguous()
            del state


@dataclass
class _ShardedSafetensorsWriter:
    """Writes tensors into ``model-XXXXX-of-YYYYY.safetensors`` shards of bounded size.

    At most ``max_shard_bytes`` (or one tensor, if bigger) is held in memory before a flush.
    """

    folder: Path
    max_shard_bytes: int
    _pending: dict[str, torch.Tensor] = field(default_factory=dict)
    _pending_bytes: int = 0
    _written: list[tuple[Path, list[str]]] = field(default_factory=list)
    _total_bytes: int = 0

    def add(self, name: str, tensor: torch.Tensor) -> None:
        if name in self._pending or any(name in names for _, names in self._written):
            raise CheckpointLayoutError(f"tensor {name!r} written twice")
        size = tensor.numel() * tensor.element_size()
        if self._pending and self._pending_bytes + size > self.max_shard_bytes:
            self._flush()
        self._pending[name] = tensor.contiguous()
        self._pending_bytes += size
        self._total_bytes += size

    def _flush(self) -> None:
        path = self.folder / f"shard-{len(self._written):05d}.tmp"
        save_file(self._pending, str(path), metadata={"format": "pt"})
        self._written.append((path, list(self._pending)))
        self._pending = {}
        self._pending_bytes = 0

    def close(self) -> None:
        if self._pending or not self._written:
            self._flush()
        count = len(self._written)
        if count == 1:
            self._written[0][0].rename(self.folder / "model.safetensors")
            return
        weight_map: dict[str, str] = {}
        for number, (path, names) in enumerate(self._written, start=1):
            final = f"model-{number:05d}-of-{count:05d}.safetensors"
            path.rename(self.folder / final)
            weight_map.update({name: final for name in names})
        index = {"metadata": {"total_size": self._total_bytes}, "weight_map": weight_map}
        (self.folder / "model.safetensors.index.json").write_text(
            json.dumps(index, indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )


def _copy_tokenizer_files(src: Path, dst: Path) -> list[str]:
    copied = []
    for name in TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, dst / name)
            copied.append(name)
    if not copied:
        logger.warning("no tokenizer files found in %s; the converted folder has none", src)
    return copied


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _read_config(src: Path) -> dict[str, Any]:
    return json.loads((src / "config.json").read_text(encoding="utf-8"))


def _format_names(names: list[str], limit: int = 12) -> str:
    shown = ", ".join(sorted(names)[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


# --------------------------------------------------------------------------------------------
# codet5p-2b / 6b / 16b  ->  CodeGenForCausalLM
# --------------------------------------------------------------------------------------------

#: CodeGen config keys taken from the decoder sub-config. Deliberately excludes ``head_dim``
#: (ct2 switches to the CodeGen2 mp_num=8 layout when it sees 128/256) and the encoder-decoder
#: keys (``add_cross_attention``, ``is_decoder``, ``auto_map``, ...).
_CODEGEN_CONFIG_KEYS: tuple[str, ...] = (
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
    "pad_token_id",
)
_CODEGEN_REQUIRED_KEYS = ("vocab_size", "n_embd", "n_layer", "n_head", "rotary_dim")
_CODEGEN_DEFAULT_EOS = 50256  # GPT-2 "<|endoftext|>", CodeGen's bos/eos

# Non-parameter buffers some CodeGen-derived checkpoints persist; dropped, recomputed by the model.
_CODEGEN_BUFFER_SUFFIXES = (
    ".attn.causal_mask",
    ".attn.bias",
    ".attn.masked_bias",
    ".attn.embed_positions",
)
# A decoder tensor is cross-attention related when one of its dotted name parts matches this:
# ``crossattention.*``, ``ln_cross_attn.*``, ``cross_attn.*``, ``enc_dec_attn.*``,
# ``enc_to_dec_proj``.
_CROSS_ATTENTION_PART = re.compile(r"cross|enc_?dec|enc_to_dec", re.IGNORECASE)


def codegen_parameter_names(n_layer: int) -> list[str]:
    """The exact state-dict names of a ``CodeGenForCausalLM`` with ``n_layer`` blocks."""
    names = ["transformer.wte.weight", "transformer.ln_f.weight", "transformer.ln_f.bias"]
    for i in range(n_layer):
        block = f"transformer.h.{i}"
        names += [
            f"{block}.ln_1.weight",
            f"{block}.ln_1.bias",
            f"{block}.attn.qkv_proj.weight",
            f"{block}.attn.out_proj.weight",
            f"{block}.mlp.fc_in.weight",
            f"{block}.mlp.fc_in.bias",
            f"{block}.mlp.fc_out.weight",
            f"{block}.mlp.fc_out.bias",
        ]
    return names + ["lm_head.weight", "lm_head.bias"]


def _is_cross_attention(name: str) -> bool:
    return any(_CROSS_ATTENTION_PART.search(part) for part in name.split("."))


def _codegen_config_from_decoder(
    config: Mapping[str, Any], dtype: torch.dtype | None
) -> dict[str, Any]:
    decoder = config.get("decoder")
    if not isinstance(decoder, Mapping):
        raise CheckpointLayoutError(
            "config.json has no 'decoder' sub-config (codet5p encoder-decoder expected)"
        )
    missing = [key for key in _CODEGEN_REQUIRED_KEYS if key not in decoder]
    if missing:
        raise CheckpointLayoutError(f"decoder sub-config lacks CodeGen keys: {', '.join(missing)}")
    out: dict[str, Any] = {key: decoder[key] for key in _CODEGEN_CONFIG_KEYS if key in decoder}
    # Special ids: CodeGen uses <|endoftext|> (50256) as both bos and eos. The published
    # decoder sub-config says eos 50256 but bos 1 (a T5 leftover, and "!" in CodeGen's
    # vocabulary): bos is written equal to eos, never copied.
    eos = decoder.get("eos_token_id", config.get("eos_token_id"))
    if not isinstance(eos, int):
        eos = _CODEGEN_DEFAULT_EOS
    out["bos_token_id"] = out["eos_token_id"] = eos
    if out.get("pad_token_id") is None and config.get("pad_token_id") is not None:
        out["pad_token_id"] = config["pad_token_id"]
    out.update(
        model_type="codegen",
        architectures=["CodeGenForCausalLM"],
        tie_word_embeddings=False,  # CodeGen's lm_head has its own weight and bias
        use_cache=True,
    )
    if dtype is not None:
        out["dtype"] = str(dtype).removeprefix("torch.")
    return out


def extract_codegen_decoder(
    src: Path, dst: Path, *, max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES
) -> None:
    """Turn a codet5p-2b/6b/16b folder into a standard ``CodeGenForCausalLM`` folder.

    How the decoder is extracted:

    1. ``config.json``: the ``decoder`` sub-config (model_type ``codet5p_module``, CodeGen
       fields) is copied key by key for the CodeGen keys in ``_CODEGEN_CONFIG_KEYS``;
       ``model_type`` becomes ``codegen``, ``architectures`` ``["CodeGenForCausalLM"]``,
       ``tie_word_embeddings`` false, ``dtype`` that of the stored tensors. eos comes from the
       decoder sub-config, else the top-level config, else 50256, and bos is set equal to it
       (the published sub-config's bos 1 is not CodeGen's). ``head_dim``,
       ``add_cross_attention``, ``is_decoder`` and remote-code keys are not copied.
    2. Weights: only tensors named ``decoder.<rest>`` are read; ``<rest>`` is written unchanged.
       Dropped: every ``encoder.*`` tensor (``encoder.wte``, ``encoder.h.N.*``,
       ``encoder.ln_f``: no ``transformer.`` there) and other top-level tensor
       (``enc_to_dec_proj``), every decoder tensor with a name part matching
       ``cross``/``enc_dec``/``enc_to_dec`` (the last block's ``crossattention.q_attn``,
       ``.qkv_proj`` (2*n_embd rows), ``.out_proj`` and ``.causal_mask``: they only run when
       encoder states are given, so decoder-only generation never touches them) and persisted
       attention buffers (``attn.causal_mask``, ``attn.bias``, ``attn.masked_bias``). What
       remains must be exactly
       :func:`codegen_parameter_names` for ``n_layer``; a missing or unexpected tensor raises
       :class:`CheckpointLayoutError` naming it, before anything is written.
    3. Tensors keep their dtype and are streamed: one source shard open at a time, at most
       ``max_shard_bytes`` held before a ``model-XXXXX-of-YYYYY.safetensors`` shard (with
       ``model.safetensors.index.json``) is written; a single shard is ``model.safetensors``.
       Source weights may be safetensors or ``pytorch_model*.bin`` (memory-mapped).
    4. Tokenizer files in :data:`TOKENIZER_FILES` are copied (CodeGen's GPT-2 BPE).

    The folder is built in ``<dst>.partial`` and renamed to ``dst`` when complete; ``dst`` must
    not exist or be empty. The result converts with ``ctranslate2.converters.TransformersConverter``
    and is served with ``ctranslate2.Generator``.
    """
    src, dst = Path(src), Path(dst)
    config = _read_config(src)
    kind = detect_checkpoint_kind(config)
    if kind != "codet5p_encoder_decoder":
        raise UnsupportedCheckpointError(
            f"{src} is a {kind!r} checkpoint, not a codet5p encoder-decoder"
        )
    n_layer = config.get("decoder", {}).get("n_layer")
    if not isinstance(n_layer, int):
        raise CheckpointLayoutError("decoder sub-config has no integer n_layer")

    files = _weight_files(src)
    expected = set(codegen_parameter_names(n_layer))
    wanted: dict[str, str] = {}
    unexpected: list[str] = []
    dropped = 0
    for _, name in _iter_tensor_names(files):
        if not name.startswith("decoder."):
            dropped += 1
            continue
        rest = name[len("decoder.") :]
        if _is_cross_attention(rest) or rest.endswith(_CODEGEN_BUFFER_SUFFIXES):
            dropped += 1
        elif rest in expected:
            wanted[name] = rest
        else:
            unexpected.append(name)
    missing = sorted(f"decoder.{name}" for name in expected - set(wanted.values()))
    if missing or unexpected:
        problems = []
        if missing:
            problems.append(f"missing decoder tensors: {_format_names(missing)}")
        if unexpected:
            problems.append(f"unexpected decoder tensors: {_format_names(unexpected)}")
        raise CheckpointLayoutError(
            f"{src} does not hold a CodeGen decoder ({'; '.join(problems)})"
        )
    logger.info("extracting %d decoder tensors from %s (%d dropped)", len(wanted), src, dropped)

    with atomic_folder(dst) as work:
        partial = work.folder
        writer = _ShardedSafetensorsWriter(partial, max_shard_bytes)
        dtype: torch.dtype | None = None
        for name, tensor in _iter_tensors(files, wanted):
            if name == "transformer.wte.weight":
                dtype = tensor.dtype
            writer.add(name, tensor)
        writer.close()
        _write_json(partial / "config.json", _codegen_config_from_decoder(config, dtype))
        _copy_tokenizer_files(src, partial)


# --------------------------------------------------------------------------------------------
# codet5p-220m-bimodal  ->  T5ForConditionalGeneration
# --------------------------------------------------------------------------------------------

#: T5 config keys copied from the bimodal config (a ``PretrainedConfig`` with T5's shape keys).
_T5_CONFIG_KEYS: tuple[str, ...] = (
    "vocab_size",
    "d_model",
    "d_kv",
    "d_ff",
    "num_layers",
    "num_decoder_layers",
    "num_heads",
    "relative_attention_num_buckets",
    "relative_attention_max_distance",
    "dropout_rate",
    "layer_norm_epsilon",
    "initializer_factor",
    "feed_forward_proj",
    "pad_token_id",
    "eos_token_id",
    "bos_token_id",
    "decoder_start_token_id",
)
_T5_REQUIRED_KEYS = ("vocab_size", "d_model", "d_kv", "d_ff", "num_layers", "num_heads")

_BIMODAL_DROPPED = re.compile(r"^(proj|itm_head)\.(weight|bias)$")
_EMBEDDING_NAMES = ("shared.weight", "encoder.embed_tokens.weight", "decoder.embed_tokens.weight")


def t5_parameter_names(num_layers: int, num_decoder_layers: int, gated: bool) -> list[str]:
    """The state-dict names of a ``T5ForConditionalGeneration`` stack, without
    embeddings/lm_head."""
    wi = (
        ["DenseReluDense.wi_0.weight", "DenseReluDense.wi_1.weight"]
        if gated
        else ["DenseReluDense.wi.weight"]
    )
    names: list[str] = []
    for stack, count in (("encoder", num_layers), ("decoder", num_decoder_layers)):
        for i in range(count):
            block = f"{stack}.block.{i}.layer"
            names += [f"{block}.0.SelfAttention.{p}.weight" for p in "qkvo"]
            names.append(f"{block}.0.layer_norm.weight")
            if i == 0:
                names.append(f"{block}.0.SelfAttention.relative_attention_bias.weight")
            ffn = 1
            if stack == "decoder":
                names += [f"{block}.1.EncDecAttention.{p}.weight" for p in "qkvo"]
                names.append(f"{block}.1.layer_norm.weight")
                ffn = 2
            names += [f"{block}.{ffn}.{w}" for w in wi] + [
                f"{block}.{ffn}.DenseReluDense.wo.weight",
                f"{block}.{ffn}.layer_norm.weight",
            ]
        names.append(f"{stack}.final_layer_norm.weight")
    return names


def _t5_config_from_bimodal(
    config: Mapping[str, Any], tied: bool, dtype: torch.dtype | None
) -> dict[str, Any]:
    missing = [key for key in _T5_REQUIRED_KEYS if key not in config]
    if missing:
        raise CheckpointLayoutError(f"bimodal config lacks T5 keys: {', '.join(missing)}")
    out: dict[str, Any] = {key: config[key] for key in _T5_CONFIG_KEYS if key in config}
    out.setdefault("num_decoder_layers", config["num_layers"])
    out.setdefault("pad_token_id", 0)
    # T5 starts decoding from <pad> unless the checkpoint says otherwise; keep its choice.
    out.setdefault("decoder_start_token_id", out["pad_token_id"])
    out.update(
        model_type="t5",
        architectures=["T5ForConditionalGeneration"],
        is_encoder_decoder=True,
        tie_word_embeddings=tied,
        use_cache=True,
    )
    if dtype is not None:
        out["dtype"] = str(dtype).removeprefix("torch.")
    return out


def _gated(config: Mapping[str, Any]) -> bool:
    return str(config.get("feed_forward_proj", "relu")).startswith("gated-")


def bimodal_to_t5(src: Path, dst: Path) -> None:
    """Turn a codet5p-220m-bimodal folder into a standard ``T5ForConditionalGeneration`` folder.

    The bimodal model is taken to be ``T5ForConditionalGeneration`` plus two heads, with the
    standard T5 state-dict names at the top level (no ``model.`` or other prefix is accepted):

    ==========================================  ==========================================
    source tensor                               written as
    ==========================================  ==========================================
    ``shared.weight``                           ``shared.weight``
    (else ``encoder.embed_tokens.weight``,      ``shared.weight``
    else ``decoder.embed_tokens.weight``)
    ``encoder.embed_tokens.weight``,            dropped -- must equal the shared embedding
    ``decoder.embed_tokens.weight``             (T5 ties them), else an error
    ``encoder.block.N.layer.*``,                same name
    ``encoder.final_layer_norm.weight``
    ``decoder.block.N.layer.*``,                same name
    ``decoder.final_layer_norm.weight``
    ``lm_head.weight``, untied config            ``lm_head.weight`` (required)
    ``lm_head.weight``, tied config              dropped (must equal ``shared.weight``; optional)
    ``proj.weight``/``.bias`` (768->256),       dropped (contrastive embedding head)
    ``itm_head.weight``/``.bias``               dropped (text-code matching head)
    ==========================================  ==========================================

    The published config derives from ``PretrainedConfig`` (model_type ``codet5p_bimodal``) but
    carries T5's shape keys. Encoder/decoder stack names must be exactly those of
    :func:`t5_parameter_names` for the
    config's ``num_layers``/``num_decoder_layers``/``feed_forward_proj``; anything missing or left
    over raises :class:`CheckpointLayoutError` naming the tensors.

    Tied or not follows ``tie_word_embeddings`` in the source config (absent means tied, T5's
    default: decoder outputs are scaled by ``d_model**-0.5`` before the shared lm_head). The
    config keeps ``vocab_size`` (32103 = 32100 + ``[ENC]``, ``[TDEC]``, ``[CDEC]``), the T5 shape
    keys of ``_T5_CONFIG_KEYS`` and the special ids (``decoder_start_token_id`` defaults to
    ``pad_token_id``); ``embed_dim``, ``auto_map`` and other bimodal keys are dropped. Tokenizer
    files (with ``added_tokens.json``/``tokenizer.json`` holding the added tokens) are copied.

    Serve the result with ``ctranslate2.Translator`` (code in the encoder, summary from the
    decoder). Note: under transformers 5, ``T5Config.tie_word_embeddings`` always reads True and
    ct2's T5 loader keys the output scale on it; convert untied results with
    ``conversion.convert_to_ctranslate2`` (which fixes that) or scores and beam search will be wrong
    (greedy argmax is unaffected).
    """
    src, dst = Path(src), Path(dst)
    config = _read_config(src)
    kind = detect_checkpoint_kind(config)
    if kind != "codet5p_bimodal":
        raise UnsupportedCheckpointError(
            f"{src} is a {kind!r} checkpoint, not codet5p-220m-bimodal"
        )
    missing_keys = [key for key in _T5_REQUIRED_KEYS if key not in config]
    if missing_keys:
        raise CheckpointLayoutError(f"bimodal config lacks T5 keys: {', '.join(missing_keys)}")
    tied = config.get("tie_word_embeddings", True) is not False
    num_layers = int(config["num_layers"])
    num_decoder_layers = int(config.get("num_decoder_layers", num_layers))

    files = _weight_files(src)
    stack_names = set(t5_parameter_names(num_layers, num_decoder_layers, _gated(config)))
    present: set[str] = set()
    unexpected: list[str] = []
    for _, name in _iter_tensor_names(files):
        if name in stack_names or name in _EMBEDDING_NAMES or name == "lm_head.weight":
            present.add(name)
        elif not _BIMODAL_DROPPED.match(name):
            unexpected.append(name)
    missing = sorted(stack_names - present)
    # Which one the published .bin stores is not documented (the class lists
    # encoder.embed_tokens.weight as an authorized missing key): any of the three will do.
    embedding_source = next((n for n in _EMBEDDING_NAMES if n in present), None)
    if embedding_source is None:
        missing.append(
            "shared.weight (or encoder.embed_tokens.weight, decoder.embed_tokens.weight)"
        )
    if not tied and "lm_head.weight" not in present:
        missing.append("lm_head.weight (config has tie_word_embeddings=false)")
    if missing or unexpected:
        problems = []
        if missing:
            problems.append(f"missing tensors: {_format_names(missing)}")
        if unexpected:
            problems.append(f"unexpected tensors: {_format_names(unexpected)}")
        raise CheckpointLayoutError(f"{src} is not a codet5p bimodal T5 ({'; '.join(problems)})")
    assert embedding_source is not None  # reported as missing above

    # Embeddings (and a tied lm_head) are small next to the stacks: read them once to check ties.
    must_equal_shared = [n for n in _EMBEDDING_NAMES if n in present and n != embedding_source]
    if tied and "lm_head.weight" in present:
        must_equal_shared.append("lm_head.weight")
    small = dict(_iter_tensors(files, {n: n for n in [embedding_source, *must_equal_shared]}))
    shared = small[embedding_source]
    if shared.shape[0] != config["vocab_size"]:
        raise CheckpointLayoutError(
            f"{embedding_source} has {shared.shape[0]} rows but config vocab_size is "
            f"{config['vocab_size']}"
        )
    for name in must_equal_shared:
        if not torch.equal(small[name], shared):
            raise CheckpointLayoutError(
                f"{name} differs from {embedding_source}; a T5ForConditionalGeneration "
                "cannot hold it"
            )

    with atomic_folder(dst) as work:
        partial = work.folder
        writer = _ShardedSafetensorsWriter(partial, DEFAULT_MAX_SHARD_BYTES)
        writer.add("shared.weight", shared)
        del small
        rest = {n: n for n in sorted(stack_names)}
        if not tied:
            rest["lm_head.weight"] = "lm_head.weight"
        for name, tensor in _iter_tensors(files, rest):
            writer.add(name, tensor)
        writer.close()
        _write_json(partial / "config.json", _t5_config_from_bimodal(config, tied, shared.dtype))
        _copy_tokenizer_files(src, partial)
