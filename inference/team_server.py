"""The team server: one pool of GPU (or CPU) replicas serving many editors, on Ray Serve.

Editors keep documents, context, the type-through cache and post-processing beside them
(`codet5-lsp serve --backend URL`, inference/remote.py); only generation runs here. A Ray
Serve deployment holds the engine (inference/engine.py), one replica per GPU (or CPU replicas
whose `intra_threads` match their `num_cpus`). ctranslate2 does not merge separate calls into
a batch, so requests from different users are gathered with `@serve.batch` and handed to the
engine together; its queue runs compatible ones (same mode and forced-prefix length) as one
`translate_batch` whenever its thread is free, heals prompts and ranks alternatives exactly
as a local engine does, and lets completions preempt background summaries.

HTTP (Ray Serve's proxy, loopback by default):
- `GET /health`: no token; 200 once the replica's models are loaded.
- `GET /v1/model?role=completion|summary[&tokenizer=0]`: the model's metadata, device,
  compute type, limits and `tokenizer.json` (editors build prompts locally with it).
- `POST /v1/completions`, `POST /v1/summaries`: `{"request": <GenerationRequest as JSON>,
  "stream": false}`; the whole result as JSON, or with `"stream": true` NDJSON lines
  `{"text": delta}` then `{"result": {...}}`.
Every route but /health needs `Authorization: Bearer TOKEN`, checked before the body is
read; the tokens file holds `name:token` lines, and only their SHA-256 digests leave this
process. Logs and per-user metrics name the user, never the token.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import hashlib
import hmac
import json
import logging
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from codet5_lsp.inference.engine_api import (
    RequestFormatError,
    metadata_to_json,
    request_from_json,
    result_to_json,
)
from codet5_lsp.inference.generation import GenerationRequest, GenerationResult

log = logging.getLogger("codet5_lsp.team")

APP_NAME = "codet5"
DEPLOYMENT_NAME = "CodeT5Engine"
ROLES = ("completion", "summary")
ROUTE_ROLES = {"/v1/completions": "completion", "/v1/summaries": "summary"}
# Requests per ctranslate2 call unless --max-batch-size says otherwise. On a 2-core CPU,
# batching users' requests measured no throughput gain and longer waits
# (bench/results/team-cpu.md); a GPU's decoding steps are cheap to widen.
DEFAULT_MAX_BATCH = {"cuda": 16, "cpu": 1}


class TokensFileError(ValueError):
    """The tokens file cannot be used; the message names the file and line, never a token."""


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def load_tokens(path: Path) -> dict[str, str]:
    """`name:token` lines (blank lines and `#` comments skipped) as {sha256(token): name}."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TokensFileError(f"cannot read tokens file {path}: {exc}") from None
    digests: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, token = line.partition(":")
        name, token = name.strip(), token.strip()
        if not sep or not name or not token:
            raise TokensFileError(f"{path}:{number}: expected name:token")
        if not re.fullmatch(r"[\w.@-]+", name):
            raise TokensFileError(
                f"{path}:{number}: user name {name!r} may only use letters, digits and . _ @ -"
            )
        if len(token) < 16:
            raise TokensFileError(
                f"{path}:{number}: the token of {name!r} is shorter than 16 characters"
            )
        digest = token_digest(token)
        if digest in digests:
            raise TokensFileError(
                f"{path}:{number}: {name!r} has the same token as {digests[digest]!r}"
            )
        digests[digest] = name
    if not digests:
        raise TokensFileError(f"tokens file {path} holds no name:token line")
    return digests


@dataclass(frozen=True)
class Limits:
    """What one request may ask for; generation limits above these are capped, not refused."""

    max_body_bytes: int = 1_000_000
    max_new_tokens: int = 256
    max_input_tokens: int = 2048


@dataclass(frozen=True)
class ReplicaConfig:
    """Everything a replica needs, picklable (no ctranslate2 objects, no tokens)."""

    models: dict[str, str]  # role -> converted folder
    device: str
    compute_type: str
    intra_threads: int
    token_digests: dict[str, str]
    limits: Limits = field(default_factory=Limits)
    max_batch_size: int = 16
    batch_wait_timeout_s: float = 0.005


class _Streaming:
    """A stop rule that also reports the text so far (for streamed responses); the engine
    calls it after every token on its own thread."""

    def __init__(self, inner: Callable[[str], bool] | None, emit: Callable[[str], object]):
        self.inner, self.emit = inner, emit

    def __call__(self, generated: str) -> bool:
        self.emit(generated)
        return bool(self.inner(generated)) if self.inner is not None else False


@dataclass
class _Job:
    role: str
    request: GenerationRequest
    cancel: threading.Event
    user: str


def _log_to_stderr() -> None:
    """One line per request (user, route, mode, tokens, time) on the replica's stderr."""
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


def _rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class CodeT5Engine:
    """The Ray Serve deployment: one replica holds the engines (completion, and summary when
    it is another model) and answers HTTP itself (no FastAPI: auth runs before the body is
    read)."""

    def __init__(self, config: ReplicaConfig):
        from codet5_lsp.inference.engine import CompletionEngine
        from codet5_lsp.inference.models import check_converted_folder

        self.config = config
        self.engines: dict[str, Any] = {}
        loaded: dict[str, Any] = {}
        for role, folder in config.models.items():
            if folder not in loaded:
                loaded[folder] = CompletionEngine(
                    check_converted_folder(Path(folder)),
                    device=config.device,
                    compute_type=config.compute_type,
                    intra_threads=config.intra_threads,
                    max_batch=config.max_batch_size,
                )
            self.engines[role] = loaded[folder]
        if "summary" not in self.engines:  # summaries with the completion model
            self.engines["summary"] = self.engines["completion"]
        # Requests that must run alone (_runs_alone) take turns on this thread; the rest go
        # through the engine's own queue and worker thread.
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="codet5-gen")
        self._run_batch.set_max_batch_size(config.max_batch_size)  # type: ignore[attr-defined]
        self._run_batch.set_batch_wait_timeout_s(  # type: ignore[attr-defined]
            config.batch_wait_timeout_s
        )
        from ray.serve import metrics

        self._requests = metrics.Counter(
            "codet5_requests",
            description="requests per user, route and HTTP status",
            tag_keys=("user", "route", "status"),  # type: ignore[arg-type]
        )
        self._tokens = metrics.Counter(
            "codet5_generated_tokens", description="tokens generated per user", tag_keys=("user",)
        )
        self._latency = metrics.Histogram(
            "codet5_request_ms",
            description="time from request to result, per user",
            boundaries=[10, 25, 50, 100, 250, 500, 1000, 2500, 5000],
            tag_keys=("user",),
        )
        self._batch_sizes = metrics.Histogram(
            "codet5_batch_size",
            description="requests per ctranslate2 call",
            boundaries=[1, 2, 4, 8, 16, 32],
        )
        _log_to_stderr()  # Ray forwards replicas' stderr to the team server's terminal
        log.info(
            "replica ready: %s", ", ".join(f"{r}={e.description}" for r, e in self.engines.items())
        )

    # -- HTTP ------------------------------------------------------------------------------

    async def __call__(self, request: Request) -> Response:
        path = request.url.path.rstrip("/") or "/"
        if path == "/health" and request.method == "GET":
            return JSONResponse({"status": "ok"})
        user = self._authenticate(request)
        if user is None:
            self._count("-", path, 401)
            return JSONResponse(
                {"error": "missing or unknown token"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        if path == "/v1/model" and request.method == "GET":
            return self._model_info(request, user)
        role = ROUTE_ROLES.get(path)
        if role is None:
            self._count(user, path, 404)
            return JSONResponse({"error": f"no route {request.method} {path}"}, status_code=404)
        if request.method != "POST":
            self._count(user, path, 405)
            return JSONResponse({"error": "use POST"}, status_code=405)
        return await self._generate(request, user, role, path)

    def _authenticate(self, request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        digest = token_digest(token.strip())
        for known, name in self.config.token_digests.items():
            if hmac.compare_digest(known, digest):
                return name
        return None

    def _model_info(self, request: Request, user: str) -> Response:
        role = request.query_params.get("role", "completion")
        if role not in ROLES:
            return JSONResponse(
                {"error": f"role must be one of {', '.join(ROLES)}"}, status_code=400
            )
        engine = self.engines[role]
        info: dict[str, Any] = {
            "role": role,
            "metadata": metadata_to_json(engine.meta),
            "device": engine.device,
            "compute_type": engine.compute_type,
            "description": engine.description,
            "limits": dataclasses.asdict(self.config.limits),
            "max_batch_size": self.config.max_batch_size,
            "replica": {
                "pid": os.getpid(),
                "rss_mb": round(_rss_mb(), 1),
                "intra_threads": self.config.intra_threads,
            },
            "user": user,
        }
        if request.query_params.get("tokenizer", "1") != "0":
            info["tokenizer"] = engine.model.tokenizer_file.read_text(encoding="utf-8")
        self._count(user, "/v1/model", 200)
        return JSONResponse(info)

    async def _read_body(self, request: Request) -> bytes | None:
        """The body, or None once it passes the size limit (declared or actual)."""
        limit = self.config.limits.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            return None
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    async def _generate(self, request: Request, user: str, role: str, path: str) -> Response:
        started = time.perf_counter()
        body = await self._read_body(request)
        if body is None:
            self._count(user, path, 413)
            return JSONResponse(
                {"error": f"body larger than {self.config.limits.max_body_bytes} bytes"},
                status_code=413,
            )
        try:
            payload = json.loads(body)
            if not isinstance(payload, dict):
                raise RequestFormatError("expected a JSON object")
            gen_request = self._capped(request_from_json(payload.get("request")))
        except (ValueError, RequestFormatError) as exc:
            self._count(user, path, 400)
            return JSONResponse({"error": f"bad request: {exc}"}, status_code=400)
        stream = bool(payload.get("stream", False))
        job = _Job(role, gen_request, threading.Event(), user)
        if stream:
            return StreamingResponse(
                self._stream(job, path, started), media_type="application/x-ndjson"
            )
        try:
            result = _raised(await self._run_batch(job))
        except asyncio.CancelledError:
            job.cancel.set()  # the client went away: stop its generation at the next token
            log.info("user=%s %s cancelled by the client", user, path)
            raise
        except Exception as exc:
            log.exception("user=%s %s failed", user, path)
            self._count(user, path, 500)
            return JSONResponse(
                {"error": f"generation failed: {type(exc).__name__}: {exc}"}, status_code=500
            )
        self._finished(job, path, result, started)
        return JSONResponse(result_to_json(result))

    async def _stream(self, job: _Job, path: str, started: float):
        loop = asyncio.get_running_loop()
        texts: asyncio.Queue[str] = asyncio.Queue()
        job.request = dataclasses.replace(
            job.request,
            stop_rule=_Streaming(
                job.request.stop_rule,
                lambda text: loop.call_soon_threadsafe(texts.put_nowait, text),
            ),
        )
        task = asyncio.ensure_future(self._run_batch(job))
        sent = ""
        try:
            while True:
                getter = asyncio.ensure_future(texts.get())
                done, _ = await asyncio.wait({task, getter}, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    text = getter.result()
                    if text.startswith(sent) and len(text) > len(sent):
                        yield json.dumps({"text": text[len(sent) :]}) + "\n"
                        sent = text
                    continue
                getter.cancel()
                break
            result = _raised(task.result())
            self._finished(job, path, result, started)
            yield json.dumps({"result": result_to_json(result)}) + "\n"
        except asyncio.CancelledError:
            job.cancel.set()
            task.cancel()
            log.info("user=%s %s stream cancelled by the client", job.user, path)
            raise
        except Exception as exc:
            log.exception("user=%s %s failed", job.user, path)
            self._count(job.user, path, 500)
            yield json.dumps({"error": f"generation failed: {type(exc).__name__}: {exc}"}) + "\n"
        finally:
            if not task.done():
                job.cancel.set()

    def _capped(self, request: GenerationRequest) -> GenerationRequest:
        limits = self.config.limits
        inputs = len(request.encoder_tokens or ()) + len(request.decoder_prefix)
        if inputs > limits.max_input_tokens:
            raise RequestFormatError(
                f"{inputs} input tokens; this server takes at most {limits.max_input_tokens}"
            )
        if request.max_new_tokens > limits.max_new_tokens:
            request = dataclasses.replace(request, max_new_tokens=limits.max_new_tokens)
        return request

    def _finished(self, job: _Job, path: str, result: GenerationResult, started: float) -> None:
        elapsed = (time.perf_counter() - started) * 1000
        self._count(job.user, path, 200)
        self._tokens.inc(len(result.tokens), tags={"user": job.user})
        self._latency.observe(elapsed, tags={"user": job.user})
        log.info(
            "user=%s %s %s tokens=%d stop=%s batch=%s %.0f ms",
            job.user,
            path,
            job.request.mode,
            len(result.tokens),
            result.stop_reason,
            result.extra.get("batch_size", "-"),
            elapsed,
        )

    def _count(self, user: str, path: str, status: int) -> None:
        route = path if path in ROUTE_ROLES or path == "/v1/model" else "other"  # bounded labels
        self._requests.inc(tags={"user": user, "route": route, "status": str(status)})

    # -- batching --------------------------------------------------------------------------

    # Serve forms the next batch as soon as the previous one is handed over, not when the
    # engine is free again (ray/serve/batching.py: wait_for_batch, then the semaphore), so
    # several batches are let through at once (max_concurrent_batches) into the engine's
    # queue, which runs compatible requests together as soon as its thread is free (and
    # heals, ranks alternatives and preempts background summaries as a local engine does).
    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.005, max_concurrent_batches=8)
    async def _run_batch(self, jobs: list[_Job]) -> list[GenerationResult | BaseException]:
        """Requests from any users that arrived together, handed to the engine together."""
        loop = asyncio.get_running_loop()
        waits = []
        for job in jobs:
            engine = self.engines[job.role]
            if _runs_alone(engine, job.request):
                waits.append(loop.run_in_executor(self._pool, _generate_alone, engine, job))
            else:
                waits.append(asyncio.wrap_future(engine.submit(job.request, job.cancel)))
        # One request's failure is its own: exceptions travel as results (Serve would fail
        # the whole batch), and the caller raises them.
        results = list(await asyncio.gather(*waits, return_exceptions=True))
        for result in results:
            if isinstance(result, GenerationResult):
                self._batch_sizes.observe(result.extra.get("batch_size", 1))
        return results


def _raised(result: GenerationResult | BaseException) -> GenerationResult:
    if isinstance(result, BaseException):
        raise result
    return result


def _runs_alone(engine: Any, request: GenerationRequest) -> bool:
    """A plain request whose forced decoder prefix goes through in one pass (the decoder
    mode of T5 models). ctranslate2 runs such a batch one example after the other and
    reports every example's tokens as batch 0 to the per-token callback, which mixes up
    stop rules and cancellation when the engine's queue merges them; so they run one by one
    (same speed as ctranslate2's own loop, and exact)."""
    plain = not getattr(request, "heal_tokens", ()) and getattr(request, "alternatives", 1) <= 1
    return plain and engine._one_pass(request)


def _generate_alone(engine: Any, job: _Job) -> GenerationResult:
    result = engine._generate_batch([job.request], [job.cancel], None)[0]
    return result if result is not None else GenerationResult([], "", "cancelled", 0.0)


# -- the command -------------------------------------------------------------------------------


@dataclass
class TeamServerOptions:
    model: str
    summary_model: str | None
    device: str
    compute_type: str
    host: str
    port: int
    tokens_file: Path
    replicas: int | None = None
    max_replicas: int | None = None
    ray_address: str | None = None
    num_cpus: int | None = None
    replica_cpus: int | None = None
    object_store_mb: int = 100
    max_batch_size: int | None = None  # None: DEFAULT_MAX_BATCH for the device
    batch_wait_ms: float = 5.0
    limits: Limits = field(default_factory=Limits)
    cache_dir: str | None = None
    revision: str | None = None
    offline: bool = False


def _resolve_folder(spec: str, compute_type: str, opts: TeamServerOptions) -> str:
    from codet5_lsp.inference.models import resolve_model, storage_quantization

    files = resolve_model(
        spec,
        quantization=storage_quantization(compute_type),
        revision=opts.revision,
        cache_dir=Path(opts.cache_dir) if opts.cache_dir else None,
        offline=opts.offline,
        log=lambda m: print(m, file=sys.stderr),
    )
    return str(files.folder)


def build_application(
    opts: TeamServerOptions, token_digests: dict[str, str], cluster: dict[str, float]
):
    """The Serve application for `opts` on a cluster with `cluster` resources."""
    from codet5_lsp.inference.devices import default_compute_type

    device = opts.device
    if device == "auto":
        device = "cuda" if cluster.get("GPU", 0) >= 1 else "cpu"
    compute = default_compute_type(device) if opts.compute_type == "auto" else opts.compute_type
    if device == "cpu" and compute == "auto":
        compute = "int8"
    models = {"completion": _resolve_folder(opts.model, compute, opts)}
    if opts.summary_model:
        models["summary"] = _resolve_folder(opts.summary_model, compute, opts)
    max_batch = opts.max_batch_size or DEFAULT_MAX_BATCH[device]
    if device == "cuda":
        replicas = opts.replicas or max(1, int(cluster.get("GPU", 1)))
        actor = {"num_gpus": 1, "num_cpus": 1}
        threads = 1
    else:
        replicas = opts.replicas or 1
        cpus = opts.replica_cpus or max(1, int(cluster.get("CPU", 1)) // replicas)
        actor = {"num_cpus": cpus}
        threads = cpus
    config = ReplicaConfig(
        models=models,
        device=device,
        compute_type=compute,
        intra_threads=threads,
        token_digests=token_digests,
        limits=opts.limits,
        max_batch_size=max_batch,
        batch_wait_timeout_s=opts.batch_wait_ms / 1000,
    )
    options: dict[str, Any] = {
        "name": DEPLOYMENT_NAME,
        "ray_actor_options": actor,
        "max_ongoing_requests": max(32, 8 * max_batch),
        "health_check_period_s": 2,
        "health_check_timeout_s": 10,
        "graceful_shutdown_timeout_s": 5,
    }
    if opts.max_replicas and opts.max_replicas > replicas:
        # Scale on queued + running requests per replica: a replica is busy when it holds
        # about one full batch.
        options["autoscaling_config"] = {
            "min_replicas": replicas,
            "max_replicas": opts.max_replicas,
            "target_ongoing_requests": max(1, max_batch // 2),
            "upscale_delay_s": 10,
            "downscale_delay_s": 120,
        }
    else:
        options["num_replicas"] = replicas
    deployment = serve.deployment(CodeT5Engine).options(**options)  # type: ignore[attr-defined]
    summary = (
        f"{replicas} {device} replica(s)"
        + (f" up to {opts.max_replicas}" if "autoscaling_config" in options else "")
        + f", {compute}, {threads} thread(s) each, batches of up to {max_batch}"
    )
    return deployment.bind(config), summary


def run(opts: TeamServerOptions) -> int:
    """Start (or join) Ray, deploy, serve until Ctrl-C or SIGTERM, then shut Serve down."""
    token_digests = load_tokens(opts.tokens_file)
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    if opts.ray_address:
        ray.init(address=opts.ray_address, logging_level=logging.WARNING)
    else:
        ray.init(
            address="local",
            num_cpus=opts.num_cpus or os.cpu_count() or 1,
            num_gpus=None,
            object_store_memory=opts.object_store_mb * 1024 * 1024,
            include_dashboard=False,
            logging_level=logging.WARNING,
        )
    # After ray.init: Ray installs its own handlers, which would abort the process.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        app, summary = build_application(opts, token_digests, ray.cluster_resources())
        serve.start(
            http_options={"host": opts.host, "port": opts.port},
            logging_config={"log_level": "WARNING", "enable_access_log": False},
        )
        serve.run(app, name=APP_NAME, route_prefix="/", blocking=False)
        print(
            f"codet5-lsp team server: http://{opts.host}:{opts.port} ({summary}); "
            f"{len(token_digests)} user(s); Ctrl-C to stop",
            file=sys.stderr,
            flush=True,
        )
        while not stop.wait(1.0):
            pass
        print("codet5-lsp team server: shutting down", file=sys.stderr, flush=True)
        return 0
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
