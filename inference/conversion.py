"""The CTranslate2 step of a conversion: a standard Hugging Face folder to a CTranslate2 model.

``models.convert_checkpoint`` is the one public entry (the CLI's ``convert``, model loading and
the tests go through it): it recognises the checkpoint, rewrites a CodeT5+ layout with
``checkpoints``, runs ``convert_to_ctranslate2`` here, and adds the tokenizer file and our
metadata. This module writes only the CTranslate2 model (``model.bin``, ``config.json``,
vocabulary), for T5 and CodeGen folders alike, with our two corrections. Needs the ``convert``
extra (torch, transformers).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ctranslate2.converters import TransformersConverter
from ctranslate2.specs import model_spec, transformer_spec

from codet5_lsp.inference.atomic import atomic_folder
from codet5_lsp.inference.t5_prefix_fix import apply_parallel_prefix_fix

QUANTIZATIONS = (
    "int8",
    "int8_float16",
    "int8_bfloat16",
    "int8_float32",
    "float16",
    "bfloat16",
    "float32",
)


def align_t5_tie_flag_with_output_scale(model: Any) -> None:
    """Make ``model.config.tie_word_embeddings`` say whether T5 scales its decoder outputs.

    transformers 5 forces ``T5Config.tie_word_embeddings`` to True and records the real choice
    in ``scale_decoder_outputs``, while ct2 4.8.5's T5 loader scales decoder outputs by
    ``d_model**-0.5`` whenever ``tie_word_embeddings`` is true. For an untied T5 (a bimodal
    checkpoint saved with ``tie_word_embeddings: false``) that scale is wrong: greedy argmax is
    unchanged but every score, sampling and beam search are off. No-op for configs without
    ``scale_decoder_outputs`` (CodeGen, older transformers).
    """
    scale = getattr(model.config, "scale_decoder_outputs", None)
    if scale is not None:
        model.config.tie_word_embeddings = bool(scale)


class _Converter(TransformersConverter):
    """``TransformersConverter`` with our two corrections.

    - ``load_model``: the T5 tie flag (``align_t5_tie_flag_with_output_scale``).
    - ``_load`` (the one hook between building the spec and ``validate``/``optimize``/``save``):
      with ``parallel_prefix``, rewrite a T5 decoder's self-attention so a forced prefix can
      go through in one exact pass (``t5_prefix_fix``); decoder-only specs are left alone.
    """

    def __init__(self, model_name_or_path: str, *, parallel_prefix: bool = True):
        super().__init__(model_name_or_path)
        self.parallel_prefix = parallel_prefix

    def load_model(self, model_class, model_name_or_path, **kwargs):
        model = super().load_model(model_class, model_name_or_path, **kwargs)
        align_t5_tie_flag_with_output_scale(model)
        return model

    def _load(self) -> model_spec.ModelSpec:
        spec = super()._load()
        if self.parallel_prefix and isinstance(spec, transformer_spec.TransformerSpec):
            apply_parallel_prefix_fix(spec)
        return spec


def convert_to_ctranslate2(
    src: Path,
    dst: Path,
    quantization: str | None = None,
    *,
    parallel_prefix: bool = True,
    force: bool = False,
) -> Path:
    """Convert the standard Hugging Face folder ``src`` (T5 or CodeGen) into a CTranslate2 model
    at ``dst``; returns ``dst``.

    ``parallel_prefix`` applies the T5 prefix rewrite (``t5_prefix_fix``) so that a forced
    decoder prefix can go through the decoder in one exact pass. The model is written into a
    temporary sibling of ``dst`` and renamed into place (``atomic.atomic_folder``), so a crash
    never leaves half a model; an existing ``dst`` is replaced only with ``force``.
    """
    if quantization is not None and quantization not in QUANTIZATIONS:
        raise ValueError(f"unknown quantization {quantization!r}; expected one of {QUANTIZATIONS}")
    src, dst = Path(src), Path(dst)
    if dst.exists() and not force:
        raise FileExistsError(f"{dst} already exists (pass force=True to replace it)")
    converter = _Converter(str(src), parallel_prefix=parallel_prefix)
    with atomic_folder(dst, overwrite=True) as work:
        converter.convert(str(work.folder), quantization=quantization, force=True)
    return dst
