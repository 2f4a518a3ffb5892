"""Model resolution, conversion cache, tokenizer fidelity, and clear errors for bad models."""

from __future__ import annotations

import json
import shutil

import pytest

from codet5_lsp.inference.models import (
    METADATA_FILE,
    ModelError,
    cache_key,
    check_converted_folder,
    is_hub_id,
    resolve_model,
)
from codet5_lsp.inference.tokenizer import CodeTokenizer, TokenizerError


def test_converted_folder_is_complete_and_described(labmodel_float32):
    folder = labmodel_float32.folder
    for name in ("model.bin", "config.json", "tokenizer.json", METADATA_FILE):
        assert (folder / name).is_file(), name
    meta = json.loads((folder / METADATA_FILE).read_text())
    assert meta["family"] == "t5"
    assert meta["quantization"] == "float32"
    assert meta["eos_token"] == "</s>" and meta["sentinel_token"] == "<extra_id_0>"


def test_second_resolution_reuses_the_conversion(labmodel_path, model_cache_dir, labmodel_float32):
    before = (labmodel_float32.folder / "model.bin").stat().st_mtime_ns
    again = resolve_model(str(labmodel_path), quantization="float32", cache_dir=model_cache_dir)
    assert again.folder == labmodel_float32.folder
    assert (again.folder / "model.bin").stat().st_mtime_ns == before


def test_a_converted_folder_is_used_as_is(labmodel_float32, tmp_path):
    files = resolve_model(str(labmodel_float32.folder), quantization="int8", cache_dir=tmp_path)
    assert files.folder == labmodel_float32.folder
    assert not any(tmp_path.iterdir())  # nothing converted again


def test_cache_key_changes_with_what_matters():
    base = cache_key("Salesforce/codet5p-220m", None, "int8")
    assert base == cache_key("Salesforce/codet5p-220m", None, "int8")
    assert base != cache_key("Salesforce/codet5p-220m", "abc", "int8")
    assert base != cache_key("Salesforce/codet5p-220m", None, "float16")
    assert base != cache_key("Salesforce/codet5p-770m", None, "int8")


@pytest.mark.parametrize(
    "spec, hub",
    [
        ("Salesforce/codet5p-220m", True),
        ("org/model.v2", True),
        ("/abs/path", False),
        ("a/b/c", False),
        ("plain", False),
    ],
)
def test_hub_id_detection(spec, hub):
    assert is_hub_id(spec) is hub


def test_offline_hub_id_says_to_pass_a_local_path(tmp_path):
    with pytest.raises(ModelError, match="local checkpoint folder"):
        resolve_model(
            "Salesforce/codet5p-220m", quantization="int8", cache_dir=tmp_path, offline=True
        )


def test_missing_path_is_named(tmp_path):
    missing = tmp_path / "nowhere" / "model"
    with pytest.raises(ModelError, match=str(missing)):
        resolve_model(str(missing), quantization="int8", cache_dir=tmp_path)


def test_folder_without_model_is_named(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="neither a CTranslate2 model"):
        resolve_model(str(tmp_path / "empty"), quantization="int8", cache_dir=tmp_path)


def test_partial_conversion_is_rejected_with_its_path(labmodel_float32, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(labmodel_float32.folder, partial)
    (partial / "tokenizer.json").unlink()
    with pytest.raises(ModelError, match="tokenizer.json"):
        check_converted_folder(partial)


def test_corrupt_model_fails_to_load_with_its_path(labmodel_float32, tmp_path):
    from codet5_lsp.inference.engine import CompletionEngine

    corrupt = tmp_path / "corrupt"
    shutil.copytree(labmodel_float32.folder, corrupt)
    (corrupt / "model.bin").write_bytes(b"\x01\x02not a model" * 50)
    with pytest.raises(ModelError, match=str(corrupt)):
        CompletionEngine(check_converted_folder(corrupt), device="cpu")


def test_corrupt_metadata_is_named(labmodel_float32, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(labmodel_float32.folder, broken)
    (broken / METADATA_FILE).write_text("{not json")
    with pytest.raises(ModelError, match=METADATA_FILE):
        check_converted_folder(broken)


def test_serving_tokenizer_equals_transformers(labmodel_path, labmodel_float32):
    from transformers import AutoTokenizer

    reference = AutoTokenizer.from_pretrained(str(labmodel_path))
    ours = CodeTokenizer(labmodel_float32.tokenizer_file)
    samples = [
        "def f(x):\n    return x + 1\n",
        "\tif (a && b) { return 'ü'; }  // 日本語 😀\r\n",
        "class A:\n    '''doc'''\n    x: int = 0x1F\n",
        "<extra_id_0> </s> <s>",
    ]
    for text in samples:
        expected = reference(text, add_special_tokens=False).input_ids
        assert ours.ids(text) == expected
        assert ours.tokens(text) == reference.convert_ids_to_tokens(expected)
        assert ours.decode_tokens(ours.tokens(text)).replace("<extra_id_0>", "").replace(
            "</s>", ""
        ).replace("<s>", "") == reference.decode(expected, skip_special_tokens=True)


def test_missing_tokenizer_file_is_named(tmp_path):
    with pytest.raises(TokenizerError, match="tokenizer.json"):
        CodeTokenizer(tmp_path / "tokenizer.json")
