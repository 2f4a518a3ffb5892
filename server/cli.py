"""`codet5-lsp` command: serve, convert, complete, doctor, stats."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from codet5_lsp import __version__
from codet5_lsp.server.settings import Settings, SettingsError


def _settings_from_args(args: argparse.Namespace) -> Settings:
    overrides = {
        "model": args.model, "revision": args.revision, "device": args.device,
        "compute_type": args.compute_type, "completion_mode": getattr(args, "mode", None),
        "summary_model": getattr(args, "summary_model", None), "cache_dir": args.cache_dir,
        "offline": True if args.offline else None,
        "max_new_tokens": getattr(args, "max_new_tokens", None),
        "log_level": getattr(args, "log_level", None),
    }
    return Settings().merged({k: v for k, v in overrides.items() if v is not None})


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="hub id, local checkpoint folder or converted folder "
                   "(default: Salesforce/codet5p-220m)")
    p.add_argument("--revision", help="hub revision (branch, tag or commit)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument("--compute-type", dest="compute_type",
                   help="ctranslate2 compute type (default: fastest measured for the device)")
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
    serve.add_argument("--tcp", metavar="HOST:PORT", help="listen on TCP instead of stdio "
                       "(host defaults to 127.0.0.1)")
    serve.add_argument("--log-file", dest="log_file")
    serve.add_argument("--log-level", dest="log_level",
                       choices=["debug", "info", "warning", "error"])
    serve.add_argument("--stats-file", dest="stats_file",
                       help="local acceptance log (default: in the user state folder)")

    conv = sub.add_parser("convert", help="convert a checkpoint to CTranslate2")
    conv.add_argument("source", metavar="MODEL", help="hub id or local checkpoint folder")
    conv.add_argument("--quantization", default="int8",
                      choices=["none", "int8", "int8_float16", "int8_bfloat16", "int8_float32",
                               "float16", "bfloat16", "float32"])
    conv.add_argument("--revision")
    conv.add_argument("--cache-dir", dest="cache_dir")
    conv.add_argument("--offline", action="store_true")
    conv.add_argument("--output", help="write here instead of the cache folder")

    comp = sub.add_parser("complete", help="print one completion for PATH:LINE:COLUMN "
                          "(1-based line and column)")
    comp.add_argument("location", metavar="PATH:LINE:COLUMN")
    _add_model_args(comp)
    comp.add_argument("--mode", choices=["auto", "decoder", "seq2seq", "infill"])
    comp.add_argument("--max-new-tokens", dest="max_new_tokens", type=int)

    doctor = sub.add_parser("doctor", help="versions, devices, cache, model check")
    _add_model_args(doctor)

    stats = sub.add_parser("stats", help="acceptance rate and latency from the local log")
    stats.add_argument("--stats-file", dest="stats_file")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        handler = {"serve": cmd_serve, "convert": cmd_convert, "complete": cmd_complete,
                   "doctor": cmd_doctor, "stats": cmd_stats}[args.command]
        return handler(args)
    except SettingsError as exc:
        print(f"codet5-lsp: {exc}", file=sys.stderr)
        return 2


def _setup_logging(level: str, log_file: str | None) -> None:
    handler: logging.Handler = (logging.FileHandler(log_file) if log_file
                                else logging.StreamHandler(sys.stderr))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("pygls").setLevel(max(logging.WARNING, root.level))


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings_from_args(args)
    _setup_logging(settings.log_level, args.log_file)
    from codet5_lsp.server.lsp import create_server
    from codet5_lsp.server.stats import StatsLog, default_stats_path

    server = create_server(settings)
    server.stats = StatsLog(Path(args.stats_file) if args.stats_file else default_stats_path())
    if args.tcp:
        host, _, port = args.tcp.rpartition(":")
        server.start_tcp(host or "127.0.0.1", int(port))
    else:
        server.start_io()
    # Stop the engines ourselves, then leave without interpreter teardown: destroying
    # ctranslate2 objects from atexit/GC while its threads wind down can abort the process
    # ("Resource deadlock avoided") after an otherwise clean shutdown.
    server.models.close()
    logging.shutdown()
    os._exit(0 if server.protocol._shutdown else 1)


def cmd_convert(args: argparse.Namespace) -> int:
    _setup_logging("info", None)
    from codet5_lsp.inference.models import ModelError, convert_checkpoint, download_checkpoint, \
        is_hub_id, resolve_model

    try:
        if args.output:
            src = Path(args.source)
            if not src.exists() and is_hub_id(args.source):
                src = download_checkpoint(args.source, revision=args.revision,
                                          offline=args.offline, log=print)
            files = convert_checkpoint(src, Path(args.output), quantization=args.quantization,
                                       source=args.source, revision=args.revision)
        else:
            files = resolve_model(args.source, quantization=args.quantization,
                                  revision=args.revision,
                                  cache_dir=Path(args.cache_dir) if args.cache_dir else None,
                                  offline=args.offline, log=print)
    except ModelError as exc:
        print(f"codet5-lsp: {exc}", file=sys.stderr)
        return 1
    print(files.folder)
    return 0


def cmd_complete(args: argparse.Namespace) -> int:
    settings = _settings_from_args(args)
    _setup_logging("warning", None)
    path_str, line, column = _parse_location(args.location)
    path = Path(path_str)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"codet5-lsp: cannot read {path}: {exc}", file=sys.stderr)
        return 1
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
        print(f"codet5-lsp: {error}", file=sys.stderr)
        return 1
    # A one-shot command waits for its answer (the editor's 3 s budget does not apply).
    pipeline = CompletionPipeline(models, settings.merged({"request_timeout_ms": 600_000}))
    try:
        suggestion = asyncio.run(pipeline.complete(
            doc, types.Position(line=line - 1, character=column - 1), debounce=False))
    except InvalidPositionError as exc:
        print(f"codet5-lsp: {exc}", file=sys.stderr)
        return 1
    finally:
        models.close()
    if suggestion is not None:
        sys.stdout.write(suggestion.text + ("\n" if not suggestion.text.endswith("\n") else ""))
    return 0


def _parse_location(location: str) -> tuple[str, int, int]:
    try:
        path, line, column = location.rsplit(":", 2)
        return path, int(line), int(column)
    except ValueError:
        raise SystemExit(f"codet5-lsp: expected PATH:LINE:COLUMN, got {location!r}") from None


def cmd_doctor(args: argparse.Namespace) -> int:
    settings = _settings_from_args(args)
    _setup_logging("warning", None)
    import platform

    from codet5_lsp.inference.engine import (ctranslate2_info, default_compute_type,
                                             native_t5_prefix_is_exact, resolve_device)
    from codet5_lsp.inference.models import default_cache_dir
    from codet5_lsp.server.model_manager import ModelManager

    info: dict[str, object] = {"codet5-lsp": __version__, "python": platform.python_version()}
    info.update(ctranslate2_info())
    info["t5_one_pass_prefix"] = (
        "exact in ctranslate2 (patched build): T5 models are converted without the rewrite"
        if native_t5_prefix_is_exact() else
        "needs the conversion rewrite (stock ctranslate2, docs/ctranslate2-t5-prefix/)")
    for mod in ("pygls", "lsprotocol", "tree_sitter", "tokenizers", "transformers", "torch"):
        try:
            from importlib.metadata import version
            info[mod] = version(mod.replace("_", "-"))
        except Exception:
            info[mod] = "not installed"
    device = resolve_device(settings.device)
    info["device"] = device
    info["compute_type"] = (default_compute_type(device) if settings.compute_type == "auto"
                            else settings.compute_type)
    info["cache_dir"] = str(Path(settings.cache_dir) if settings.cache_dir else default_cache_dir())
    info["model"] = settings.model
    models = ModelManager(settings)
    models.wait_ready()
    state, error = models.state()
    info["model_status"] = "loads" if state == "ready" else f"error: {error}"
    if state == "ready":
        engine = models.completion_engine()
        info["model_folder"] = str(engine.model.folder)
    models.close()
    for key, value in info.items():
        print(f"{key:>20}: {value}")
    return 0 if state == "ready" else 1


def cmd_stats(args: argparse.Namespace) -> int:
    from codet5_lsp.server.stats import default_stats_path, format_summary, summarize

    path = Path(args.stats_file) if args.stats_file else default_stats_path()
    print(format_summary(summarize(path)))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
