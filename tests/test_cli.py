"""The `codet5-lsp` command: complete, convert, doctor, serve --tcp, stats."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.slow  # each test runs the CLI in a subprocess

CLI = [sys.executable, "-m", "codet5_lsp.server.cli"]


def run(*args, timeout=300, **kw):
    return subprocess.run(CLI + list(args), capture_output=True, text=True, timeout=timeout, **kw)


def test_complete_prints_the_engine_completion(labmodel_float32, tmp_path):
    source = tmp_path / "demo.py"
    source.write_text("import os\n\n\ndef list_files(folder):\n    return os.listdir(\n")
    proc = run(
        "complete",
        f"{source}:5:22",
        "--model",
        str(labmodel_float32.folder),
        "--device",
        "cpu",
        "--compute-type",
        "float32",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip(), "no completion printed"
    assert "\n" not in proc.stdout.rstrip("\n")  # one line


def test_complete_reports_a_bad_position(labmodel_float32, tmp_path):
    source = tmp_path / "demo.py"
    source.write_text("x = 1\n")
    proc = run(
        "complete", f"{source}:99:1", "--model", str(labmodel_float32.folder), "--device", "cpu"
    )
    assert proc.returncode == 1
    assert "line" in proc.stderr.lower()


def test_complete_reports_a_missing_model(tmp_path):
    source = tmp_path / "demo.py"
    source.write_text("x = 1\n")
    missing = tmp_path / "no-model"
    proc = run("complete", f"{source}:1:3", "--model", str(missing))
    assert proc.returncode == 1
    assert str(missing) in proc.stderr


def test_convert_writes_a_complete_folder(labmodel_path, tmp_path):
    out = tmp_path / "converted"
    proc = run(
        "convert", str(labmodel_path), "--quantization", "int8_float32", "--output", str(out)
    )
    assert proc.returncode == 0, proc.stderr
    meta = json.loads((out / "codet5_lsp.json").read_text())
    assert meta["quantization"] == "int8_float32" and meta["parallel_prefix"] is True
    assert (out / "tokenizer.json").is_file() and (out / "model.bin").is_file()


def test_convert_offline_hub_id_fails_clearly(tmp_path):
    proc = run("convert", "Salesforce/codet5p-220m", "--offline", "--cache-dir", str(tmp_path))
    assert proc.returncode == 1
    assert "local checkpoint folder" in proc.stderr


def test_doctor_reports_versions_devices_and_model(labmodel_int8):
    proc = run("doctor", "--model", str(labmodel_int8.folder), "--device", "cpu")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for key in ("ctranslate2", "cuda_devices", "cpu_compute_types", "cache_dir", "model_status"):
        assert key in proc.stdout
    assert "loads" in proc.stdout
    # the probe ran on this (stock, pinned 4.8.5) ctranslate2; the user need not act
    assert (
        "t5_one_pass_prefix: stock ctranslate2: T5 conversions get our rewrite "
        "automatically; nothing to do" in proc.stdout
    )
    # the hover model's state is reported too (the labmodel stands in for both here)
    assert "summary_model:" in proc.stdout and "summary_status:" in proc.stdout


def test_doctor_fails_on_a_broken_model(tmp_path):
    proc = run("doctor", "--model", str(tmp_path / "missing"), "--device", "cpu")
    assert proc.returncode == 1
    assert "error" in proc.stdout


def test_serve_over_tcp_answers_initialize(labmodel_int8):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        CLI
        + [
            "serve",
            "--tcp",
            f"127.0.0.1:{port}",
            "--model",
            str(labmodel_int8.folder),
            "--device",
            "cpu",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.time() + 60
        while True:
            try:
                conn = socket.create_connection(("127.0.0.1", port), timeout=5)
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    pytest.fail("server did not listen: " + server.stderr.read().decode())
                time.sleep(0.2)
        body = json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {"processId": None, "rootUri": None, "capabilities": {}},
            }
        )
        conn.sendall(f"Content-Length: {len(body)}\r\n\r\n{body}".encode())
        conn.settimeout(30)
        data = b""
        while b"inlineCompletionProvider" not in data:
            chunk = conn.recv(65536)
            assert chunk, "connection closed"
            data += chunk
        conn.close()
    finally:
        server.kill()
        server.wait()


def test_stats_reads_the_local_log(tmp_path):
    log = tmp_path / "stats.jsonl"
    log.write_text(
        "\n".join(
            json.dumps(e)
            for e in [
                {"kind": "shown", "id": "a", "latency_ms": 10, "ts": 1, "language": "python"},
                {"kind": "shown", "id": "b", "latency_ms": 30, "ts": 2, "language": "python"},
                {"kind": "accepted", "id": "a", "ts": 3},
            ]
        )
        + "\n"
    )
    proc = run("stats", "--stats-file", str(log))
    assert proc.returncode == 0
    assert "50" in proc.stdout  # 1 of 2 accepted


def test_complete_after_enter_starts_with_code_not_a_space(labmodel_float32, tmp_path):
    """`def add(a, b):` + Enter + auto-indent: the printed suggestion is what would be
    inserted at column 5, so it must start with code (token healing), and the line it makes
    has the block's indentation (4), not 5."""
    source = tmp_path / "demo.py"
    source.write_text("def add(a, b):\n    \n")
    proc = run(
        "complete",
        f"{source}:2:5",
        "--model",
        str(labmodel_float32.folder),
        "--device",
        "cpu",
        "--compute-type",
        "float32",
    )
    assert proc.returncode == 0, proc.stderr
    first_line = proc.stdout.split("\n")[0]
    assert first_line and not first_line[0].isspace(), repr(proc.stdout)
    inserted = "    " + first_line
    assert len(inserted) - len(inserted.lstrip()) == 4
