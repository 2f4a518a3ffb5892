"""A new user's first hour at the terminal: every mistake is one line naming the thing, with
the right exit code and no traceback; `serve` says it is alive and stops on the first Ctrl-C;
conversions are checked before they start and shared by `convert` and `serve`."""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # each test runs the CLI in a subprocess

CLI = [sys.executable, "-m", "codet5_lsp.server.cli"]


def run(*args, timeout=300, **kw):
    return subprocess.run(
        CLI + [str(a) for a in args], capture_output=True, text=True, timeout=timeout, **kw
    )


def assert_one_line_error(proc, *named: str, code: int | None = None) -> str:
    """Non-zero exit, exactly one line on stderr that names each of `named`, no traceback."""
    assert proc.returncode != 0, proc.stdout + proc.stderr
    if code is not None:
        assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    line = lines[0]
    assert line.startswith("codet5-lsp: "), line
    for thing in named:
        assert thing in line, (thing, line)
    return line


def assert_nothing_cached(cache: Path) -> None:
    """No conversion, finished or partial (hidden work folders included), in `cache`."""
    assert not cache.exists() or list(cache.iterdir()) == [], list(cache.iterdir())


@pytest.fixture()
def demo(tmp_path) -> Path:
    source = tmp_path / "demo.py"
    source.write_text("import os\n\n\ndef list_files(folder):\n    return os.listdir(\n")
    return source


# -- complete: positions are 1-based, and checked before any model is loaded ---------------


@pytest.mark.parametrize(
    "location, code, named",
    [
        ("{p}:0:0", 2, ["{p}:0:0", "count from 1"]),
        ("{p}:-3:2", 2, ["{p}:-3:2", "count from 1"]),
        ("{p}:1:0", 2, ["count from 1"]),
        ("{p}:99:1", 1, ["{p}:99:1", "ends at line 6"]),  # 1-based in the answer too
        ("{p}:5:40", 1, ["line 5 has 22 characters", "columns 1-23"]),  # past the end of line
        ("{p}:5", 2, ["PATH:LINE:COLUMN"]),
        ("{p}:x:1", 2, ["PATH:LINE:COLUMN"]),
    ],
)
def test_complete_rejects_a_position_with_one_line(demo, location, code, named):
    # a model path that does not exist: the position must be refused before any model work
    proc = run("complete", location.format(p=demo), "--model", demo.parent / "no-model")
    assert_one_line_error(proc, *[n.format(p=demo) for n in named], code=code)


def test_complete_names_an_unreadable_file(tmp_path):
    proc = run("complete", f"{tmp_path / 'missing.py'}:1:1")
    assert_one_line_error(proc, "missing.py", "No such file", code=1)
    proc = run("complete", f"{tmp_path}:1:1")
    assert_one_line_error(proc, str(tmp_path), "directory", code=1)
    binary = tmp_path / "blob.py"
    binary.write_bytes(b"\xff\xfe\x00bad")
    assert_one_line_error(run("complete", f"{binary}:1:1"), "blob.py", "not UTF-8", code=1)


def test_a_model_error_is_printed_once(demo, tmp_path):
    missing = tmp_path / "no-model"
    proc = run("complete", f"{demo}:1:1", "--model", missing)
    line = assert_one_line_error(proc, str(missing), code=1)
    assert line.count(str(missing)) == 1


def test_offline_hub_id_says_which_flag_without_hub_internals(demo, tmp_path):
    proc = run(
        "complete",
        f"{demo}:1:1",
        "--model",
        "Salesforce/codet5p-220m",
        "--offline",
        "--cache-dir",
        tmp_path / "cache",
    )
    line = assert_one_line_error(proc, "Salesforce/codet5p-220m", "offline", "--model PATH", code=1)
    for internal in ("local_files_only", "LocalEntryNotFoundError", "snapshot"):
        assert internal not in line
    assert not (tmp_path / "cache").exists()


# -- serve: flags are checked before it starts ----------------------------------------------


def test_serve_rejects_a_port_out_of_range_and_a_bad_address():
    assert_one_line_error(run("serve", "--tcp", "127.0.0.1:99999"), "99999", "out of range", code=2)
    assert_one_line_error(run("serve", "--tcp", "127.0.0.1:http"), "HOST:PORT", code=2)


def test_serve_names_a_port_in_use():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = run("serve", "--tcp", f"127.0.0.1:{port}", timeout=60)
    assert_one_line_error(proc, f"127.0.0.1:{port}", "already in use", code=1)


@pytest.mark.parametrize("command", ["stats", "serve"])
def test_a_stats_file_that_is_a_folder_is_named(tmp_path, command):
    proc = run(command, "--stats-file", tmp_path, timeout=60)
    assert_one_line_error(proc, f"--stats-file {tmp_path}", "is a folder", code=2)


def test_convert_refuses_to_overwrite_a_folder_that_is_not_a_model(labmodel_path, tmp_path):
    mine = tmp_path / "my-project"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    proc = run("convert", labmodel_path, "--output", mine)
    assert_one_line_error(proc, str(mine), "not a converted model folder", code=2)
    assert (mine / "notes.txt").read_text() == "keep me"


# -- serve in a terminal ------------------------------------------------------------------


def _read_available(fd: int, seconds: float) -> bytes:
    out = b""
    end = time.time() + seconds
    while time.time() < end:
        ready, _, _ = select.select([fd], [], [], 0.05)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
    return out


def test_serve_in_a_terminal_prints_a_banner_and_stops_on_the_first_ctrl_c(labmodel_int8):
    pid, fd = pty.fork()
    if pid == 0:  # the child: serve with the pty as stdin/stdout/stderr and controlling tty
        try:
            os.execv(
                sys.executable,
                CLI + ["serve", "--model", str(labmodel_int8.folder), "--device", "cpu"],
            )
        finally:
            os._exit(127)
    try:
        banner = b""
        deadline = time.time() + 60
        while b"Ctrl-C quits" not in banner and time.time() < deadline:
            banner += _read_available(fd, 0.2)
        text = banner.decode()
        assert "waiting for an LSP client on stdio" in text, text
        assert "codet5-lsp complete" in text and "codet5-lsp doctor" in text
        time.sleep(1.0)  # let the model load start: Ctrl-C must not wait for it
        started = time.time()
        os.write(fd, b"\x03")  # the terminal turns this into SIGINT for the foreground group
        status = None
        while time.time() - started < 2.0:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.02)
        else:
            pytest.fail("serve still running 2 s after Ctrl-C")
        rest = _read_available(fd, 0.3).decode().replace("^C", "")
        assert rest.strip() == "", f"printed after Ctrl-C: {rest!r}"
        assert os.WIFEXITED(status), status
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(fd)


def test_serve_on_stdio_prints_no_banner_to_an_editor(labmodel_int8):
    proc = subprocess.Popen(
        CLI + ["serve", "--model", str(labmodel_int8.folder), "--device", "cpu"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        body = json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {"processId": None, "rootUri": None, "capabilities": {}},
            }
        )
        proc.stdin.write(f"Content-Length: {len(body)}\r\n\r\n{body}".encode())
        proc.stdin.flush()
        assert proc.stdout.readline().startswith(b"Content-Length")  # it serves
        started = time.time()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=2) == 0
        assert time.time() - started < 2
        err = proc.stderr.read().decode()
        assert "waiting for an LSP client" not in err and "Traceback" not in err, err
    finally:
        proc.kill()
        proc.wait()


def test_serve_tcp_prints_the_address_it_listens_on(labmodel_int8):
    proc = subprocess.Popen(
        CLI
        + [
            "serve",
            "--tcp",
            "127.0.0.1:0",
            "--model",
            str(labmodel_int8.folder),
            "--device",
            "cpu",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        line = proc.stderr.readline().decode()
        assert line.startswith("codet5-lsp: listening for an LSP client on 127.0.0.1:"), line
        port = int(line.split("127.0.0.1:")[1].split()[0])
        assert port > 0
        deadline = time.time() + 30
        while True:
            try:
                client = socket.create_connection(("127.0.0.1", port), timeout=2)
                break
            except OSError:
                assert time.time() < deadline, "nothing listens on the printed address"
                time.sleep(0.1)
        with client:  # connected (a client that leaves ends a TCP server too: pygls)
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=2) == 128 + signal.SIGINT
        assert b"Traceback" not in proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()


# -- conversions ----------------------------------------------------------------------------


def test_convert_then_serve_on_cpu_share_one_conversion(labmodel_path, demo, tmp_path):
    cache = tmp_path / "cache"
    proc = run("convert", labmodel_path, "--cache-dir", cache)
    assert proc.returncode == 0, proc.stderr
    assert len(list(cache.iterdir())) == 1
    converted = next(cache.iterdir())
    assert "int8_float32" in converted.name  # what int8 serving on CPU stores
    # `complete` loads the model through the same ModelManager as `serve`
    proc = run(
        "complete",
        f"{demo}:5:22",
        "--model",
        labmodel_path,
        "--cache-dir",
        cache,
        "--device",
        "cpu",
    )
    assert proc.returncode == 0, proc.stderr
    assert [p.name for p in cache.iterdir()] == [converted.name]


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="a GPU may be present")
@pytest.mark.parametrize("command", ["convert", "complete", "doctor"])
def test_device_cuda_without_a_gpu_creates_nothing(labmodel_path, demo, tmp_path, command):
    cache = tmp_path / "cache"
    args = {
        "convert": ["convert", labmodel_path],
        "complete": ["complete", f"{demo}:5:22", "--model", labmodel_path],
        "doctor": ["doctor", "--model", labmodel_path],
    }[command]
    proc = run(*args, "--device", "cuda", "--cache-dir", cache)
    if command == "doctor":  # doctor reports on stdout and fails
        assert proc.returncode == 1 and "no CUDA GPU" in proc.stdout, proc.stdout
    else:
        assert_one_line_error(proc, "--device cuda", "no CUDA GPU", code=1)
    assert_nothing_cached(cache)


def test_a_compute_type_the_cpu_cannot_run_creates_nothing(labmodel_path, demo, tmp_path):
    cache = tmp_path / "cache"
    proc = run(
        "complete",
        f"{demo}:5:22",
        "--model",
        labmodel_path,
        "--device",
        "cpu",
        "--compute-type",
        "float16",
        "--cache-dir",
        cache,
    )
    assert_one_line_error(proc, "--compute-type float16", "not supported on cpu", code=1)
    assert not cache.exists()


def _copy_labmodel(labmodel_path: Path, dst: Path) -> Path:
    """A copy of the stand-in checkpoint: symlinks, so a test can break one file cheaply."""
    dst.mkdir()
    for item in labmodel_path.iterdir():
        (dst / item.name).symlink_to(item)
    return dst


def test_a_missing_vocab_is_named_before_converting(labmodel_path, tmp_path):
    src = _copy_labmodel(labmodel_path, tmp_path / "ckpt")
    (src / "vocab.json").unlink()
    proc = run("convert", src, "--cache-dir", tmp_path / "cache")
    assert_one_line_error(proc, str(src), "vocab.json", code=1)
    assert_nothing_cached(tmp_path / "cache")


def test_a_truncated_weights_file_is_named(labmodel_path, tmp_path):
    src = _copy_labmodel(labmodel_path, tmp_path / "ckpt")
    shard = src / "model-00002-of-00004.safetensors"
    data = shard.read_bytes()
    shard.unlink()
    shard.write_bytes(data[: len(data) // 2])
    proc = run("convert", src, "--cache-dir", tmp_path / "cache")
    assert_one_line_error(proc, str(shard), "truncated", code=1)
    assert_nothing_cached(tmp_path / "cache")


def test_a_conversion_whose_load_fails_is_removed(labmodel_path, tmp_path, monkeypatch):
    from codet5_lsp.inference import engine as engine_module
    from codet5_lsp.server.model_manager import ModelManager
    from codet5_lsp.server.settings import Settings

    def fail(*_a, **_k):
        raise engine_module.ModelError("cannot load (simulated out of memory)")

    monkeypatch.setattr(engine_module, "CompletionEngine", fail)
    cache = tmp_path / "cache"
    models = ModelManager(
        Settings(
            model=str(labmodel_path), device="cpu", cache_dir=str(cache), summaries_enabled=False
        )
    )
    assert models.wait_ready(timeout=300)
    state, error = models.state()
    models.close()
    assert state == "error" and "simulated" in error
    assert list(cache.iterdir()) == []  # converted, failed to load, removed


def test_a_cache_dir_that_is_a_file_is_named(labmodel_path, tmp_path):
    not_a_folder = tmp_path / "cache"
    not_a_folder.write_text("")
    proc = run("convert", labmodel_path, "--cache-dir", not_a_folder)
    assert_one_line_error(proc, str(not_a_folder), code=1)


def test_a_log_file_that_cannot_be_written_is_named(tmp_path):
    target = tmp_path / "no-such-folder" / "server.log"
    proc = run("serve", "--log-file", target, timeout=60)
    assert_one_line_error(proc, f"--log-file {target}", "cannot write", code=2)


def test_doctor_reports_a_summary_model_that_cannot_load_and_the_fallback(labmodel_int8, tmp_path):
    missing = tmp_path / "no-summary-model"
    proc = run(
        "doctor", "--model", labmodel_int8.folder, "--summary-model", missing, "--device", "cpu"
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr  # the completion model loads
    status = next(line for line in proc.stdout.splitlines() if "summary_status:" in line)
    assert str(missing) in status and "hovers use the completion model" in status


def test_an_offline_summary_model_names_its_own_flag(labmodel_int8, tmp_path):
    from codet5_lsp.server.model_manager import ModelManager
    from codet5_lsp.server.settings import Settings

    models = ModelManager(
        Settings(
            model=str(labmodel_int8.folder),
            device="cpu",
            summary_model="Salesforce/codet5p-220m-bimodal",
            offline=True,
            cache_dir=str(tmp_path / "cache"),
        )
    )
    try:
        models.start_loading()
        assert models.wait_ready(timeout=120, model="Salesforce/codet5p-220m-bimodal")
        assert models.wait_ready(timeout=120)
        status = models.summary_status()
    finally:
        models.close()
    assert status["state"] == "fallback" and status["used"] == str(labmodel_int8.folder)
    assert "--summary-model PATH" in status["message"]
    assert "--model PATH" not in status["message"].replace("--summary-model PATH", "")
    assert "local_files_only" not in status["message"]
