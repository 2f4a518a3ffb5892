"""A scripted typing session over LSP: what debounce, cancellation and the type-through cache buy.

``python -m bench.typing [--device cpu|cuda] [--lines N]`` writes ``bench/results/typing.json``
and ``typing.md``.

A real held-out file (``bench/data/heldout``) is opened with the lines before the typed region,
then N lines are typed character by character with realistic inter-key intervals (log-normal,
median ~110 ms, longer after spaces, sometimes a pause at a line end; Enter inserts the next
line's indentation, as editors auto-indent). After every keystroke the client sends didChange
and asks for an inline completion, as VS Code does. The same script (same text, same timings)
runs twice against a fresh ``codet5-lsp serve``:

- ``debounce+cancel``: the server's default debounce; the client cancels the previous request
  (``$/cancelRequest``) when it sends the next one;
- ``no-debounce``: ``debounceMs: 0, debounceMaxMs: 0`` and no client cancellation (the
  server's latest-wins still stops a superseded generation).

Reported per run: requests, answered (result) / cancelled, share answered from the type-through
cache (the suggestion id starts with "c"; also the server's own ``cacheHits``), model calls
(``codet5.debugStats`` command: ``modelCalls``), requests with a suggestion, and the latency
(request sent -> response) p50/p95 of the answered requests and of those with a suggestion.

``python -m bench.typing --replay [--quick]`` instead replays the typing of held-out files with
a simulated person, and writes ``bench/results/typing-replay.json`` and ``.md``: after every
keystroke the client asks for a suggestion (cancelling the previous request, as VS Code does;
server defaults otherwise). A suggestion that arrives before the next keystroke is *shown*: the
person reads it for 0.5-1 s, accepts it (didChange + the item's ``codet5.accepted`` command)
when it matches the real next text, and otherwise types on. Enter inserts the next line's
indentation (auto-indent). The same script runs with and without speculation, for the labmodel
and the random-weight codet5p-220m shape (which never matches real text: it shows what
speculation costs when nothing is accepted). Reported: the share of shown suggestions that did
not wait for the model (served from the type-through cache or a speculation), perceived latency
p50/p95 (keystroke -> suggestion shown), model calls per accepted line, the latency of requests
that did need a model call (p50/p95: speculation must not slow them), and the engine time spent
on speculation that was never served (``discardedSpeculativeMs``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.quality import LABMODEL, cpu_description, percentile, write_results

HELDOUT = Path(__file__).resolve().parent / "data" / "heldout"
DEFAULT_FILE = "server__pipeline.py.txt"
DEFAULT_START_LINE = 96  # type the lines from here (1-based): a function body
SEED = 7


# ---- keystroke script ------------------------------------------------------------------------


def keystrokes(lines: list[str], seed: int = SEED) -> list[tuple[str, float]]:
    """(text inserted, delay before it in seconds) for typing `lines` after the cursor.

    Each line's characters one by one; Enter also inserts the next line's indentation.
    """
    rng = random.Random(seed)
    out: list[tuple[str, float]] = []
    for i, line in enumerate(lines):
        body = line.lstrip(" ")
        if i == 0 and len(body) < len(line):  # the cursor starts on an empty line
            out.append((line[: len(line) - len(body)], 0.3))
        for ch in body:
            delay = min(0.6, max(0.03, rng.lognormvariate(-2.2, 0.45)))  # median ~110 ms
            if ch in " (.,":
                delay *= 1.3
            out.append((ch, delay))
        if i + 1 < len(lines):
            nxt = lines[i + 1]
            pause = rng.uniform(0.4, 1.2) if rng.random() < 0.3 else 0.0
            out.append(
                (
                    "\n" + nxt[: len(nxt) - len(nxt.lstrip(" "))],
                    min(0.6, max(0.05, rng.lognormvariate(-2.0, 0.4))) + pause,
                )
            )
    return out


# ---- a small stdio LSP client ----------------------------------------------------------------


class Client:
    """Frames JSON-RPC over the server's pipes; a thread records responses and their times."""

    def __init__(self, args: list[str], state_dir: Path):
        env = dict(os.environ, XDG_CACHE_HOME=str(state_dir), XDG_STATE_HOME=str(state_dir))
        self.log = open(state_dir / "server.log", "wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "codet5_lsp.server.cli",
                "serve",
                "--stats-file",
                str(state_dir / "stats.jsonl"),
                *args,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            env=env,
        )
        self.responses: dict[int, tuple[float, dict]] = {}
        self.statuses: list[dict] = []
        self._cond = threading.Condition()
        self._next = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        out = self.proc.stdout
        while True:
            length = None
            while True:
                line = out.readline()
                if not line:
                    return
                if line.strip() == b"":
                    break
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            message = json.loads(out.read(length))
            now = time.perf_counter()
            with self._cond:
                if message.get("method") == "codet5/status":
                    self.statuses.append(message["params"])
                elif "method" not in message and isinstance(message.get("id"), int):
                    self.responses[message["id"]] = (now, message)
                self._cond.notify_all()

    def send(self, message: dict) -> None:
        body = json.dumps(message).encode()
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def request(self, method: str, params: Any) -> int:
        self._next += 1
        self.send({"jsonrpc": "2.0", "id": self._next, "method": method, "params": params})
        return self._next

    def notify(self, method: str, params: Any) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def wait(self, predicate, timeout: float) -> bool:
        end = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                if time.monotonic() > end:
                    return False
                self._cond.wait(0.2)
        return True

    def initialize(self, options: dict[str, Any], timeout: float = 300) -> None:
        """initialize + initialized with `options`, then wait until the model is loaded
        (TimeoutError, or RuntimeError when it failed)."""
        self.call(
            "initialize",
            {
                "processId": os.getpid(),
                "rootUri": None,
                "capabilities": {},
                "initializationOptions": options,
            },
        )
        self.notify("initialized", {})
        if not self.wait(
            lambda: self.statuses and self.statuses[-1]["state"] in ("ready", "error"), timeout
        ):
            raise TimeoutError("model not ready")
        if self.statuses[-1]["state"] != "ready":
            raise RuntimeError(f"model failed to load: {self.statuses[-1]}")

    def call(self, method: str, params: Any, timeout: float = 300) -> dict:
        msg_id = self.request(method, params)
        if not self.wait(lambda: msg_id in self.responses, timeout):
            raise TimeoutError(f"{method}: no answer in {timeout} s")
        return self.responses[msg_id][1]

    def close(self) -> None:
        try:
            self.call("shutdown", None, 30)
            self.notify("exit", None)
            self.proc.wait(30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self.log.close()


# ---- one run ---------------------------------------------------------------------------------


def run_session(
    model_folder: Path,
    device: str,
    compute_type: str,
    prefix_text: str,
    script: list[tuple[str, float]],
    *,
    debounce: bool,
    cancel: bool,
    max_new_tokens: int,
    intra_threads: int,
) -> dict:
    state_dir = Path(tempfile.mkdtemp(prefix="codet5-bench-typing-"))
    client = Client(
        ["--model", str(model_folder), "--device", device, "--compute-type", compute_type],
        state_dir,
    )
    options: dict[str, Any] = {
        "requestTimeoutMs": 600_000,
        "maxNewTokens": max_new_tokens,
        "summariesEnabled": False,
        "intraThreads": intra_threads,
    }
    if not debounce:  # both bounds of the adaptive debounce: debounceMs alone is the minimum
        options["debounceMs"] = 0
        options["debounceMaxMs"] = 0
    try:
        client.initialize(options)
        uri = "file:///bench/typing.py"
        client.notify(
            "textDocument/didOpen",
            {
                "textDocument": {
                    "uri": uri,
                    "languageId": "python",
                    "version": 1,
                    "text": prefix_text,
                }
            },
        )
        lines = prefix_text.split("\n")
        line, character = len(lines) - 1, len(lines[-1])
        # Warm-up (not counted): the first generation pays one-time costs.
        client.call("textDocument/inlineCompletion", _params(uri, line, character))
        before = client.call("workspace/executeCommand", {"command": "codet5.debugStats"})["result"]
        sent: dict[int, float] = {}
        cancelled_by_client: set[int] = set()
        previous: int | None = None
        version = 1
        next_at = time.perf_counter()
        for text, delay in script:
            next_at += delay
            time.sleep(max(0.0, next_at - time.perf_counter()))
            version += 1
            client.notify(
                "textDocument/didChange",
                {
                    "textDocument": {"uri": uri, "version": version},
                    "contentChanges": [
                        {
                            "range": {
                                "start": {"line": line, "character": character},
                                "end": {"line": line, "character": character},
                            },
                            "text": text,
                        }
                    ],
                },
            )
            if "\n" in text:
                line, character = line + text.count("\n"), len(text.rsplit("\n", 1)[1])
            else:
                character += len(text.encode("utf-16-le")) // 2
            if cancel and previous is not None and previous not in client.responses:
                client.notify("$/cancelRequest", {"id": previous})
                cancelled_by_client.add(previous)
            previous = client.request(
                "textDocument/inlineCompletion", _params(uri, line, character)
            )
            sent[previous] = time.perf_counter()
        if not client.wait(lambda: all(i in client.responses for i in sent), 600):
            raise TimeoutError("requests left unanswered")
        after = client.call("workspace/executeCommand", {"command": "codet5.debugStats"})["result"]
        return _summarize(client, sent, cancelled_by_client, before, after)
    finally:
        client.close()


# ---- replay with a simulated person -------------------------------------------------------------

READ_S = (0.5, 1.0)  # how long the person reads a suggestion before deciding
REPLAY_REGIONS = (
    ("server__pipeline.py.txt", 96),
    ("server__typethrough.py.txt", 60),
    ("inference__engine.py.txt", 180),
)


def typing_units(text: str) -> list[str]:
    """What one keystroke inserts while typing `text`: a character, or Enter with the next
    line's indentation (auto-indent)."""
    units: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "\n":
            j = i + 1
            while j < len(text) and text[j] == " ":
                j += 1
            units.append(text[i:j])
            i = j
        else:
            units.append(text[i])
            i += 1
    return units


def _key_delay(rng: random.Random, unit: str) -> float:
    if unit.startswith("\n"):
        pause = rng.uniform(0.4, 1.2) if rng.random() < 0.3 else 0.0
        return min(0.6, max(0.05, rng.lognormvariate(-2.0, 0.4))) + pause
    delay = min(0.6, max(0.03, rng.lognormvariate(-2.2, 0.45)))
    return delay * 1.3 if unit in " (.," else delay


def replay_session(
    model_folder: Path,
    prefix_text: str,
    target: str,
    *,
    speculation: bool,
    intra_threads: int,
    max_new_tokens: int,
    seed: int = SEED,
) -> dict:
    """Type `target` after `prefix_text` as a person who reads and accepts (module doc)."""
    rng = random.Random(seed)
    state_dir = Path(tempfile.mkdtemp(prefix="codet5-bench-replay-"))
    client = Client(
        ["--model", str(model_folder), "--device", "cpu", "--compute-type", "int8"], state_dir
    )
    options: dict[str, Any] = {
        "requestTimeoutMs": 600_000,
        "maxNewTokens": max_new_tokens,
        "summariesEnabled": False,
        "intraThreads": intra_threads,
        "speculation": speculation,
    }
    shown: list[dict] = []
    model_answered: list[float] = []  # ms of answered requests that needed a model call
    accepted = 0
    try:
        client.initialize(options)
        uri = "file:///bench/replay.py"
        text = prefix_text
        client.notify(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}},
        )
        client.call("textDocument/inlineCompletion", _params(uri, *_line_col(text)))  # warm-up
        before = client.call("workspace/executeCommand", {"command": "codet5.debugStats"})["result"]
        version = 1
        pos = 0  # characters of `target` in the document
        sent: dict[int, float] = {}
        previous: int | None = None

        def edit(inserted: str) -> float:
            nonlocal text, version, previous
            line, character = _line_col(text)
            version += 1
            client.notify(
                "textDocument/didChange",
                {
                    "textDocument": {"uri": uri, "version": version},
                    "contentChanges": [
                        {
                            "range": {
                                "start": {"line": line, "character": character},
                                "end": {"line": line, "character": character},
                            },
                            "text": inserted,
                        }
                    ],
                },
            )
            text += inserted
            now = time.perf_counter()
            if previous is not None and previous not in client.responses:
                client.notify("$/cancelRequest", {"id": previous})
            previous = client.request(
                "textDocument/inlineCompletion", _params(uri, *_line_col(text))
            )
            sent[previous] = now
            return now

        units = typing_units(target)
        edit(units[0])
        pos = len(units[0])
        while pos < len(target):
            unit = typing_units(target[pos:])[0]
            due = time.perf_counter() + _key_delay(rng, unit)
            msg_id = previous
            assert msg_id is not None
            client.wait(lambda m=msg_id: m in client.responses, max(0.0, due - time.perf_counter()))
            item = _first_item(client, msg_id)
            if item is not None:
                at, _reply = client.responses[msg_id]
                suggestion = item["insertText"]
                shown.append(
                    {
                        "ms": (at - sent[msg_id]) * 1000,
                        "from_cache": str(item["command"]["arguments"][0]).startswith("c"),
                    }
                )
                time.sleep(rng.uniform(*READ_S))
                if target[pos:].startswith(suggestion):
                    edit(suggestion)
                    client.call(
                        "workspace/executeCommand",
                        {
                            "command": item["command"]["command"],
                            "arguments": item["command"]["arguments"],
                        },
                    )
                    pos += len(suggestion)
                    accepted += 1
                    continue
                due = time.perf_counter()
            time.sleep(max(0.0, due - time.perf_counter()))
            edit(unit)
            pos += len(unit)
        client.wait(lambda: all(i in client.responses for i in sent), 600)
        for msg_id, start in sent.items():
            at, reply = client.responses.get(msg_id, (None, {}))
            items = ((reply.get("result") or {}).get("items")) or [] if at else []
            if items and str(items[0]["command"]["arguments"][0]).startswith("s"):
                model_answered.append((at - start) * 1000)
        after = client.call("workspace/executeCommand", {"command": "codet5.debugStats"})["result"]
    finally:
        client.close()
    calls = after["modelCalls"] - before["modelCalls"]
    spec_calls = after.get("speculativeModelCalls", 0) - before.get("speculativeModelCalls", 0)
    ms = [s["ms"] for s in shown]
    return {
        "requests": len(sent),
        "shown": len(shown),
        "shown_without_model_wait": sum(s["from_cache"] for s in shown),
        "share_without_model_wait": round(sum(s["from_cache"] for s in shown) / len(shown), 3)
        if shown
        else None,
        "perceived_p50_ms": _r(percentile(ms, 50)),
        "perceived_p95_ms": _r(percentile(ms, 95)),
        "accepted_lines": accepted,
        "model_calls": calls,
        "speculative_model_calls": spec_calls,
        "model_calls_per_accepted_line": round(calls / accepted, 2) if accepted else None,
        "all_calls_per_accepted_line": round((calls + spec_calls) / accepted, 2)
        if accepted
        else None,
        "model_request_p50_ms": _r(percentile(model_answered, 50)),
        "model_request_p95_ms": _r(percentile(model_answered, 95)),
        "speculative_ms": after.get("speculativeMs", 0.0),
        "discarded_speculative_ms": after.get("discardedSpeculativeMs", 0.0),
        "speculation_hits": after.get("speculationHits", 0),
        "speculation_waits": after.get("speculationWaits", 0),
        "shown_ms": [round(x, 1) for x in ms],
        "model_request_ms": [round(x, 1) for x in model_answered],
    }


def _line_col(text: str) -> tuple[int, int]:
    line = text.count("\n")
    last = text[text.rfind("\n") + 1 :]
    return line, len(last.encode("utf-16-le")) // 2


def _first_item(client: Client, msg_id: int) -> dict | None:
    if msg_id not in client.responses:
        return None
    reply = client.responses[msg_id][1]
    items = ((reply.get("result") or {}).get("items")) or []
    return items[0] if items and items[0].get("insertText") else None


def replay_markdown(report: dict) -> str:
    keys = [
        ("requests", "completion requests"),
        ("shown", "suggestions shown"),
        ("share_without_model_wait", "share shown without waiting for the model"),
        ("perceived_p50_ms", "perceived latency p50 (ms), keystroke -> shown"),
        ("perceived_p95_ms", "perceived latency p95 (ms)"),
        ("accepted_lines", "suggestions accepted"),
        ("model_calls", "model calls (requests)"),
        ("speculative_model_calls", "speculative model calls"),
        ("model_calls_per_accepted_line", "request model calls / accepted"),
        ("all_calls_per_accepted_line", "all model calls / accepted"),
        ("model_request_p50_ms", "requests needing a model call: p50 (ms)"),
        ("model_request_p95_ms", "requests needing a model call: p95 (ms)"),
        ("speculative_ms", "engine ms on speculation"),
        ("discarded_speculative_ms", "engine ms on discarded speculation"),
        ("speculation_hits", "requests served from a speculation"),
        ("speculation_waits", "requests that waited for a running speculation"),
    ]
    out = [
        f"# Typing replay with a simulated person ({report['device']})",
        "",
        f"Run {report['started']} ({report['runtime_s']} s); load average at start "
        f"{report['load_average']}. Regions typed: {report['regions']}; int8, maxNewTokens "
        f"{report['max_new_tokens']}, intraThreads {report['intra_threads']}; the person "
        f"reads a shown suggestion {READ_S[0]}-{READ_S[1]} s, accepts it when it matches "
        "the real next text, else types on (same seed for every run).",
        "",
    ]
    names = list(report["runs"])
    out += ["| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for key, label in keys:
        out.append(
            f"| {label} | " + " | ".join(str(report["runs"][n].get(key)) for n in names) + " |"
        )
    out += [
        "",
        "Engine ms are the engine thread's wall time per generation (with intraThreads "
        "1, about one core's CPU time). The 220m shape has random weights: nothing it "
        "suggests matches, so its runs show the cost side only.",
        "",
    ]
    return "\n".join(out)


def run_replay(args) -> int:
    from codet5_lsp.inference.models import resolve_model

    started = time.perf_counter()
    models = {"labmodel": resolve_model(str(LABMODEL), quantization="int8_float32").folder}
    if not args.no_shape:
        from bench.quality import bench_cache_dir
        from bench.speculation import shape_folder

        models["220m-shape"] = shape_folder(bench_cache_dir())
    lines = 6 if args.quick else args.lines
    regions = REPLAY_REGIONS[:1] if args.quick else REPLAY_REGIONS[: args.regions]
    report: dict[str, Any] = {
        "device": device_description("cpu"),
        "regions": [f"{f}:{s}+{lines}" for f, s in regions],
        "max_new_tokens": args.max_new_tokens,
        "intra_threads": args.intra_threads,
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "runs": {},
    }
    for name, folder in models.items():
        for speculation in (False, True):
            run = f"{name} {'speculation' if speculation else 'no speculation'}"
            parts = []
            # the random-weight shape never matches: one region shows its cost
            for file, start in regions if name == "labmodel" else regions[:1]:
                source = (HELDOUT / file).read_text().split("\n")
                prefix_text = "\n".join(source[: start - 1]) + "\n"
                target = "\n".join(source[start - 1 : start - 1 + lines])
                print(f"[replay] {run}: {file}:{start}", flush=True)
                parts.append(
                    replay_session(
                        folder,
                        prefix_text,
                        target,
                        speculation=speculation,
                        intra_threads=args.intra_threads,
                        max_new_tokens=args.max_new_tokens,
                    )
                )
            report["runs"][run] = _merge(parts)
            print(json.dumps(report["runs"][run]), flush=True)
    report["runtime_s"] = round(time.perf_counter() - started, 1)
    text = replay_markdown(report)
    print(text)
    if not args.no_write:
        write_results("typing-replay", report, text)
    return 0


def _merge(parts: list[dict]) -> dict:
    """Sums over regions; ratios and percentiles recomputed where the parts allow."""
    if len(parts) == 1:
        return parts[0]
    out: dict[str, Any] = {}
    for key in (
        "requests",
        "shown",
        "shown_without_model_wait",
        "accepted_lines",
        "model_calls",
        "speculative_model_calls",
        "speculation_hits",
        "speculation_waits",
    ):
        out[key] = sum(p[key] for p in parts)
    for key in ("speculative_ms", "discarded_speculative_ms"):
        out[key] = round(sum(p[key] for p in parts), 1)
    out["share_without_model_wait"] = (
        round(out["shown_without_model_wait"] / out["shown"], 3) if out["shown"] else None
    )
    acc = out["accepted_lines"]
    out["model_calls_per_accepted_line"] = round(out["model_calls"] / acc, 2) if acc else None
    out["all_calls_per_accepted_line"] = (
        round((out["model_calls"] + out["speculative_model_calls"]) / acc, 2) if acc else None
    )
    shown = [x for p in parts for x in p["shown_ms"]]
    model = [x for p in parts for x in p["model_request_ms"]]
    out["perceived_p50_ms"] = _r(percentile(shown, 50))
    out["perceived_p95_ms"] = _r(percentile(shown, 95))
    out["model_request_p50_ms"] = _r(percentile(model, 50))
    out["model_request_p95_ms"] = _r(percentile(model, 95))
    out["per_region"] = parts
    return out


def _params(uri: str, line: int, character: int) -> dict:
    return {
        "textDocument": {"uri": uri},
        "position": {"line": line, "character": character},
        "context": {"triggerKind": 2},
    }


def _summarize(
    client: Client, sent: dict[int, float], cancelled_by_client: set[int], before: dict, after: dict
) -> dict:
    answered: list[float] = []
    with_suggestion: list[float] = []
    cached = cancelled = errors = 0
    for msg_id, start in sent.items():
        at, reply = client.responses[msg_id]
        if "error" in reply:
            if reply["error"]["code"] == -32800:
                cancelled += 1
            else:
                errors += 1
            continue
        ms = (at - start) * 1000
        answered.append(ms)
        items = (reply["result"] or {}).get("items") or []
        if items:
            with_suggestion.append(ms)
            if str(items[0]["command"]["arguments"][0]).startswith("c"):
                cached += 1
    requests = len(sent)
    model_calls = after["modelCalls"] - before["modelCalls"]
    cache_hits = after["cacheHits"] - before["cacheHits"]
    return {
        "requests": requests,
        "answered": len(answered),
        "cancelled": cancelled,
        "cancel_notifications_sent": len(cancelled_by_client),
        "errors": errors,
        "with_suggestion": len(with_suggestion),
        "served_from_cache": cached,
        "cache_share": round(cached / requests, 3) if requests else None,
        "server_cache_hits": cache_hits,
        "model_calls": model_calls,
        "model_calls_per_request": round(model_calls / requests, 3) if requests else None,
        "latency_p50_ms": _r(percentile(answered, 50)),
        "latency_p95_ms": _r(percentile(answered, 95)),
        "suggestion_latency_p50_ms": _r(percentile(with_suggestion, 50)),
        "suggestion_latency_p95_ms": _r(percentile(with_suggestion, 95)),
    }


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


# ---- report ----------------------------------------------------------------------------------


def device_description(device: str) -> str:
    if device == "cuda":
        try:
            name = subprocess.run(
                ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=20,
            ).stdout.strip()
        except Exception:
            name = "unknown GPU"
        return f"cuda ({name})"
    return cpu_description()


def markdown(report: dict) -> str:
    runs = report["runs"]
    keys = [
        ("requests", "completion requests"),
        ("answered", "answered (result)"),
        ("cancelled", "cancelled (-32800)"),
        ("with_suggestion", "with a suggestion"),
        ("served_from_cache", "served from the type-through cache"),
        ("cache_share", "share served from the cache"),
        ("model_calls", "model calls"),
        ("model_calls_per_request", "model calls / request"),
        ("latency_p50_ms", "latency p50 (ms), answered"),
        ("latency_p95_ms", "latency p95 (ms), answered"),
        ("suggestion_latency_p50_ms", "latency p50 (ms), with a suggestion"),
        ("suggestion_latency_p95_ms", "latency p95 (ms), with a suggestion"),
    ]
    names = list(runs)
    out = [
        f"# Typing session ({report['device']})",
        "",
        f"Typed {report['keystrokes']} keystrokes ({report['typed_lines']} lines of "
        f"`{report['file']}` from line {report['start_line']}) in "
        f"{report['typing_seconds']:.0f} s of scripted time; model `{report['model']}` "
        f"({report['compute_type']}), maxNewTokens {report['max_new_tokens']}, "
        f"intraThreads {report['intra_threads']}. "
        f"Load average at start: {report['load_average']}.",
        "",
        "| | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for key, label in keys:
        out.append(f"| {label} | " + " | ".join(str(runs[n][key]) for n in names) + " |")
    out += [
        "",
        "`debounce+cancel`: server default debounce, the client cancels the previous "
        "request with each keystroke (VS Code). `no-debounce`: debounceMs 0 and "
        "debounceMaxMs 0, the client cancels nothing (the server still stops a superseded "
        "generation: latest wins per document). "
        "Latency: request sent -> response received, over stdio. The type-through cache "
        "serves a request when the text typed since a shown suggestion matches it.",
        "",
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.typing", description=__doc__)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--compute-type", dest="compute_type", default=None)
    parser.add_argument(
        "--model",
        default=None,
        help="converted model folder (default: the labmodel, converted int8)",
    )
    parser.add_argument("--file", default=DEFAULT_FILE, help="a file in bench/data/heldout")
    parser.add_argument("--start-line", type=int, default=DEFAULT_START_LINE)
    parser.add_argument("--lines", type=int, default=12)
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument(
        "--intra-threads",
        type=int,
        default=1,
        help="CTranslate2 threads (0: the server's default). 1 by default: on "
        "a busy 2-core machine 2 threads stall generation for seconds",
    )
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument(
        "--replay",
        action="store_true",
        help="replay held-out typing with a simulated person, with and without "
        "speculation (bench/results/typing-replay.*)",
    )
    parser.add_argument("--quick", action="store_true", help="--replay: one region, 6 lines")
    parser.add_argument(
        "--regions",
        type=int,
        default=len(REPLAY_REGIONS),
        help="--replay: how many held-out regions to type",
    )
    parser.add_argument(
        "--no-shape", action="store_true", help="--replay: the labmodel only (no 220m-shaped model)"
    )
    args = parser.parse_args(argv)
    if args.replay:
        return run_replay(args)
    compute_type = args.compute_type or ("int8" if args.device == "cpu" else "bfloat16")
    if args.model:
        model_folder = Path(args.model)
    else:
        from codet5_lsp.inference.models import resolve_model

        quantization = "int8_float32" if compute_type == "int8" else compute_type
        model_folder = resolve_model(str(LABMODEL), quantization=quantization).folder
    source = (HELDOUT / args.file).read_text().split("\n")
    first = args.start_line - 1
    prefix_text = "\n".join(source[:first]) + "\n"
    typed = [line for line in source[first : first + args.lines]]
    script = keystrokes(typed)
    report: dict[str, Any] = {
        "device": device_description(args.device),
        "model": str(model_folder),
        "compute_type": compute_type,
        "file": args.file,
        "start_line": args.start_line,
        "typed_lines": len(typed),
        "keystrokes": len(script),
        "typing_seconds": round(sum(d for _, d in script), 1),
        "max_new_tokens": args.max_new_tokens,
        "intra_threads": args.intra_threads,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "runs": {},
    }
    for name, debounce, cancel in (("debounce+cancel", True, True), ("no-debounce", False, False)):
        print(f"[typing] {name}: {len(script)} keystrokes ...", flush=True)
        report["runs"][name] = run_session(
            model_folder,
            args.device,
            compute_type,
            prefix_text,
            script,
            debounce=debounce,
            cancel=cancel,
            max_new_tokens=args.max_new_tokens,
            intra_threads=args.intra_threads,
        )
        print(json.dumps(report["runs"][name], indent=1), flush=True)
    text = markdown(report)
    print(text)
    if not args.no_write:
        write_results("typing", report, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
