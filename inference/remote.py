"""The editor side of a team server: an `Engine` whose generation runs on a remote backend.

`RemoteEngine` satisfies the same interface as the in-process engine (inference/engine_api.py):
the tokenizer and model metadata are fetched once from the backend (`GET /v1/model`; the
tokenizer is cached on disk by content), prompts are built here exactly as for a local model,
and `submit` sends the request to `POST /v1/completions` (or `/v1/summaries`) on a worker
thread. Setting the cancel event closes the connection, which the team server turns into a
cancelled generation.

The editor side needs only the standard library for HTTP: no Ray, no web framework.

When the backend fails (refused connection, timeout, 5xx), the first failed request raises
`BackendError` (one clear message for the user), later ones answer "no suggestion" quietly,
and `on_state("error", ...)` / `on_state("ready", ...)` report the outage and the recovery,
found by polling `/v1/model` every `retry_s` while it lasts.
"""

from __future__ import annotations

import hashlib
import http.client
import ipaddress
import json
import logging
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from codet5_lsp.inference.atomic import atomic_write_text
from codet5_lsp.inference.engine_api import (
    EngineRequests,
    metadata_from_json,
    request_to_json,
    result_from_json,
)
from codet5_lsp.inference.generation import GenerationRequest, GenerationResult, Priority
from codet5_lsp.inference.tokenizer import CodeTokenizer

log = logging.getLogger(__name__)

TOKEN_ENV = "CODET5_LSP_TOKEN"
ROUTES = {"completion": "/v1/completions", "summary": "/v1/summaries"}


class BackendError(RuntimeError):
    """The backend cannot serve this request; the message says why, in the user's terms."""


class BackendUnavailable(BackendError):
    """The backend is down, unreachable, too slow or failing (worth retrying)."""


class BackendRefusedToken(BackendError):
    """401: the token was refused (not worth retrying until the settings change)."""


def read_token(token_file: str | None) -> str | None:
    """The token: the first non-empty line of `token_file`, else $CODET5_LSP_TOKEN."""
    if token_file:
        path = Path(token_file).expanduser()
        try:
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    return line.strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise BackendError(f"cannot read backendTokenFile {path}: {exc}") from None
        raise BackendError(f"backendTokenFile {path} is empty")
    token = os.environ.get(TOKEN_ENV, "").strip()
    return token or None


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def plain_http_warning(url: str, token: str | None) -> str | None:
    """A warning when `token` would cross the network unencrypted (http to a host other than
    loopback); None when that is not the case."""
    parts = urlsplit(url)
    if token and parts.scheme == "http" and not is_loopback(parts.hostname or ""):
        return (
            f"the backend token is sent unencrypted over plain http to {parts.hostname}; "
            "use https (a TLS reverse proxy, docs/team.md)"
        )
    return None


class BackendEndpoint:
    """Scheme, host, port and base path of a backend URL, and one-shot HTTP calls to it."""

    def __init__(self, url: str, token: str | None, connect_timeout_s: float = 3.0):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BackendError(f"backend {url!r} is not an http:// or https:// URL")
        self.url = url.rstrip("/")
        self.scheme, self.host = parts.scheme, parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.base = parts.path.rstrip("/")
        self.token = token
        self.connect_timeout_s = connect_timeout_s
        self._ssl = ssl.create_default_context() if parts.scheme == "https" else None

    def connection(self) -> http.client.HTTPConnection:
        if self._ssl is not None:
            return http.client.HTTPSConnection(
                self.host, self.port, context=self._ssl, timeout=self.connect_timeout_s
            )
        return http.client.HTTPConnection(self.host, self.port, timeout=self.connect_timeout_s)

    def headers(self, auth: bool = True) -> dict[str, str]:
        out = {"Accept": "application/json", "User-Agent": "codet5-lsp"}
        if auth and self.token:
            out["Authorization"] = f"Bearer {self.token}"
        return out

    def get_json(self, path: str, *, auth: bool = True, timeout_s: float = 30.0) -> Any:
        conn = self.connection()
        try:
            conn.connect()
            conn.sock.settimeout(timeout_s)
            conn.request("GET", self.base + path, headers=self.headers(auth))
            response = conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise BackendUnavailable(f"backend {self.url} is unreachable: {_why(exc)}") from None
        finally:
            conn.close()
        return _decode(self.url, response.status, body)


def _why(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timed out"
    return str(exc) or type(exc).__name__


def _decode(url: str, status: int, body: bytes) -> Any:
    if status == 401:
        raise BackendRefusedToken(
            f"backend {url} refused the token (401): set backendTokenFile or "
            f"${TOKEN_ENV} to a token from the team server's tokens file"
        )
    if status >= 500 or status in (404, 408, 429):
        raise BackendUnavailable(f"backend {url} answered HTTP {status}: {_error_text(body)}")
    if status != 200:
        raise BackendError(f"backend {url} answered HTTP {status}: {_error_text(body)}")
    try:
        return json.loads(body)
    except ValueError:
        raise BackendUnavailable(f"backend {url} answered something that is not JSON") from None


def _error_text(body: bytes) -> str:
    try:
        return str(json.loads(body).get("error", ""))[:200]
    except (ValueError, AttributeError):
        return body[:200].decode("utf-8", "replace")


def _tokenizer_from_text(text: str, cache_dir: Path | None) -> CodeTokenizer:
    """The backend's tokenizer.json, kept on disk by content (so an editor that restarts, or a
    second engine, reuses it)."""
    import platformdirs

    folder = cache_dir or Path(platformdirs.user_cache_dir("codet5-lsp")) / "remote-tokenizers"
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]
    path = folder / f"{digest}.json"
    if not path.is_file():
        atomic_write_text(path, text)
    return CodeTokenizer(path)


class _Model:
    """Stands where a local engine's `model` (ModelFiles) would: names what is served."""

    def __init__(self, url: str, info: dict[str, Any]):
        self.folder = f"{url} ({info.get('description', '')})"


class RemoteEngine(EngineRequests):
    """A model served by a team server, behind the local engine's interface."""

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        role: str = "completion",
        on_state: Callable[[str, str], None] | None = None,
        retry_s: float = 1.0,
        read_timeout_s: float = 60.0,
        tokenizer_cache: Path | None = None,
        workers: int = 4,
        time_budget_s: Callable[[], float] | None = None,
    ):
        if role not in ROUTES:
            raise ValueError(f"role must be one of {', '.join(ROUTES)}")
        self.endpoint = BackendEndpoint(url, token)
        self.role = role
        self.url = self.endpoint.url
        self.warning = plain_http_warning(url, token)
        if self.warning:
            log.warning("%s", self.warning)
        info = self.endpoint.get_json(f"/v1/model?role={role}")
        try:
            self.meta = metadata_from_json(info["metadata"])
            self.tokenizer = _tokenizer_from_text(info["tokenizer"], tokenizer_cache)
            self.device = str(info["device"])
            self.compute_type = str(info["compute_type"])
        except (KeyError, TypeError, ValueError) as exc:
            raise BackendError(
                f"backend {self.url} sent an unusable model description: {exc}"
            ) from None
        # Prompts are healed here, as beside a local engine (the same tokenizer, the same
        # plan); the server reproduces the healed text.
        from codet5_lsp.inference.healing import TokenHealer

        self.healer = TokenHealer(self.tokenizer)
        self.info = {k: v for k, v in info.items() if k != "tokenizer"}
        self.model = _Model(self.url, info)
        self._on_state = on_state or (lambda state, message: None)
        self._retry_s = retry_s
        self._read_timeout_s = read_timeout_s
        # The editor's requestTimeoutMs: a request still unanswered just before it is a slow
        # backend, reported once (BackendError) until a request is answered in time again.
        self._time_budget_s = time_budget_s
        self._slow_reported = False
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="codet5-remote")
        self._lock = threading.Condition()
        self._in_flight: dict[
            int, tuple[threading.Event, http.client.HTTPConnection, float, list[bool]]
        ] = {}
        self._urgent = 0
        self._healthy = True
        self._closed = False
        self._watcher = threading.Thread(
            target=self._watch_cancels, daemon=True, name="codet5-remote-cancel"
        )
        self._watcher.start()
        self._poller: threading.Thread | None = None

    # -- the engine interface --------------------------------------------------------------

    @property
    def description(self) -> str:
        base = f"{self.meta.source} on {self.url} ({self.device}, {self.compute_type})"
        return f"{base}; warning: {self.warning}" if self.warning else base

    @property
    def urgent_work_in_flight(self) -> bool:
        return self._urgent > 0

    @property
    def healthy(self) -> bool:
        return self._healthy

    def submit(self, request: GenerationRequest, cancel: threading.Event | None = None) -> Future:
        if self._closed:
            raise BackendError("engine is closed")
        future: Future = Future()
        cancel = cancel or threading.Event()
        urgent = not Priority.is_background(request.priority)
        if urgent:
            with self._lock:
                self._urgent += 1
        body = json.dumps({"request": request_to_json(request), "stream": False}).encode()

        def run() -> None:
            try:
                if self._closed:  # closed while queued: nobody may wait forever
                    future.set_result(GenerationResult([], "", "cancelled", 0.0))
                    return
                future.set_result(self._call(body, cancel))
            except BaseException as exc:  # the future carries it to the waiter
                future.set_exception(exc)
            finally:
                if urgent:
                    with self._lock:
                        self._urgent -= 1

        self._pool.submit(run)
        return future

    def generate(
        self, request: GenerationRequest, cancel: threading.Event | None = None
    ) -> GenerationResult:
        return self.submit(request, cancel).result()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for cancel, *_ in self._in_flight.values():
                cancel.set()
            self._lock.notify_all()
        # Queued requests still run `run`, which answers "cancelled" at once; in-flight ones
        # see their cancel event (their connections are closed by the watcher).
        self._pool.shutdown(wait=False)

    # -- HTTP ------------------------------------------------------------------------------

    def _call(self, body: bytes, cancel: threading.Event) -> GenerationResult:
        cancelled = GenerationResult([], "", "cancelled", 0.0)
        if cancel.is_set():
            return cancelled
        conn = self.endpoint.connection()
        key = id(conn)
        budget = self._time_budget_s() if self._time_budget_s is not None else None
        # Answer a little before the editor gives up, so the reason reaches it.
        deadline = time.monotonic() + max(0.2, budget * 0.9 - 0.05) if budget else float("inf")
        timed_out = [False]
        with self._lock:
            self._in_flight[key] = (cancel, conn, deadline, timed_out)
            self._lock.notify_all()
        try:
            conn.connect()
            conn.sock.settimeout(self._read_timeout_s)
            if cancel.is_set():
                return cancelled
            conn.request(
                "POST",
                self.endpoint.base + ROUTES[self.role],
                body=body,
                headers={**self.endpoint.headers(), "Content-Type": "application/json"},
            )
            response = conn.getresponse()
            payload = response.read()
            status = response.status
        except (OSError, http.client.HTTPException, ValueError) as exc:
            if cancel.is_set():
                return cancelled
            if timed_out[0]:
                return self._slow(budget or 0.0)
            return self._failed(
                BackendUnavailable(f"backend {self.url} is unreachable: {_why(exc)}")
            )
        finally:
            with self._lock:
                self._in_flight.pop(key, None)
            conn.close()
        if cancel.is_set():
            return cancelled
        try:
            result = result_from_json(_decode(self.url, status, payload))
        except BackendUnavailable as exc:
            return self._failed(exc)
        except BackendRefusedToken as exc:
            self._set_unhealthy(str(exc))
            raise
        except ValueError as exc:
            raise BackendError(f"backend {self.url} sent an unusable result: {exc}") from None
        self._set_healthy()
        self._slow_reported = False
        return result

    def _slow(self, budget_s: float) -> GenerationResult:
        """The backend answers, but not within the editor's time budget: say so once."""
        if self._slow_reported:
            return GenerationResult([], "", "empty", 0.0)
        self._slow_reported = True
        message = (
            f"backend {self.url} did not answer within {budget_s * 1000:.0f} ms "
            "(requestTimeoutMs): no suggestions while it is this slow"
        )
        log.warning("%s", message)
        raise BackendUnavailable(message)

    def _watch_cancels(self) -> None:
        """Close the connection of every request whose cancel event is set: a blocked read
        returns at once, and the server sees the client go away and stops generating."""
        while True:
            with self._lock:
                if self._closed and not self._in_flight:
                    return
                if not self._in_flight:
                    self._lock.wait(0.5)
                    continue
                now = time.monotonic()
                doomed = []
                for cancel, conn, deadline, timed_out in self._in_flight.values():
                    if not timed_out[0] and not cancel.is_set() and now >= deadline:
                        timed_out[0] = True
                    if cancel.is_set() or timed_out[0]:
                        doomed.append(conn)
            for conn in doomed:
                try:
                    if conn.sock is not None:
                        conn.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            time.sleep(0.02)

    # -- health ----------------------------------------------------------------------------

    def _failed(self, error: BackendUnavailable) -> GenerationResult:
        """The first failure of an outage raises (one message); later ones are quiet."""
        first = self._set_unhealthy(str(error))
        if first:
            raise error
        return GenerationResult([], "", "empty", 0.0)

    def _set_unhealthy(self, message: str) -> bool:
        with self._lock:
            first, self._healthy = self._healthy, False
            if first and not self._closed and (self._poller is None or not self._poller.is_alive()):
                self._poller = threading.Thread(
                    target=self._poll_until_healthy, daemon=True, name="codet5-remote-health"
                )
                self._poller.start()
        if first:
            log.error("%s", message)
            self._on_state("error", message)
        return first

    def _set_healthy(self) -> None:
        with self._lock:
            was, self._healthy = self._healthy, True
        if not was:
            log.info("backend %s answers again", self.url)
            self._on_state("ready", self.description)

    def _poll_until_healthy(self) -> None:
        while True:
            time.sleep(self._retry_s)
            with self._lock:
                if self._healthy or self._closed:
                    return
            try:
                self.endpoint.get_json(
                    f"/v1/model?role={self.role}&tokenizer=0", timeout_s=max(2.0, self._retry_s * 3)
                )
            except BackendError:
                continue
            self._set_healthy()
            return


def connect(
    url: str,
    token_file: str | None,
    *,
    role: str,
    on_state: Callable[[str, str], None],
    closed: Callable[[], bool],
    retry_s: float = 1.0,
    time_budget_s: Callable[[], float] | None = None,
) -> RemoteEngine:
    """A RemoteEngine for `url`, waiting for the backend while it is down (reported once
    through `on_state("error", ...)`); a refused token or bad settings raise at once."""
    token = read_token(token_file)
    reported = False
    while True:
        try:
            return RemoteEngine(
                url,
                token,
                role=role,
                on_state=on_state,
                retry_s=retry_s,
                time_budget_s=time_budget_s,
            )
        except BackendUnavailable as exc:
            if not reported:
                log.error("%s", exc)
                on_state("error", f"{exc}; retrying every {retry_s:g} s")
                reported = True
            if closed():
                raise
            time.sleep(retry_s)
