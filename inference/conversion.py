"""Convert a Hugging Face T5 checkpoint (CodeT5+) into a CTranslate2 model folder.

Only the CTranslate2 model (``model.bin``, ``config.json``, vocabulary) is written here; the
tokenizer file and our metadata are added by ``models.convert_checkpoint``. Needs the
``convert`` extra (torch, transformers).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ctranslate2.converters import TransformersConverter
from ctranslate2.specs import model_spec

from codet5_lsp.inference.checkpoints import align_t5_tie_flag_with_output_scale
from codet5_lsp.inference.t5_prefix_fix import apply_parallel_prefix_fix

QUANTIZATIONS = ("int8", "int8_float16", "int8_bfloat16", "int8_float32",
                 "float16", "bfloat16", "float32")


class T5Converter(TransformersConverter):
    """``TransformersConverter`` with our two T5 corrections.

    - ``load_model``: transformers 5 reports every T5 as tied; ct2 would then scale the decoder
      output of an untied checkpoint (bimodal) wrongly, see
      ``checkpoints.align_t5_tie_flag_with_output_scale``.
    - ``_load`` (the one hook between building the spec and ``validate``/``optimize``/``save``):
      with ``parallel_prefix``, rewrite the decoder self-attention so a forced prefix can go
      through in one exact pass (``t5_prefix_fix``).
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
        if self.parallel_prefix:
            apply_parallel_prefix_fix(spec)
        return spec


def convert_t5_checkpoint(src: Path, dst: Path, quantization: str | None, *,
                          parallel_prefix: bool = True, force: bool = False) -> None:
    """Convert the ``T5ForConditionalGeneration`` folder ``src`` into a CTranslate2 model at ``dst``.

    ``parallel_prefix`` applies the T5 prefix rewrite (``t5_prefix_fix``) so that a forced
    decoder prefix can go through the decoder in one exact pass. The model is written into a
    temporary sibling of ``dst`` and renamed into place, so a crash never leaves half a model;
    an existing ``dst`` is replaced only with ``force``.
    """
    if quantization is not None and quantization not in QUANTIZATIONS:
        raise ValueError(f"unknown quantization {quantization!r}; expected one of {QUANTIZATIONS}")
    src, dst = Path(src), Path(dst)
    if dst.exists() and not force:
        raise FileExistsError(f"{dst} already exists (pass force=True to replace it)")
    converter = T5Converter(str(src), parallel_prefix=parallel_prefix)
    dst.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dst.name}.converting-", dir=dst.parent))
    try:
        out = work / "model"
        converter.convert(str(out), quantization=quantization)
        if dst.exists():
            old = work / "old"
            os.replace(dst, old)  # rename away first: os.replace cannot overwrite a folder
        os.replace(out, dst)
    finally:
        shutil.rmtree(work, ignore_errors=True)
