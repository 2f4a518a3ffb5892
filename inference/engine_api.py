"""What the server side may use of an engine, and how requests and results travel over HTTP.

`Engine` is the interface `server/` programs against: the in-process `CompletionEngine`
(inference/engine.py) and the team server's client, `RemoteEngine` (inference/remote.py),
both satisfy it, so the pipeline, hovers and post-processing do not know where generation
runs. The server hands over plain text queries (`CompletionQuery`, `SummaryQuery`); the
engine makes tokens of them (`EngineRequests`, shared by both engines), so model families,
modes and special tokens stay on this side.

Requests and results are dataclasses; they are serialised field by field (every field of
`GenerationRequest` and `GenerationResult`, whatever fields are added later), except the
stop rule, which is a `StopRule` (kind, base_indent; line_tokens for "next_line") in
transit. Tuples become JSON lists and are turned back into tuples by looking at the field's
default.
"""

from __future__ import annotations

import dataclasses
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from codet5_lsp.inference.generation import GenerationRequest, GenerationResult, Mode
from codet5_lsp.inference.healing import TokenHealer
from codet5_lsp.inference.models import ModelMetadata
from codet5_lsp.inference.prompts import (
    CompletionQuery,
    StopRule,
    SummaryQuery,
    choose_mode,
    completion_request,
    summary_request,
)


class ModelLocation(Protocol):
    """Where an engine's model lives: a converted folder, or a team server (for doctor)."""

    @property
    def folder(self) -> Path | str: ...


class EngineTokenizer(Protocol):
    """The tokenizer calls prompt building and post-processing make."""

    def tokens(self, text: str) -> list[str]: ...

    def count(self, text: str) -> int: ...

    def decode_tokens(self, tokens: list[str]) -> str: ...


@runtime_checkable
class Engine(Protocol):
    """One loaded model, local or remote: tokenizer and metadata here, generation wherever.

    `submit` never blocks: the future resolves to a GenerationResult (stop_reason "cancelled"
    when `cancel` was set in time) or raises an error saying why (EngineError locally,
    remote.BackendError for a team server). `healer` is the token healer of its tokenizer,
    which prompt building uses (healing.py); the engine runs the healed decoding.

    The server never builds tokens itself: it asks `completion_mode` (which mode the
    `completionMode` setting means for this model: an infill prompt needs the text after the
    cursor), then hands a `CompletionQuery` or `SummaryQuery` (text and budgets) to
    `completion_request` / `summary_request` and submits the result. `can_summarize` says
    whether the model writes summaries (hovers fall back to it when the summary model
    fails)."""

    tokenizer: EngineTokenizer
    healer: TokenHealer
    meta: ModelMetadata
    device: str
    compute_type: str

    @property
    def model(self) -> ModelLocation: ...

    @property
    def description(self) -> str: ...

    @property
    def urgent_work_in_flight(self) -> bool: ...

    @property
    def healthy(self) -> bool:
        """False while a remote backend is down (it says when it is back); a local engine
        is healthy until closed."""

    @property
    def can_summarize(self) -> bool: ...

    def completion_mode(self, setting: str) -> Mode: ...

    def completion_request(self, query: CompletionQuery) -> GenerationRequest: ...

    def summary_request(self, query: SummaryQuery) -> GenerationRequest: ...

    def submit(
        self, request: GenerationRequest, cancel: threading.Event | None = None
    ) -> Future: ...

    def close(self) -> None: ...


class EngineRequests:
    """Text queries to token requests, for any engine with `meta`, `tokenizer` and `healer`
    (the local and the remote engine both mix this in): the one place the server's queries
    meet the model family's modes and special tokens."""

    meta: ModelMetadata
    tokenizer: EngineTokenizer
    healer: TokenHealer

    @property
    def can_summarize(self) -> bool:
        return self.meta.can_summarize

    def completion_mode(self, setting: str) -> Mode:
        """The mode a completion runs in, for the `completionMode` setting."""
        return choose_mode(setting, self.meta.family)

    def completion_request(self, query: CompletionQuery) -> GenerationRequest:
        return completion_request(query, self.meta, self.tokenizer, self.healer)

    def summary_request(self, query: SummaryQuery) -> GenerationRequest:
        return summary_request(query, self.meta, self.tokenizer)


class RequestFormatError(ValueError):
    """A serialised request is malformed; the message names the field."""


def stop_rule_to_json(rule: Any) -> dict[str, Any] | None:
    if rule is None:
        return None
    if not isinstance(rule, StopRule):
        raise RequestFormatError(
            f"stop rule {rule!r} cannot be sent to a remote engine "
            "(use prompts.line_stop_rule, block_stop_rule or next_line_stop_rule)"
        )
    out: dict[str, Any] = {"kind": rule.kind, "base_indent": rule.base_indent}
    if rule.kind == "next_line":  # "line" and "block" travel as they always have
        out["line_tokens"] = rule.line_tokens
    return out


STOP_RULE_KINDS = ("line", "block", "next_line")


def stop_rule_from_json(data: Any) -> StopRule | None:
    if data is None:
        return None
    if not isinstance(data, dict) or data.get("kind") not in STOP_RULE_KINDS:
        raise RequestFormatError(
            "stop_rule: expected {'kind': 'line'|'block'|'next_line', 'base_indent': int, "
            f"'line_tokens': int}}, got {data!r}"
        )
    numbers = {}
    for name in ("base_indent", "line_tokens"):
        value = data.get(name, 0)
        if not isinstance(value, int) or isinstance(value, bool):
            raise RequestFormatError(f"stop_rule.{name}: expected an integer, got {value!r}")
        numbers[name] = value
    return StopRule(data["kind"], numbers["base_indent"], numbers["line_tokens"])


def request_to_json(request: GenerationRequest) -> dict[str, Any]:
    """Every field of the request, as JSON values (the stop rule as kind/base_indent)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(request):
        value = getattr(request, f.name)
        out[f.name] = stop_rule_to_json(value) if f.name == "stop_rule" else _plain(value)
    return out


def request_from_json(data: Any) -> GenerationRequest:
    """The request back from `request_to_json`; unknown keys are ignored (an older server),
    missing ones take their defaults, and a missing required one raises RequestFormatError."""
    if not isinstance(data, dict):
        raise RequestFormatError("expected a JSON object")
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(GenerationRequest):
        if f.name not in data:
            continue
        value = data[f.name]
        if f.name == "stop_rule":
            kwargs[f.name] = stop_rule_from_json(value)
        else:
            kwargs[f.name] = _like_default(f, value)
    try:
        request = GenerationRequest(**kwargs)
    except TypeError as exc:
        raise RequestFormatError(f"incomplete request: {exc}") from None
    _check_request(request)
    return request


def result_to_json(result: GenerationResult) -> dict[str, Any]:
    return {f.name: _plain(getattr(result, f.name)) for f in dataclasses.fields(result)}


def result_from_json(data: Any) -> GenerationResult:
    if not isinstance(data, dict):
        raise RequestFormatError("expected a JSON object for a result")
    known = {f.name: f for f in dataclasses.fields(GenerationResult)}
    kwargs = {k: _like_default(known[k], v) for k, v in data.items() if k in known}
    try:
        return GenerationResult(**kwargs)
    except TypeError as exc:
        raise RequestFormatError(f"incomplete result: {exc}") from None


def metadata_to_json(meta: ModelMetadata) -> dict[str, Any]:
    return dataclasses.asdict(meta)


def metadata_from_json(data: dict[str, Any]) -> ModelMetadata:
    known = {f.name for f in dataclasses.fields(ModelMetadata)}
    return ModelMetadata(**{k: v for k, v in data.items() if k in known})


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


def _like_default(f: dataclasses.Field, value: Any) -> Any:
    """JSON lists back to tuples where the field's default is a tuple."""
    if isinstance(value, list) and isinstance(f.default, tuple):
        return tuple(value)
    return value


def _check_request(request: GenerationRequest) -> None:
    """Types of the fields that reach ctranslate2: a bad one must be a clear 400, not a
    crash on the engine thread."""

    def token_list(name: str, value: Any, optional: bool = False) -> None:
        if value is None and optional:
            return
        if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
            raise RequestFormatError(f"{name}: expected a list of token strings")

    token_list("encoder_tokens", request.encoder_tokens, optional=True)
    token_list("decoder_prefix", request.decoder_prefix)
    if not isinstance(request.end_tokens, tuple) or not all(
        isinstance(t, str) for t in request.end_tokens
    ):
        raise RequestFormatError("end_tokens: expected a list of token strings")
    for name in ("max_new_tokens", "priority"):
        value = getattr(request, name)
        if not isinstance(value, int) or isinstance(value, bool):
            raise RequestFormatError(f"{name}: expected an integer, got {value!r}")
    if request.max_new_tokens < 1:
        raise RequestFormatError("max_new_tokens: must be at least 1")
    if request.mode not in ("decoder", "seq2seq", "infill", "summary", "causal"):
        raise RequestFormatError(f"mode: unknown mode {request.mode!r}")
