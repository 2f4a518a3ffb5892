"""`codet5-lsp` command: serve, convert, complete, doctor, stats."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import signal
import socket
import sys
from pathlib import Path

from codet5_lsp import __version__
from codet5_lsp.inference.models import ModelError
from codet5_lsp.server.settings import Settings, SettingsError
from codet5_lsp.server.team_cli import (
    add_backend_args,
    add_team_server_parser,
    cmd_team_server,
    doctor_backend,
    warn_plain_http,
)


class CliError(Exception):
    """A mistake or a failure the user can act on: one line on stderr, no traceback.

    Exit code 2 for a command line that cannot be right (argparse's convention), 1 for
    everything else (a file that cannot be read, a model that does not load).
    """

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def _one_line(message: object) -> str:
    """Library messages can span lines; the terminal gets one."""
    return " ".join(str(message).split())


def _settings_from_args(args: argparse.Namespace) -> Settings:
    overrides = {
        "model": args.model,
        "revision": args.revision,
        "device": args.device,
        "compute_type": args.compute_type,
        "completion_mode": getattr(args, "mode", None),
        "summary_model": getattr(args, "summary_model", None),
        "cache_dir": args.cache_dir,
        "offline": True if args.offline else None,
        "max_new_tokens": getattr(args, "max_new_tokens", None),
        "log_level": getattr(args, "log_level", None),
        "backend": getattr(args, "backend", None),
        "backend_token_file": getattr(args, "backend_token_file", None),
    }
    return Settings().merged({k: v for k, v in overrides.items() if v is not None})


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        help="hub id, local checkpoint folder or converted folder "
        "(default: Salesforce/codet5p-220m)",
    )
    p.add_argument("--revision", help="hub revision (branch, tag or commit)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument(
        "--compute-type",
        dest="compute_type",
        help="ctranslate2 compute type (default: fastest measured for the device)",
    )
    p.add_argument("--cache-dir", dest="cache_dir", help="where converted models are kept")
    p.add_argument("--offline", action="store_true", help="never contact the hub")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="codet5-lsp", description=__doc__)
    parser.add_argument("--version", action="version", version=f"codet5-lsp {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the language server (stdio by default)")
    _add_model_args(serve)
    serve.add_argument("--mode", choices=["auto", "decoder", "seq2seq", "infill"])
    serve.add_argument("--summary-model", dest="summary_model")
    serve.add_argument(
        "--tcp",
        metavar="HOST:PORT",
        help="listen on TCP instead of stdio (host defaults to 127.0.0.1)",
    )
    serve.add_argument("--log-file", dest="log_file")
    serve.add_argument(
        "--log-level", dest="log_level", choices=["debug", "info", "warning", "error"]
    )
    serve.add_argument(
        "--stats-file",
        dest="stats_file",
        help="local acceptance log (default: in the user state folder)",
    )
    add_backend_args(serve)

    conv = sub.add_parser("convert", help="convert a checkpoint to CTranslate2")
    conv.add_argument("source", metavar="MODEL", help="hub id or local checkpoint folder")
    conv.add_argument(
        "--quantization",
        default="auto",
        choices=[
            "auto",
            "none",
            "int8",
            "int8_float16",
            "int8_bfloat16",
            "int8_float32",
            "float16",
            "bfloat16",
            "float32",
        ],
        help="weight type of the copy (default auto: what `serve` runs on "
        "--device, so both use one cached conversion)",
    )
    conv.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default="auto",
        help="the device the conversion is for (picks the auto quantization)",
    )
    conv.add_argument("--revision")
    conv.add_argument("--cache-dir", dest="cache_dir")
    conv.add_argument("--offline", action="store_true")
    conv.add_argument("--output", help="write here instead of the cache folder")

    comp = sub.add_parser(
        "complete", help="print one completion for PATH:LINE:COLUMN (1-based line and column)"
    )
    comp.add_argument("location", metavar="PATH:LINE:COLUMN")
    _add_model_args(comp)
    comp.add_argument("--mode", choices=["auto", "decoder", "seq2seq", "infill"])
    comp.add_argument("--max-new-tokens", dest="max_new_tokens", type=int)

    context = sub.add_parser(
        "context",
        help="print what the model sees for a completion at "
        "PATH:LINE:COLUMN (1-based), part by part",
    )
    context.add_argument("location", metavar="PATH:LINE:COLUMN")
    _add_model_args(context)
    context.add_argument("--mode", choices=["auto", "decoder", "seq2seq", "infill"])
    context.add_argument(
        "--open",
        dest="open_files",
        action="append",
        default=[],
        metavar="PATH",
        help="another file taken as open in the editor (context from other files); repeatable",
    )
    context.add_argument("--json", action="store_true", help='print {"parts": [...]} as JSON')

    doctor = sub.add_parser("doctor", help="versions, devices, cache, model check")
    _add_model_args(doctor)
    doctor.add_argument(
        "--summary-model",
        dest="summary_model",
        help="the hover model to check (default: the serving default)",
    )
    add_backend_args(doctor)
    add_team_server_parser(sub)

    stats = sub.add_parser("stats", help="acceptance rate and latency from the local log")
    stats.add_argument("--stats-file", dest="stats_file")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        handler = {
            "serve": cmd_serve,
            "convert": cmd_convert,
            "complete": cmd_complete,
            "context": cmd_context,
            "doctor": cmd_doctor,
            "stats": cmd_stats,
            "team-server": cmd_team_server,
        }[args.command]
        return handler(args)
    except SettingsError as exc:
        print(f"codet5-lsp: {_one_line(exc)}", file=sys.stderr)
        return 2
    except CliError as exc:
        print(f"codet5-lsp: {_one_line(exc)}", file=sys.stderr)
        return exc.code
    except ModelError as exc:
        print(f"codet5-lsp: {_one_line(exc)}", file=sys.stderr)
        return 1
    except OSError as exc:  # a folder or file the command needed: name it, no traceback
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"codet5-lsp: {where}{exc.strerror or _one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C in a one-shot command: stop at once, quietly
        from codet5_lsp.inference.atomic import discard_unfinished_folders

        discard_unfinished_folders()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)  # a model still loading on its thread must not delay or abort the exit


def _setup_logging(level: str, log_file: str | None) -> None:
    try:
        handler: logging.Handler = (
            logging.FileHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
        )
    except OSError as exc:
        raise CliError(f"--log-file {log_file}: cannot write there ({exc.strerror})", 2) from None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("pygls").setLevel(max(logging.WARNING, root.level))


SERVE_BANNER = """\
codet5-lsp {version}: a language server, waiting for an LSP client on stdio.
Editors start it for you (see editors/ in the repository). In a terminal, try
  codet5-lsp complete FILE:LINE:COLUMN    one completion, printed here
  codet5-lsp doctor                       versions, device, model check
Ctrl-C quits."""


def cmd_serve(args: argparse.Namespace) -> int:
    _stop_at_once_on_signals()
    settings = _settings_from_args(args)
    address = _parse_listen_address(args.tcp) if args.tcp else None
    stats_path = _stats_path(args.stats_file)
    if address is not None:
        address = _check_can_listen(*address)
    _setup_logging(settings.log_level, args.log_file)
    warn_plain_http(settings.backend, settings.backend_token_file)
    from codet5_lsp.server.lsp import create_server
    from codet5_lsp.server.stats import StatsLog

    server = create_server(settings)
    server.stats = StatsLog(stats_path)
    if address is not None:
        host, port = address
        shown = f"[{host}]" if ":" in host else host
        print(
            f"codet5-lsp: listening for an LSP client on {shown}:{port} (Ctrl-C quits)",
            file=sys.stderr,
            flush=True,
        )
        server.start_tcp(host, port)
    else:
        if sys.stdin.isatty():
            print(SERVE_BANNER.format(version=__version__), file=sys.stderr, flush=True)
        server.start_io()
    # Stop the engines ourselves, then leave without interpreter teardown: destroying
    # ctranslate2 objects from atexit/GC while its threads wind down can abort the process
    # ("Resource deadlock avoided") after an otherwise clean shutdown.
    server.models.close()
    logging.shutdown()
    os._exit(0 if server.protocol._shutdown else 1)


def _stop_at_once_on_signals() -> None:
    """Ctrl-C or SIGTERM ends the server at once, printing nothing.

    pygls reads stdin on a thread that a signal cannot interrupt, so the default handling
    waited for input that never came (the first Ctrl-C was ignored, the second aborted the
    interpreter mid-write). Nothing needs saving: statistics are appended as they happen,
    and a conversion cut short has its work folder removed here.
    """

    def stop(signum, _frame) -> None:
        from codet5_lsp.inference.atomic import discard_unfinished_folders

        discard_unfinished_folders()
        os._exit(0 if signum == signal.SIGTERM else 128 + signum)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)


def _parse_listen_address(spec: str) -> tuple[str, int]:
    """HOST:PORT or PORT (host 127.0.0.1); [::1]:PORT for IPv6."""
    host, _, port_text = spec.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not re.fullmatch(r"\d+", port_text):
        raise CliError(f"--tcp {spec}: expected HOST:PORT, e.g. 127.0.0.1:2087", 2)
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise CliError(
            f"--tcp {spec}: port {port} is out of range (1-65535; 0 picks a free one)", 2
        )
    return host, port


def _check_can_listen(host: str, port: int) -> tuple[str, int]:
    """Bind once here so a port in use or an unknown host is one line, not a traceback;
    port 0 becomes the free port the system picked."""
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise CliError(f"--tcp {host}:{port}: unknown host ({exc.strerror})", 2) from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio does
        try:
            probe.bind(addr)
        except OSError as exc:
            reason = (
                "the port is already in use"
                if exc.errno == 98 or "in use" in str(exc)
                else exc.strerror or str(exc)
            )
            raise CliError(f"cannot listen on {host}:{port}: {reason}") from None
        return host, probe.getsockname()[1]


def _stats_path(value: str | None) -> Path:
    from codet5_lsp.server.stats import default_stats_path

    path = Path(value).expanduser() if value else default_stats_path()
    if path.is_dir():
        raise CliError(
            f"--stats-file {path} is a folder; name a file, e.g. {path / 'stats.jsonl'}", 2
        )
    return path


def cmd_convert(args: argparse.Namespace) -> int:
    _setup_logging("info", None)
    from codet5_lsp.inference.models import (
        check_runtime,
        convert_checkpoint,
        download_checkpoint,
        is_hub_id,
        resolve_model,
        storage_quantization,
    )

    quantization = args.quantization
    if quantization == "auto":
        # What `serve` stores for this device, so the two share one cached conversion;
        # a --device cuda without a GPU stops here, before anything is fetched or written.
        _, compute = check_runtime(args.device, "auto")
        quantization = storage_quantization(compute)
    elif args.device == "cuda":
        check_runtime("cuda", "default")
    if args.output:
        out = Path(args.output).expanduser()
        if (
            out.exists()
            and not (out / "codet5_lsp.json").is_file()
            and (not out.is_dir() or any(out.iterdir()))
        ):
            raise CliError(
                f"--output {out} exists and is not a converted model folder; name a new folder", 2
            )
        src = Path(args.source).expanduser()
        if not src.exists() and is_hub_id(args.source):
            src = download_checkpoint(
                args.source, revision=args.revision, offline=args.offline, log=print
            )
        elif not src.is_dir():
            raise CliError(
                f"model {args.source!r} is neither an existing folder nor a hub id (owner/name)"
            )
        files = convert_checkpoint(
            src, out, quantization=quantization, source=args.source, revision=args.revision
        )
    else:
        files = resolve_model(
            args.source,
            quantization=quantization,
            revision=args.revision,
            cache_dir=Path(args.cache_dir) if args.cache_dir else None,
            offline=args.offline,
            log=print,
        )
    print(files.folder)
    return 0


def cmd_complete(args: argparse.Namespace) -> int:
    settings = _settings_from_args(args)
    _setup_logging("warning", None)
    _leave_model_errors_to_the_command()
    path_str, line, column = _parse_location(args.location)
    path = Path(path_str)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CliError(f"cannot read {path}: it is not UTF-8 text") from None
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from None
    _check_location(path, text, line, column)
    from lsprotocol import types

    from codet5_lsp.server.documents import DocumentStore
    from codet5_lsp.server.languages import language_id_for_path
    from codet5_lsp.server.model_manager import ModelManager
    from codet5_lsp.server.pipeline import CompletionPipeline
    from codet5_lsp.server.positions import InvalidPositionError

    store = DocumentStore(encoding="utf-32", max_bytes=settings.max_file_bytes)
    doc = store.open(path.resolve().as_uri(), text, language_id_for_path(path), 0)
    models = ModelManager(settings)
    models.wait_ready()
    state, error = models.state()
    if state != "ready":
        models.close()
        raise CliError(str(error))
    # A one-shot command waits for its answer (the editor's 3 s budget does not apply).
    pipeline = CompletionPipeline(models, settings.merged({"request_timeout_ms": 600_000}))
    try:
        suggestion = asyncio.run(
            pipeline.complete(
                doc, types.Position(line=line - 1, character=column - 1), debounce=False
            )
        )
    except InvalidPositionError as exc:  # checked above; kept for positions the store rejects
        raise CliError(f"{path}:{line}:{column}: {exc}") from None
    finally:
        models.close()
    if suggestion is not None:
        sys.stdout.write(suggestion.text + ("\n" if not suggestion.text.endswith("\n") else ""))
    else:
        print(f"codet5-lsp: no suggestion at {path}:{line}:{column}", file=sys.stderr)
    return 0


def cmd_context(args: argparse.Namespace) -> int:
    """What the model sees at PATH:LINE:COLUMN (codet5.showContext on the command line)."""
    import json

    settings = _settings_from_args(args)
    _setup_logging("warning", None)
    _leave_model_errors_to_the_command()
    path_str, line, column = _parse_location(args.location)
    path = Path(path_str)
    texts = {}
    for name in [path_str, *args.open_files]:
        try:
            texts[Path(name).resolve().as_uri()] = Path(name).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise CliError(f"cannot read {name}: it is not UTF-8 text") from None
        except OSError as exc:
            raise CliError(f"cannot read {name}: {exc.strerror or exc}") from None
    text = texts[path.resolve().as_uri()]
    _check_location(path, text, line, column)
    from codet5_lsp.server.languages import language_id_for_path
    from codet5_lsp.server.show_context import file_context, format_parts

    others = {uri: (language_id_for_path(uri), other) for uri, other in texts.items()}
    try:
        parts, mode = file_context(settings, path, text, line - 1, column - 1, others)
    except RuntimeError as exc:
        raise CliError(str(exc)) from None
    sys.stdout.write(
        json.dumps({"parts": parts, "mode": mode}, indent=1) + "\n"
        if args.json
        else format_parts(parts)
    )
    return 0


def _leave_model_errors_to_the_command() -> None:
    """A one-shot command prints a model error itself; the loader's log line would repeat it."""
    logging.getLogger("codet5_lsp.server.model_manager").setLevel(logging.CRITICAL)


def _parse_location(location: str) -> tuple[str, int, int]:
    """PATH:LINE:COLUMN, 1-based as editors and compilers print them."""
    parts = location.rsplit(":", 2)
    if len(parts) != 3 or not parts[0] or not all(re.fullmatch(r"-?\d+", p) for p in parts[1:]):
        raise CliError(f"expected PATH:LINE:COLUMN (1-based), got {location!r}", 2)
    path, line, column = parts[0], int(parts[1]), int(parts[2])
    if line < 1 or column < 1:
        raise CliError(
            f"{location}: lines and columns count from 1 (the first character of a file is 1:1)", 2
        )
    return path, line, column


def _check_location(path: Path, text: str, line: int, column: int) -> None:
    """The 1-based position must exist in the file; column len+1 is the end of the line."""
    lines = re.split(r"\r\n|\r|\n", text)
    if line > len(lines):
        raise CliError(f"{path}:{line}:{column}: {path} ends at line {len(lines)}")
    length = len(lines[line - 1])
    if column > length + 1:
        raise CliError(
            f"{path}:{line}:{column}: line {line} has {length} characters (columns 1-{length + 1})"
        )


def cmd_doctor(args: argparse.Namespace) -> int:
    settings = _settings_from_args(args)
    if settings.backend:
        return doctor_backend(settings.backend, settings.backend_token_file)
    _setup_logging("warning", None)
    import platform

    from codet5_lsp.inference.devices import ctranslate2_info, default_compute_type, resolve_device
    from codet5_lsp.inference.models import default_cache_dir
    from codet5_lsp.inference.prefix_probe import native_t5_prefix_is_exact
    from codet5_lsp.server.model_manager import ModelManager

    info: dict[str, object] = {"codet5-lsp": __version__, "python": platform.python_version()}
    info.update(ctranslate2_info())
    info["t5_one_pass_prefix"] = (
        "exact in ctranslate2 (patched build): T5 models are converted without the rewrite"
        if native_t5_prefix_is_exact()
        else "stock ctranslate2: T5 conversions get our rewrite automatically; nothing to do "
        "(docs/ctranslate2-t5-prefix/)"
    )
    for mod in ("pygls", "lsprotocol", "tree_sitter", "tokenizers", "transformers", "torch"):
        try:
            from importlib.metadata import version

            info[mod] = version(mod.replace("_", "-"))
        except Exception:
            info[mod] = "not installed"
    device = resolve_device(settings.device)
    info["device"] = device
    info["compute_type"] = (
        default_compute_type(device) if settings.compute_type == "auto" else settings.compute_type
    )
    info["cache_dir"] = str(Path(settings.cache_dir) if settings.cache_dir else default_cache_dir())
    info["model"] = settings.model
    _leave_model_errors_to_the_command()
    models = ModelManager(settings)
    models.wait_ready()
    state, error = models.state()
    info["model_status"] = "loads" if state == "ready" else f"error: {_one_line(error)}"
    engine = models.completion_engine()
    if state == "ready" and engine is not None:
        info["model_folder"] = str(engine.model.folder)
        info["model_family"] = engine.meta.family_description
    info.update(_summary_model_report(settings, models, device))
    models.close()
    for key, value in info.items():
        print(f"{key:>20}: {value}")
    return 0 if state == "ready" else 1


def _summary_model_report(settings: Settings, models, device: str) -> dict[str, str]:
    """The hover model's state, loaded only when that needs no download (doctor stays quick
    and offline-safe; `serve` fetches it on first start)."""
    from codet5_lsp.inference.devices import default_compute_type
    from codet5_lsp.inference.models import (
        available_without_download,
        is_hub_id,
        storage_quantization,
    )

    model = settings.summary_model or settings.model
    report = {"summary_model": model}
    if not settings.summaries_enabled:
        report["summary_status"] = "off (summariesEnabled is false)"
        return report
    compute = (
        default_compute_type(device) if settings.compute_type == "auto" else settings.compute_type
    )
    if (
        model != settings.model
        and is_hub_id(model)
        and not available_without_download(
            model,
            quantization=storage_quantization(compute),
            revision=settings.revision,
            cache_dir=Path(settings.cache_dir) if settings.cache_dir else None,
        )
    ):
        fallback = (
            "the completion model writes hover summaries until then"
            if models.state()[0] == "ready" and models.completion_engine().can_summarize
            else "no hover summaries until then"
        )
        report["summary_status"] = (
            f"not downloaded yet: `serve` fetches and converts it on "
            f"first start (offline: {fallback})"
        )
        return report
    models.wait_ready(model=model)
    status = models.summary_status()
    if status["state"] == "ready":
        report["summary_status"] = "loads"
    elif status["state"] == "fallback":
        report["summary_status"] = (
            f"error: {_one_line(status['message'])}; hovers use the "
            f"completion model {status['used']} instead"
        )
    else:
        report["summary_status"] = f"error: {_one_line(status['message'])}; no hover summaries"
    return report


def cmd_stats(args: argparse.Namespace) -> int:
    from codet5_lsp.server.stats import format_summary, summarize

    path = _stats_path(args.stats_file)
    try:
        summary = summarize(path)
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from None
    print(format_summary(summary))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
