"""Team server throughput: Ray Serve with batching, without, and the in-process engine.

``python -m bench.team [--device cpu|cuda] [--quick]`` writes ``bench/results/team-<device>
.{json,md}``.

1, 4 and 16 simulated editors, each sending line-completion requests back to back (closed
loop, no think time), every request with a fresh context: a held-out cursor position
(bench/cases.py) the engine has not seen, 384 tokens before the cursor, the line stop rule.
Three engines, in one run, on the same requests:

- ``serve-batched``: `codet5-lsp team-server` (a subprocess: local Ray cluster, one replica)
  with `@serve.batch(max_batch_size=16)`, reached through `RemoteEngine` (HTTP, loopback),
  as an editor's server would;
- ``serve-unbatched``: the same with `--max-batch-size 1`;
- ``in-process``: `CompletionEngine` in this process (what every laptop runs without a team
  server), called from the same editor threads.

Per cell: requests per second, p50 and p95 latency (submit to result, HTTP included), the
mean batch size the engine saw, and the replica's RSS (the in-process engine: this process's
RSS growth). Modes: the server's default (decoder: a 384-token forced decoder prefix) and
infill (context in the encoder). Timings on a shared machine are noisy; compare within one
run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.cases import load_cases
from bench.quality import (
    LABMODEL,
    bench_cache_dir,
    cpu_description,
    percentile,
    write_results,
)

EDITORS = (1, 4, 16)
CONTEXT_TOKENS = 384
SUFFIX_TOKENS = 128
MAX_NEW_TOKENS = 48
TOKEN = "bench-user-token-0123456789abcdef"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_mb(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class TeamServerProcess:
    def __init__(
        self,
        model: Path,
        device: str,
        compute_type: str,
        max_batch_size: int,
        workdir: Path,
        cpus: int,
    ):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        tokens = workdir / "tokens.txt"
        tokens.write_text(f"bench:{TOKEN}\n")
        self.log_path = workdir / f"team-batch{max_batch_size}.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "codet5_lsp.server.cli",
                    "team-server",
                    "--model",
                    str(model),
                    "--device",
                    device,
                    "--compute-type",
                    compute_type,
                    "--port",
                    str(self.port),
                    "--tokens-file",
                    str(tokens),
                    "--max-batch-size",
                    str(max_batch_size),
                    "--num-cpus",
                    str(cpus),
                    "--replica-cpus",
                    str(cpus),
                    "--object-store-mb",
                    "100",
                ],
                stdout=log,
                stderr=log,
                start_new_session=True,
                env=dict(os.environ, RAY_USAGE_STATS_ENABLED="0"),
            )
        self._wait_healthy()

    def _wait_healthy(self, timeout: float = 180) -> None:
        import http.client

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"team server exited:\n{self.log_path.read_text()[-3000:]}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/health")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError("team server did not become healthy")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)


def build_requests(tokenizer, meta, mode: str, count: int):
    from codet5_lsp.inference.prompts import build_completion_request, line_stop_rule

    cases = [c for c in load_cases() if len(c.prefix) > 1500]
    requests = []
    for case in itertools.islice(itertools.cycle(cases), count):
        requests.append(
            build_completion_request(
                mode,
                case.prefix,
                case.suffix,
                tokenizer,
                max_prefix_tokens=CONTEXT_TOKENS,
                max_suffix_tokens=SUFFIX_TOKENS,
                max_new_tokens=MAX_NEW_TOKENS,
                bos=meta.bos_token,
                eos=meta.eos_token,
                sentinel=meta.sentinel_token,
                next_sentinel=meta.next_sentinel_token,
                stop_rule=line_stop_rule,
            )
        )
    return requests


def run_cell(engine, requests, editors: int, seconds: float) -> dict:
    """`editors` threads send requests back to back for `seconds`; fresh context each."""
    feed = iter(requests)
    lock = threading.Lock()
    latencies: list[float] = []
    batch_sizes: list[float] = []
    failures = 0
    end = time.perf_counter() + seconds

    def editor() -> None:
        nonlocal failures
        while time.perf_counter() < end:
            with lock:
                request = next(feed, None)
            if request is None:
                return
            start = time.perf_counter()
            try:
                result = engine.submit(request).result(timeout=120)
            except Exception:
                with lock:
                    failures += 1
                continue
            with lock:
                latencies.append((time.perf_counter() - start) * 1000)
                batch_sizes.append(result.extra.get("batch_size", 1))

    started = time.perf_counter()
    threads = [threading.Thread(target=editor) for _ in range(editors)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    return {
        "editors": editors,
        "requests": len(latencies),
        "failures": failures,
        "wall_s": round(wall, 2),
        "rps": round(len(latencies) / wall, 2),
        "p50_ms": _round(percentile(latencies, 50)),
        "p95_ms": _round(percentile(latencies, 95)),
        "mean_engine_batch": round(sum(batch_sizes) / max(1, len(batch_sizes)), 2),
    }


def _round(value):
    return None if value is None else round(value, 1)


def run(device: str, quick: bool, modes: tuple[str, ...], editors: tuple[int, ...]) -> dict:
    from codet5_lsp.inference.engine import CompletionEngine, default_compute_type
    from codet5_lsp.inference.models import resolve_model, storage_quantization

    compute = default_compute_type(device)
    files = resolve_model(
        str(LABMODEL), quantization=storage_quantization(compute), cache_dir=bench_cache_dir()
    )
    seconds = 8.0 if quick else 30.0
    cpus = os.cpu_count() or 1
    cpus_for_engine = cpus if device == "cpu" else 1
    results: dict = {
        "device": device,
        "compute_type": compute,
        "model": "labmodel",
        "machine": cpu_description(),
        "cpus": cpus,
        "seconds_per_cell": seconds,
        "modes": list(modes),
        "editors": list(editors),
        "cells": [],
    }
    workdir = Path(tempfile.mkdtemp(prefix="codet5-bench-team-"))
    rss_before = _rss_mb()
    local = CompletionEngine(
        files, device=device, compute_type=compute, intra_threads=cpus_for_engine
    )
    results["in_process_rss_mb"] = round(_rss_mb() - rss_before, 1)
    per_cell = 150 if quick else 600
    per_mode = {
        m: build_requests(local.tokenizer, local.meta, m, per_cell * (len(editors) + 1))
        for m in modes
    }
    # All three up at once, and each cell run on the three in turn with the same requests:
    # a shared machine's load drifts, and this keeps the comparison within minutes.
    engines: list[tuple[str, object, TeamServerProcess | None]] = [("in-process", local, None)]
    try:
        for name, batch in (("serve-batched", 16), ("serve-unbatched", 1)):
            engine, server = _served(files.folder, device, compute, batch, workdir, cpus_for_engine)
            engines.append((name, engine, server))
        for mode in modes:
            for _, engine, _ in engines:
                for r in per_mode[mode][-4:]:  # first calls allocate
                    engine.submit(r).result(timeout=300)
            for k, count in enumerate(editors):
                requests = per_mode[mode][k * per_cell : (k + 1) * per_cell]
                for name, engine, server in engines:
                    cell = run_cell(engine, requests, count, seconds)
                    cell.update(engine=name, mode=mode)
                    if server is not None:
                        cell["replica_rss_mb"] = _replica_rss(engine)
                        cell["max_batch_size"] = engine.info.get("max_batch_size")
                    else:
                        cell["replica_rss_mb"] = round(_rss_mb() - rss_before, 1)
                    results["cells"].append(cell)
                    print(json.dumps(cell), flush=True)
    finally:
        for _, engine, server in engines:
            if server is not None:
                engine.close()
                server.stop()
        local.close()
    return results


def _served(folder: Path, device: str, compute: str, batch: int, workdir: Path, cpus: int):
    from codet5_lsp.inference.remote import RemoteEngine

    server = TeamServerProcess(folder, device, compute, batch, workdir, cpus)
    engine = RemoteEngine(server.url, TOKEN, workers=32)
    return engine, server


def _replica_rss(engine) -> float | None:
    try:
        info = engine.endpoint.get_json("/v1/model?tokenizer=0")
        return info["replica"]["rss_mb"]
    except Exception:
        return None


def markdown(r: dict, command: str, elapsed: float) -> str:
    lines = [
        f"# Team server throughput on {r['device']} ({r['machine']}, {r['cpus']} CPUs)",
        "",
        (
            f"`{command}`, run time {elapsed:.0f} s. labmodel, {r['compute_type']}; each "
            f"editor sends line completions back to back for {r['seconds_per_cell']:g} s, "
            f"every request a fresh held-out context ({CONTEXT_TOKENS} tokens before the "
            "cursor, line stop rule, up to 48 new tokens). Serve: one replica, HTTP on "
            "loopback through the editor-side client (RemoteEngine). Latency: submit to "
            "result."
        ),
        "",
        (
            "| mode | engine | editors | requests | req/s | p50 ms | p95 ms "
            "| mean engine batch | replica RSS MB |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in r["cells"]:
        lines.append(
            f"| {c['mode']} | {c['engine']} | {c['editors']} | {c['requests']} | "
            f"{c['rps']} | {c['p50_ms']} | {c['p95_ms']} | {c['mean_engine_batch']} | "
            f"{c.get('replica_rss_mb')} |"
        )
    lines += [
        "",
        "| mode | editors | batched / unbatched req/s | batched / in-process req/s |",
        "|---|---|---|---|",
    ]
    for mode in r["modes"]:
        for n in r["editors"]:
            cells = {c["engine"]: c for c in r["cells"] if c["mode"] == mode and c["editors"] == n}
            if {"serve-batched", "serve-unbatched", "in-process"} <= set(cells):
                b, u, i = (
                    cells[k]["rps"] for k in ("serve-batched", "serve-unbatched", "in-process")
                )
                lines.append(
                    f"| {mode} | {n} | {b / u if u else float('nan'):.2f}x | "
                    f"{b / i if i else float('nan'):.2f}x |"
                )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.team", description=__doc__)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--quick", action="store_true", help="8 s per cell instead of 30 s")
    parser.add_argument("--modes", default="decoder,infill")
    parser.add_argument("--editors", default=",".join(map(str, EDITORS)))
    args = parser.parse_args(argv)
    # Its own session: with the kernel's autogroup scheduling, a process shares the CPU with
    # its session, and the team servers (started in new sessions) would otherwise get a
    # larger share on a busy machine than the in-process engine here.
    try:
        os.setsid()
    except OSError:  # already a session leader
        pass
    started = time.time()
    modes = tuple(m for m in args.modes.split(",") if m)
    editors = tuple(int(n) for n in args.editors.split(",") if n)
    results = run(args.device, args.quick, modes, editors)
    command = "python -m bench.team " + " ".join(argv if argv is not None else sys.argv[1:])
    elapsed = time.time() - started
    results["run_time_s"] = round(elapsed, 1)
    write_results(f"team-{args.device}", results, markdown(results, command.strip(), elapsed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
