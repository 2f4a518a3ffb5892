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
            out.append((line[:len(line) - len(body)], 0.3))
        for ch in body:
            delay = min(0.6, max(0.03, rng.lognormvariate(-2.2, 0.45)))  # median ~110 ms
            if ch in " (.,":
                delay *= 1.3
            out.append((ch, delay))
        if i + 1 < len(lines):
            nxt = lines[i + 1]
            pause = rng.uniform(0.4, 1.2) if rng.random() < 0.3 else 0.0
            out.append(("\n" + nxt[:len(nxt) - len(nxt.lstrip(" "))],
                        min(0.6, max(0.05, rng.lognormvariate(-2.0, 0.4))) + pause))
    return out


# ---- a small stdio LSP client ----------------------------------------------------------------

class Client:
    """Frames JSON-RPC over the server's pipes; a thread records responses and their times."""

    def __init__(self, args: list[str], state_dir: Path):
        env = dict(os.environ, XDG_CACHE_HOME=str(state_dir), XDG_STATE_HOME=str(state_dir))
        self.log = open(state_dir / "server.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "codet5_lsp.server.cli", "serve", "--stats-file",
             str(state_dir / "stats.jsonl"), *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, env=env)
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

def run_session(model_folder: Path, device: str, compute_type: str, prefix_text: str,
                script: list[tuple[str, float]], *, debounce: bool, cancel: bool,
                max_new_tokens: int, intra_threads: int) -> dict:
    state_dir = Path(tempfile.mkdtemp(prefix="codet5-bench-typing-"))
    client = Client(["--model", str(model_folder), "--device", device, "--compute-type",
                     compute_type], state_dir)
    options: dict[str, Any] = {"requestTimeoutMs": 600_000, "maxNewTokens": max_new_tokens,
                               "summariesEnabled": False, "intraThreads": intra_threads}
    if not debounce:  # both bounds of the adaptive debounce: debounceMs alone is the minimum
        options["debounceMs"] = 0
        options["debounceMaxMs"] = 0
    try:
        client.call("initialize", {"processId": os.getpid(), "rootUri": None,
                                   "capabilities": {}, "initializationOptions": options})
        client.notify("initialized", {})
        if not client.wait(lambda: client.statuses and client.statuses[-1]["state"] in
                           ("ready", "error"), 300):
            raise TimeoutError("model not ready")
        if client.statuses[-1]["state"] != "ready":
            raise RuntimeError(f"model failed to load: {client.statuses[-1]}")
        uri = "file:///bench/typing.py"
        client.notify("textDocument/didOpen", {"textDocument": {
            "uri": uri, "languageId": "python", "version": 1, "text": prefix_text}})
        lines = prefix_text.split("\n")
        line, character = len(lines) - 1, len(lines[-1])
        # Warm-up (not counted): the first generation pays one-time costs.
        client.call("textDocument/inlineCompletion", _params(uri, line, character))
        before = client.call("workspace/executeCommand",
                             {"command": "codet5.debugStats"})["result"]
        sent: dict[int, float] = {}
        cancelled_by_client: set[int] = set()
        previous: int | None = None
        version = 1
        next_at = time.perf_counter()
        for text, delay in script:
            next_at += delay
            time.sleep(max(0.0, next_at - time.perf_counter()))
            version += 1
            client.notify("textDocument/didChange", {
                "textDocument": {"uri": uri, "version": version},
                "contentChanges": [{"range": {"start": {"line": line, "character": character},
                                              "end": {"line": line, "character": character}},
                                    "text": text}]})
            if "\n" in text:
                line, character = line + text.count("\n"), len(text.rsplit("\n", 1)[1])
            else:
                character += len(text.encode("utf-16-le")) // 2
            if cancel and previous is not None and previous not in client.responses:
                client.notify("$/cancelRequest", {"id": previous})
                cancelled_by_client.add(previous)
            previous = client.request("textDocument/inlineCompletion",
                                      _params(uri, line, character))
            sent[previous] = time.perf_counter()
        if not client.wait(lambda: all(i in client.responses for i in sent), 600):
            raise TimeoutError("requests left unanswered")
        after = client.call("workspace/executeCommand",
                            {"command": "codet5.debugStats"})["result"]
        return _summarize(client, sent, cancelled_by_client, before, after)
    finally:
        client.close()


def _params(uri: str, line: int, character: int) -> dict:
    return {"textDocument": {"uri": uri}, "position": {"line": line, "character": character},
            "context": {"triggerKind": 2}}


def _summarize(client: Client, sent: dict[int, float], cancelled_by_client: set[int],
               before: dict, after: dict) -> dict:
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
            name = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                                  capture_output=True, text=True, timeout=20).stdout.strip()
        except Exception:
            name = "unknown GPU"
        return f"cuda ({name})"
    return cpu_description()


def markdown(report: dict) -> str:
    runs = report["runs"]
    keys = [("requests", "completion requests"), ("answered", "answered (result)"),
            ("cancelled", "cancelled (-32800)"), ("with_suggestion", "with a suggestion"),
            ("served_from_cache", "served from the type-through cache"),
            ("cache_share", "share served from the cache"),
            ("model_calls", "model calls"), ("model_calls_per_request", "model calls / request"),
            ("latency_p50_ms", "latency p50 (ms), answered"),
            ("latency_p95_ms", "latency p95 (ms), answered"),
            ("suggestion_latency_p50_ms", "latency p50 (ms), with a suggestion"),
            ("suggestion_latency_p95_ms", "latency p95 (ms), with a suggestion")]
    names = list(runs)
    out = [f"# Typing session ({report['device']})", "",
           f"Typed {report['keystrokes']} keystrokes ({report['typed_lines']} lines of "
           f"`{report['file']}` from line {report['start_line']}) in "
           f"{report['typing_seconds']:.0f} s of scripted time; model `{report['model']}` "
           f"({report['compute_type']}), maxNewTokens {report['max_new_tokens']}, "
           f"intraThreads {report['intra_threads']}. "
           f"Load average at start: {report['load_average']}.", "",
           "| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for key, label in keys:
        out.append(f"| {label} | " + " | ".join(str(runs[n][key]) for n in names) + " |")
    out += ["", "`debounce+cancel`: server default debounce, the client cancels the previous "
            "request with each keystroke (VS Code). `no-debounce`: debounceMs 0 and "
            "debounceMaxMs 0, the client cancels nothing (the server still stops a superseded "
            "generation: latest wins per document). "
            "Latency: request sent -> response received, over stdio. The type-through cache "
            "serves a request when the text typed since a shown suggestion matches it.", ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.typing", description=__doc__)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--compute-type", dest="compute_type", default=None)
    parser.add_argument("--model", default=None,
                        help="converted model folder (default: the labmodel, converted int8)")
    parser.add_argument("--file", default=DEFAULT_FILE, help="a file in bench/data/heldout")
    parser.add_argument("--start-line", type=int, default=DEFAULT_START_LINE)
    parser.add_argument("--lines", type=int, default=12)
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--intra-threads", type=int, default=1,
                        help="CTranslate2 threads (0: the server's default). 1 by default: on "
                        "a busy 2-core machine 2 threads stall generation for seconds")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
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
    typed = [line for line in source[first:first + args.lines]]
    script = keystrokes(typed)
    report: dict[str, Any] = {
        "device": device_description(args.device), "model": str(model_folder),
        "compute_type": compute_type, "file": args.file, "start_line": args.start_line,
        "typed_lines": len(typed), "keystrokes": len(script),
        "typing_seconds": round(sum(d for _, d in script), 1),
        "max_new_tokens": args.max_new_tokens, "intra_threads": args.intra_threads,
        "load_average": [round(x, 2) for x in os.getloadavg()], "runs": {}}
    for name, debounce, cancel in (("debounce+cancel", True, True),
                                   ("no-debounce", False, False)):
        print(f"[typing] {name}: {len(script)} keystrokes ...", flush=True)
        report["runs"][name] = run_session(model_folder, args.device, compute_type, prefix_text,
                                           script, debounce=debounce, cancel=cancel,
                                           max_new_tokens=args.max_new_tokens,
                                           intra_threads=args.intra_threads)
        print(json.dumps(report["runs"][name], indent=1), flush=True)
    text = markdown(report)
    print(text)
    if not args.no_write:
        write_results("typing", report, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
