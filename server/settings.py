"""One typed settings object, fed by CLI flags, initializationOptions and
`workspace/didChangeConfiguration` (in that order; later sources override earlier ones)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any, Literal, get_args, get_type_hints

from codet5_lsp.server.errors import InvalidParamsError

CompletionMode = Literal["auto", "decoder", "seq2seq", "infill"]
SpeculationSource = Literal["auto", "separate", "same_call"]
Device = Literal["auto", "cpu", "cuda"]
ComputeType = Literal[
    "auto",
    "default",
    "int8",
    "int8_float32",
    "int8_float16",
    "int8_bfloat16",
    "float16",
    "bfloat16",
    "float32",
]

DEFAULT_MODEL = "Salesforce/codet5p-220m"
DEFAULT_SUMMARY_MODEL = "Salesforce/codet5p-220m-bimodal"


class SettingsError(ValueError, InvalidParamsError):
    """A setting has the wrong type or an unknown value; the message names the key."""


@dataclass(frozen=True)
class Settings:
    model: str = DEFAULT_MODEL
    revision: str | None = None
    device: Device = "auto"
    compute_type: ComputeType = "auto"
    completion_mode: CompletionMode = "auto"
    # Encoder input for the decoder-only mode; CodeT5+ released no id for the paper's [CLM].
    decoder_marker: str = "<s></s>"
    # Prefix tokens of context; 0: per device (pipeline.CONTEXT_BUDGETS: 256 on CPU, where
    # the one-pass prefix cost grows with its square, 384 on a GPU).
    max_context_tokens: int = 0
    max_suffix_tokens: int = 128
    max_new_tokens: int = 48
    max_multiline_tokens: int = 128
    # Token healing (inference/healing.py): the model re-writes the partial token before the
    # cursor, so suggestions continue what was typed (no stray space after indentation).
    token_healing: bool = True
    # Inline suggestions per request (n-best, cycled with Alt+] in VS Code). 0: per device,
    # 1 on CPU (each alternative costs about one more continuation there), 3 on a GPU.
    alternatives: int = 0
    # Speculation (server/speculation.py): after a line suggestion is shown, compute the line
    # that follows it at background priority, so accept + Enter is served without waiting
    # for the model. Depth: lines computed ahead of the one shown (1 or 2; 0 is off too).
    speculation: bool = True
    speculation_depth: int = 1
    # Where the speculated next line comes from: "separate", a background model call on the
    # document as it would be after accept + Enter; "same_call", the shown request itself
    # generates on to the end of the next line; "auto": per device
    # (speculation.SOURCE_BY_DEVICE, from bench/results/speculation-source-cpu.md).
    speculation_source: SpeculationSource = "auto"
    summary_model: str = DEFAULT_SUMMARY_MODEL
    summary_max_tokens: int = 48
    summaries_enabled: bool = True
    # Background summaries of neighbouring functions start once the editor has been quiet
    # this long, so they do not compete with the hovers and keystrokes that follow.
    summary_prefetch_delay_ms: int = 400
    debounce_ms: int = 75
    debounce_max_ms: int = 250
    request_timeout_ms: int = 3000
    max_file_bytes: int = 2_000_000
    disabled_languages: tuple[str, ...] = ()
    intra_threads: int = 0
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    cache_dir: str | None = None
    offline: bool = False
    # Team deployment (docs/team.md): generation on a team server at this URL instead of a
    # local model; the token comes from this file, else $CODET5_LSP_TOKEN.
    backend: str | None = None
    backend_token_file: str | None = None

    def merged(self, overrides: dict[str, Any] | None) -> "Settings":
        """Return a copy with `overrides` applied (camelCase or snake_case keys).

        Unknown keys are ignored (clients send whole sections); a known key with a bad value
        raises SettingsError, naming it, and nothing is changed.
        """
        if not overrides:
            return self
        hints = get_type_hints(Settings)
        known = {f.name for f in fields(self)}
        updates: dict[str, Any] = {}
        for raw_key, value in overrides.items():
            key = _snake(raw_key)
            if key not in known or value is None and key not in _NULLABLE:
                continue
            updates[key] = _coerce(key, value, hints[key])
            if key in _MAXIMA and updates[key] > _MAXIMA[key]:
                raise SettingsError(f"setting {key!r}: at most {_MAXIMA[key]}, got {value!r}")
        return dataclasses.replace(self, **updates)


# Settings that a client may set back to null (their default).
_NULLABLE = ("revision", "cache_dir", "backend", "backend_token_file")
# Upper bounds of integer settings that have one.
_MAXIMA = {"speculation_depth": 2}


def _snake(key: str) -> str:
    out = []
    for ch in key:
        if ch.isupper():
            out.append("_" + ch.lower())
        else:
            out.append(ch)
    return "".join(out).replace("-", "_")


def _coerce(key: str, value: Any, hint: Any) -> Any:
    args = get_args(hint)
    origin = getattr(hint, "__origin__", None)
    if value is None:
        return None
    if origin is Literal or (
        args and all(isinstance(a, str) for a in args) and str(hint).startswith("typing.Literal")
    ):
        if value not in args:
            raise SettingsError(f"setting {key!r}: {value!r} is not one of {', '.join(args)}")
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
            return value.lower() in ("true", "1")
        raise SettingsError(f"setting {key!r}: expected true/false, got {value!r}")
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise SettingsError(f"setting {key!r}: expected an integer, got {value!r}")
        try:
            number = int(value)
        except ValueError:
            raise SettingsError(f"setting {key!r}: expected an integer, got {value!r}") from None
        if number < 0:
            raise SettingsError(f"setting {key!r}: must be >= 0, got {number}")
        return number
    if origin is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise SettingsError(f"setting {key!r}: expected a list of strings, got {value!r}")
        return tuple(value)
    # str or str | None
    if not isinstance(value, str):
        raise SettingsError(f"setting {key!r}: expected a string, got {value!r}")
    return value
