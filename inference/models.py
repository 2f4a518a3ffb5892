"""Model resolution: what `--model` names, where its converted CTranslate2 copy lives.

`--model` may be
- a Hugging Face hub id (``Salesforce/codet5p-220m``): downloaded with huggingface_hub on first
  use, then converted; offline, a clear error says to pass a local path;
- a local Hugging Face checkpoint folder (has ``config.json`` and weights): converted offline;
- a converted folder (has ``model.bin``, ``tokenizer.json`` and our ``codet5_lsp.json``): used
  as is.

Conversions are cached in the user cache folder, keyed by model, revision, quantization, the
ctranslate2 version and our conversion format version, so a change of any of them converts
again and nothing stale is reused.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Literal

from codet5_lsp.inference.atomic import atomic_folder

METADATA_FILE = "codet5_lsp.json"
TOKENIZER_FILE = "tokenizer.json"
# Bump when the layout of converted folders or the conversion itself changes.
CONVERSION_FORMAT = 1

Family = Literal["t5", "codegen"]


class ModelError(RuntimeError):
    """A model cannot be found, downloaded, converted or loaded; the message names the path."""


@dataclass(frozen=True)
class ModelMetadata:
    """What the serving side must know about a converted model (saved as codet5_lsp.json)."""

    source: str
    family: Family
    quantization: str
    ctranslate2_version: str
    revision: str | None = None
    # T5 only: a target prefix can go through the decoder in one exact pass, thanks to the
    # decoder self-attention rewrite, or (native_prefix) because the ctranslate2 build that
    # converted it runs T5 prefixes exactly by itself (prefix_probe.native_t5_prefix_is_exact).
    parallel_prefix: bool = False
    native_prefix: bool = False
    bos_token: str | None = "<s>"
    eos_token: str = "</s>"
    pad_token: str = "<pad>"
    sentinel_token: str | None = "<extra_id_0>"
    next_sentinel_token: str | None = "<extra_id_1>"
    conversion_format: int = CONVERSION_FORMAT

    @property
    def family_description(self) -> str:
        """The family in words, for `codet5-lsp doctor`."""
        if self.family == "codegen":
            return (
                "codegen, decoder only (for codet5p-2b/6b/16b: the CodeGen-mono decoder; "
                "CodeT5+ training froze it except the cross-attention, which decoder-only "
                "use drops)"
            )
        return "t5, encoder-decoder"

    @property
    def can_summarize(self) -> bool:
        """Whether this model writes summaries (an encoder-decoder one: CodeGen decoders
        only continue code)."""
        return self.family == "t5"

    def save(self, folder: Path) -> None:
        (folder / METADATA_FILE).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path) -> "ModelMetadata":
        path = folder / METADATA_FILE
        try:
            data = json.loads(path.read_text())
            known = set(cls.__dataclass_fields__)
            return cls(**{k: v for k, v in data.items() if k in known})
        except (OSError, ValueError, TypeError) as exc:
            raise ModelError(f"corrupt or unreadable model metadata {path}: {exc}") from exc


@dataclass(frozen=True)
class ModelFiles:
    """A converted model ready to load: the CTranslate2 folder and what it needs."""

    folder: Path
    metadata: ModelMetadata
    # True when this call converted the folder: a load that then fails removes it again, so a
    # failed attempt leaves nothing in the cache.
    fresh: bool = False

    @property
    def tokenizer_file(self) -> Path:
        return self.folder / TOKENIZER_FILE


def default_cache_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("codet5-lsp")) / "models"


def ctranslate2_version() -> str:
    from importlib.metadata import version

    return version("ctranslate2")


def storage_quantization(compute_type: str) -> str:
    """How a conversion is stored: in the type it will run in (smaller, faster to load).

    Plain "int8" would keep a bf16 checkpoint's other weights in bf16 (int8_bfloat16), which
    the CPU then converts back on every load; store int8_float32 instead. `convert` and
    `serve` both go through this, so they share one cached conversion per device.
    """
    return {"int8": "int8_float32", "default": "none"}.get(compute_type, compute_type)


def check_runtime(device: str, compute_type: str) -> tuple[str, str]:
    """Resolve "auto" and check that ctranslate2 can run `compute_type` on `device`.

    Called before anything is downloaded or converted: a GPU that is not there, or a compute
    type the device cannot run, would otherwise be found only when loading, after a
    conversion that then sits unused in the cache.
    """
    # Here, not at the top: ctranslate2 loads on first use (the server answers first).
    from codet5_lsp.inference.devices import (
        cuda_device_count,
        default_compute_type,
        resolve_device,
        supported_compute_types,
    )

    resolved = resolve_device(device)
    if resolved == "cuda" and cuda_device_count() == 0:
        raise ModelError(
            "--device cuda: ctranslate2 sees no CUDA GPU here (no GPU, or a driver "
            "older than its CUDA runtime); use --device cpu or --device auto"
        )
    compute = default_compute_type(resolved) if compute_type == "auto" else compute_type
    if compute != "default":
        supported = supported_compute_types(resolved)
        if supported and compute not in supported:
            raise ModelError(
                f"--compute-type {compute}: not supported on {resolved} by this "
                f"ctranslate2 build (supported: {', '.join(sorted(supported))})"
            )
    return resolved, compute


def is_hub_id(spec: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", spec)) and not Path(spec).exists()


def check_converted_folder(folder: Path) -> ModelFiles:
    """Validate a converted folder; a missing or partial one raises ModelError naming it."""
    missing = [
        n
        for n in ("model.bin", "config.json", TOKENIZER_FILE, METADATA_FILE)
        if not (folder / n).is_file()
    ]
    if missing:
        raise ModelError(
            f"converted model folder {folder} is incomplete (missing {', '.join(missing)}); "
            "delete it and convert again with `codet5-lsp convert`"
        )
    if (folder / "model.bin").stat().st_size == 0:
        raise ModelError(f"converted model {folder / 'model.bin'} is empty (partial copy?)")
    return ModelFiles(folder=folder, metadata=ModelMetadata.load(folder))


def cache_key(source: str, revision: str | None, quantization: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "--", source.strip("/"))[-80:]
    digest = hashlib.sha256(f"{source}\0{revision}".encode()).hexdigest()[:10]
    rev = (revision or "local")[:12]
    # A patched ctranslate2 may carry the version of the release it patches: its conversions
    # differ (no T5 rewrite), so they get their own folder.
    native = "--native-prefix" if _native_prefix() else ""
    return (
        f"{slug}--{rev}--{digest}--{quantization}--ct2-{ctranslate2_version()}"
        f"--f{CONVERSION_FORMAT}{native}"
    )


def _native_prefix() -> bool:
    from codet5_lsp.inference import prefix_probe  # loads ctranslate2: only when needed

    return prefix_probe.native_t5_prefix_is_exact()


def local_checkpoint_revision(folder: Path) -> str:
    """A fingerprint of a local checkpoint (names, sizes, mtimes), so edits re-convert."""
    h = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        if path.is_file():
            st = path.stat()
            h.update(f"{path.name}\0{st.st_size}\0{int(st.st_mtime)}\n".encode())
    return h.hexdigest()[:12]


def resolve_model(
    spec: str,
    *,
    quantization: str,
    revision: str | None = None,
    cache_dir: Path | None = None,
    offline: bool = False,
    log: Callable[[str], None] = lambda _msg: None,
) -> ModelFiles:
    """Turn `--model` into a converted folder, downloading and converting when needed."""
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    path = Path(spec).expanduser()
    if path.exists():
        path = path.resolve()
        if not path.is_dir():
            raise ModelError(f"model path {path} is not a folder")
        if (path / "model.bin").exists():
            return check_converted_folder(path)
        if (path / "config.json").is_file():
            rev = local_checkpoint_revision(path)
            target = cache_dir / cache_key(str(path), rev, quantization)
            if _is_complete(target):
                return check_converted_folder(target)
            log(f"converting {path} ({quantization}) into {target}")
            files = convert_checkpoint(
                path, target, quantization=quantization, source=str(path), revision=rev
            )
            return replace(files, fresh=True)
        raise ModelError(
            f"model folder {path} has neither a CTranslate2 model (model.bin) "
            "nor a Hugging Face checkpoint (config.json)"
        )
    if not is_hub_id(spec):
        raise ModelError(f"model {spec!r} is neither an existing folder nor a hub id (owner/name)")

    # Hub id: reuse any finished conversion of this id and revision without touching the network.
    target = cache_dir / cache_key(spec, revision, quantization)
    if _is_complete(target):
        return check_converted_folder(target)
    checkpoint = download_checkpoint(spec, revision=revision, offline=offline, log=log)
    log(f"converting {spec} ({quantization}) into {target}")
    files = convert_checkpoint(
        checkpoint, target, quantization=quantization, source=spec, revision=revision
    )
    return replace(files, fresh=True)


def available_without_download(
    spec: str, *, quantization: str, revision: str | None = None, cache_dir: Path | None = None
) -> bool:
    """Whether `spec` can be loaded without the network: a local folder, or a hub id already
    converted in the cache (what `doctor` checks before it tries a model it need not fetch)."""
    if Path(spec).expanduser().exists():
        return True
    if not is_hub_id(spec):
        return False
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    return _is_complete(cache_dir / cache_key(spec, revision, quantization))


def _is_complete(folder: Path) -> bool:
    return (folder / METADATA_FILE).is_file() and (folder / "model.bin").is_file()


def download_checkpoint(
    repo_id: str, *, revision: str | None, offline: bool, log: Callable[[str], None]
) -> Path:
    """Fetch a checkpoint from the hub (with huggingface_hub's progress bars).

    Failures become one ModelError in our words: the hub's own messages name its internals
    (``local_files_only``, ``HF_HUB_OFFLINE``) that a user of this command never set.
    """
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:  # pragma: no cover - huggingface_hub is a dependency
        raise ModelError("huggingface_hub is not installed") from exc
    patterns = ["*.json", "*.txt", "*.model", "*.safetensors", "*.py"]
    offline = offline or os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in (
        "1",
        "true",
        "yes",
        "on",
    )
    try:
        if not offline:
            log(f"downloading {repo_id} from the Hugging Face hub")
        folder = snapshot_download(
            repo_id, revision=revision, allow_patterns=patterns, local_files_only=offline
        )
        if not any(Path(folder).glob("*.safetensors")):
            folder = snapshot_download(
                repo_id,
                revision=revision,
                allow_patterns=patterns + ["*.bin"],
                local_files_only=offline,
            )
        return Path(folder)
    except Exception as exc:
        raise ModelError(_download_failure(repo_id, revision, offline, exc)) from exc


def _download_failure(repo_id: str, revision: str | None, offline: bool, exc: Exception) -> str:
    name = type(exc).__name__
    local = "pass a local checkpoint folder or an already converted model folder instead"
    if offline:
        return (
            f"{repo_id} is not converted yet and not in the local Hugging Face cache, and "
            f"this run is offline (--offline or HF_HUB_OFFLINE=1); {local}"
        )
    if name in ("RepositoryNotFoundError", "GatedRepoError"):
        return f"{repo_id} is not a model on the Hugging Face hub (or it needs a login); {local}"
    if name == "RevisionNotFoundError":
        return f"{repo_id} has no revision {revision!r} on the Hugging Face hub"
    if (
        name
        in (
            "LocalEntryNotFoundError",
            "ConnectionError",
            "ConnectTimeout",
            "ReadTimeout",
            "OfflineModeIsEnabled",
        )
        or "connect" in str(exc).lower()
    ):
        return (
            f"cannot download {repo_id}: the Hugging Face hub cannot be reached (offline?); {local}"
        )
    first_line = (str(exc).strip().splitlines() or [""])[0][:200]
    return f"cannot download {repo_id} ({name}: {first_line}); {local}"


def convert_checkpoint(
    src: Path,
    dst: Path,
    *,
    quantization: str,
    source: str,
    revision: str | None,
    parallel_prefix: bool = True,
) -> ModelFiles:
    """Convert a Hugging Face folder into a complete, self-describing CTranslate2 folder: the
    one conversion entry point (`codet5-lsp convert`, `resolve_model`, tests).

    Any supported layout (checkpoints.detect_checkpoint_kind): a CodeT5+ one is first rewritten
    into a standard folder (`checkpoints`), then converted (`conversion.convert_to_ctranslate2`),
    and the tokenizer file and our metadata are added. Written into a temporary sibling and
    renamed at the end (`atomic.atomic_folder`), so an interrupted conversion never leaves a
    folder that looks complete (and `atomic.discard_unfinished_folders` removes its work at a
    hard exit); an existing `dst` is replaced.
    """
    try:
        from transformers import AutoTokenizer

        from codet5_lsp.inference import checkpoints, conversion
    except ImportError as exc:
        raise ModelError(
            "converting a Hugging Face checkpoint needs the 'convert' extra: "
            "pip install 'codet5-lsp[convert]' (or pass an already converted model folder)"
        ) from exc
    src = Path(src)
    try:
        config = json.loads((src / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {src / 'config.json'}: {exc}") from exc
    try:
        kind = checkpoints.detect_checkpoint_kind(config)
    except checkpoints.UnsupportedCheckpointError as exc:
        raise ModelError(f"{src}: {exc}") from exc
    check_checkpoint_files(src)
    quant = None if quantization in ("none", "", None) else quantization
    dst = Path(dst)
    try:
        with atomic_folder(dst, overwrite=True) as work:
            model_dir = work.folder
            hf_dir = src
            if kind in ("t5", "codet5p_bimodal"):
                if kind == "codet5p_bimodal":
                    hf_dir = work.scratch / "t5"
                    checkpoints.bimodal_to_t5(src, hf_dir)
                native = parallel_prefix and _native_prefix()
                family: Family = "t5"
            else:
                if kind == "codet5p_encoder_decoder":
                    hf_dir = work.scratch / "codegen"
                    checkpoints.extract_codegen_decoder(src, hf_dir)
                family = "codegen"
                parallel_prefix = native = False
            conversion.convert_to_ctranslate2(
                hf_dir, model_dir, quant, parallel_prefix=parallel_prefix and not native, force=True
            )
            tokenizer = AutoTokenizer.from_pretrained(str(hf_dir))
            backend = getattr(tokenizer, "backend_tokenizer", None)
            if backend is None:
                raise ModelError(f"{src} has no fast tokenizer that can be saved as tokenizer.json")
            backend.save(str(model_dir / TOKENIZER_FILE))
            meta = _metadata_for(
                family,
                tokenizer,
                source=source,
                revision=revision,
                quantization=quantization or "none",
                parallel_prefix=parallel_prefix and family == "t5",
                native_prefix=native,
            )
            meta.save(model_dir)
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"conversion of {src} failed: {type(exc).__name__}: {exc}") from exc
    return check_converted_folder(dst)


def check_checkpoint_files(src: Path) -> None:
    """Name the file when a checkpoint folder lacks its tokenizer or holds a cut-off weights file.

    The libraries would fail later with messages that name neither (a tokenizer class that
    cannot start, "incomplete metadata" from safetensors).
    """
    names = {p.name for p in src.iterdir()}
    if "tokenizer.json" not in names and "spiece.model" not in names:
        pair = ("vocab.json", "merges.txt")
        missing = [n for n in pair if n not in names]
        if missing:
            raise ModelError(
                f"checkpoint folder {src} has no tokenizer: missing "
                f"{' and '.join(missing)} (or a tokenizer.json)"
            )
    weights: list[Path] = []
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if index_name in names:
            index = src / index_name
            try:
                shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
                raise ModelError(f"cannot read the weights index {index}: {exc}") from exc
            weights = [src / shard for shard in shards]
            absent = [str(w) for w in weights if not w.is_file()]
            if absent:
                raise ModelError(f"weights file {absent[0]} is missing (listed in {index})")
            break
    else:
        weights = [src / n for n in ("model.safetensors", "pytorch_model.bin") if n in names]
    if not weights:
        raise ModelError(
            f"checkpoint folder {src} has no weights (model.safetensors or pytorch_model.bin)"
        )
    for path in weights:
        problem = _weights_file_problem(path)
        if problem:
            raise ModelError(f"weights file {path} {problem}; download or copy it again")


def _weights_file_problem(path: Path) -> str | None:
    """Why a weights file cannot be whole (size against its own header), or None."""
    size = path.stat().st_size
    if path.suffix == ".safetensors":
        with path.open("rb") as f:
            head = f.read(8)
            if len(head) < 8:
                return f"is truncated ({size} bytes)"
            header_len = int.from_bytes(head, "little")
            if header_len > size - 8:
                return f"is truncated ({size} bytes; its header alone needs {header_len + 8})"
            try:
                header = json.loads(f.read(header_len))
                end = max(
                    (int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"),
                    default=0,
                )
            except (ValueError, KeyError, TypeError, IndexError):
                return "has a corrupt header"
        expected = 8 + header_len + end
        if size < expected:
            return f"is truncated ({size} bytes of {expected})"
        return None
    import zipfile

    if zipfile.is_zipfile(path):
        return None
    with path.open("rb") as f:
        first = f.read(1)
    # torch's legacy (pre-zip) format is a pickle; a cut-off zip is not a zip any more.
    return None if first == b"\x80" else f"is truncated or not a torch checkpoint ({size} bytes)"


def _metadata_for(family: Family, tokenizer, **kw) -> ModelMetadata:
    if family == "codegen":
        eos = tokenizer.eos_token or "<|endoftext|>"
        return ModelMetadata(
            family="codegen",
            ctranslate2_version=ctranslate2_version(),
            bos_token=None,
            eos_token=eos,
            pad_token=eos,
            sentinel_token=None,
            next_sentinel_token=None,
            **kw,
        )
    vocab = tokenizer.get_vocab()
    return ModelMetadata(
        family="t5",
        ctranslate2_version=ctranslate2_version(),
        bos_token=tokenizer.bos_token or "<s>",
        eos_token=tokenizer.eos_token or "</s>",
        pad_token=tokenizer.pad_token or "<pad>",
        sentinel_token="<extra_id_0>" if "<extra_id_0>" in vocab else None,
        next_sentinel_token="<extra_id_1>" if "<extra_id_1>" in vocab else None,
        **kw,
    )
