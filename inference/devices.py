"""Devices and compute types: what ctranslate2 can run here, and the defaults we pick."""

from __future__ import annotations

import ctranslate2


def cuda_device_count() -> int:
    try:
        return ctranslate2.get_cuda_device_count()
    except Exception:  # pragma: no cover - broken CUDA install
        return 0


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if cuda_device_count() > 0 else "cpu"
    return device


def supported_compute_types(device: str) -> set[str]:
    try:
        return set(ctranslate2.get_supported_compute_types(device))
    except Exception:
        return set()


def default_compute_type(device: str) -> str:
    """Fastest exact-enough type per device, from our measurements (docs/performance.md).

    CPU: int8 (int8 matmuls; several times faster than float32 on 2 cores). CUDA: bfloat16
    where supported, because T5 in float16 can overflow to NaN (ctranslate2 #1074); else
    float32. int8 on an H100 is slower than 16-bit at batch 1.
    """
    if device == "cpu":
        return "int8"
    types = supported_compute_types(device)
    if "bfloat16" in types:
        return "bfloat16"
    return "float32"


def ctranslate2_info() -> dict[str, object]:
    return {
        "ctranslate2": ctranslate2.__version__,
        "cuda_devices": cuda_device_count(),
        "cpu_compute_types": sorted(supported_compute_types("cpu")),
        "cuda_compute_types": (
            sorted(supported_compute_types("cuda")) if cuda_device_count() else []
        ),
    }
