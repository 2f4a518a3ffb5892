"""`codet5-lsp team-server` and `codet5-lsp doctor --backend URL` (docs/team.md).

Kept apart from cli.py so the editor-side commands never import Ray: the team server's
dependencies come with the optional extra `codet5-lsp[team]`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_team_server_parser(sub) -> None:
    team = sub.add_parser(
        "team-server",
        help="serve generation to many editors from one GPU pool (Ray Serve; "
        "needs codet5-lsp[team])",
        description="Start a local Ray cluster (or join one with --ray-address) and serve the "
        "model over HTTP to editors running `codet5-lsp serve --backend URL`. Ctrl-C or "
        "SIGTERM stops it.",
    )
    team.add_argument("--model", required=True, help="hub id, checkpoint or converted folder")
    team.add_argument(
        "--summary-model",
        dest="summary_model",
        help="model for hovers (default: the completion model)",
    )
    team.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    team.add_argument("--compute-type", dest="compute_type", default="auto")
    team.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default loopback; put a TLS reverse proxy in "
        "front for other machines, docs/team.md)",
    )
    team.add_argument("--port", type=int, default=8765)
    team.add_argument(
        "--tokens-file", dest="tokens_file", required=True, help="name:token lines, one per user"
    )
    team.add_argument(
        "--replicas", type=int, help="engine replicas (default: one per GPU; 1 on CPU)"
    )
    team.add_argument(
        "--max-replicas",
        dest="max_replicas",
        type=int,
        help="autoscale between --replicas and this many",
    )
    team.add_argument(
        "--replica-cpus",
        dest="replica_cpus",
        type=int,
        help="CPUs (= ctranslate2 intra_threads) per CPU replica",
    )
    team.add_argument(
        "--num-cpus", dest="num_cpus", type=int, help="CPUs of the local Ray cluster (default: all)"
    )
    team.add_argument(
        "--object-store-mb",
        dest="object_store_mb",
        type=int,
        default=100,
        help="Ray object store of the local cluster (default 100 MB: requests are small)",
    )
    team.add_argument(
        "--ray-address",
        dest="ray_address",
        help="join this Ray cluster (e.g. ray://head:10001 or HEAD_IP:6379)",
    )
    team.add_argument(
        "--max-batch-size",
        dest="max_batch_size",
        type=int,
        help="requests per ctranslate2 call; 1 turns batching off (default: 16 "
        "on GPUs, 1 on CPU, where batching measured no gain: "
        "bench/results/team-cpu.md)",
    )
    team.add_argument(
        "--batch-wait-ms",
        dest="batch_wait_ms",
        type=float,
        default=5.0,
        help="how long a request waits for others to batch with",
    )
    team.add_argument(
        "--max-new-tokens",
        dest="max_new_tokens",
        type=int,
        default=256,
        help="cap on the tokens one request may generate",
    )
    team.add_argument("--max-body-kb", dest="max_body_kb", type=int, default=1000)
    team.add_argument("--cache-dir", dest="cache_dir")
    team.add_argument("--revision")
    team.add_argument("--offline", action="store_true")


def cmd_team_server(args: argparse.Namespace) -> int:
    import logging

    for name, value in (
        ("--port", args.port),
        ("--replicas", args.replicas),
        ("--max-replicas", args.max_replicas),
        ("--replica-cpus", args.replica_cpus),
        ("--num-cpus", args.num_cpus),
        ("--max-batch-size", args.max_batch_size),
        ("--max-new-tokens", args.max_new_tokens),
    ):
        if value is not None and value < (0 if name == "--port" else 1):
            print(f"codet5-lsp: {name} must be at least 1, got {value}", file=sys.stderr)
            return 2
    try:
        from codet5_lsp.inference import team_server
    except ImportError as exc:
        print(
            f"codet5-lsp: team-server needs Ray Serve: pip install 'codet5-lsp[team]' ({exc})",
            file=sys.stderr,
        )
        return 2
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    opts = team_server.TeamServerOptions(
        model=args.model,
        summary_model=args.summary_model,
        device=args.device,
        compute_type=args.compute_type,
        host=args.host,
        port=args.port,
        tokens_file=Path(args.tokens_file),
        replicas=args.replicas,
        max_replicas=args.max_replicas,
        ray_address=args.ray_address,
        num_cpus=args.num_cpus,
        replica_cpus=args.replica_cpus,
        object_store_mb=args.object_store_mb,
        max_batch_size=args.max_batch_size,
        batch_wait_ms=args.batch_wait_ms,
        limits=team_server.Limits(
            max_body_bytes=args.max_body_kb * 1000, max_new_tokens=args.max_new_tokens
        ),
        cache_dir=args.cache_dir,
        revision=args.revision,
        offline=args.offline,
    )
    try:
        return team_server.run(opts)
    except team_server.TokensFileError as exc:
        print(f"codet5-lsp: {exc}", file=sys.stderr)
        return 2


def add_backend_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--backend",
        metavar="URL",
        help="use a team server (codet5-lsp team-server) instead of a local model",
    )
    p.add_argument(
        "--backend-token-file",
        dest="backend_token_file",
        metavar="FILE",
        help="file holding the team server token (default: $CODET5_LSP_TOKEN)",
    )


def warn_plain_http(url: str | None, token_file: str | None) -> None:
    """Say so on stderr when the token would cross the network unencrypted."""
    if not url:
        return
    from codet5_lsp.inference.remote import BackendError, plain_http_warning, read_token

    try:
        warning = plain_http_warning(url, read_token(token_file))
    except BackendError:
        return  # the server reports an unreadable token file itself
    if warning:
        print(f"codet5-lsp: warning: {warning}", file=sys.stderr, flush=True)


def doctor_backend(url: str, token_file: str | None) -> int:
    """Reachability, auth and the models a team server serves; 0 when all is well."""
    from codet5_lsp.inference.remote import (
        BackendEndpoint,
        BackendError,
        plain_http_warning,
        read_token,
    )

    rows: list[tuple[str, str]] = [("backend", url)]
    ok = True
    try:
        token = read_token(token_file)
        endpoint = BackendEndpoint(url, token)
    except BackendError as exc:
        print(f"codet5-lsp: {exc}", file=sys.stderr)
        return 2
    warning = plain_http_warning(url, token)
    if warning:
        rows.append(("warning", warning))
    try:
        endpoint.get_json("/health", auth=False, timeout_s=10)
        rows.append(("reachable", "yes (/health answers)"))
    except BackendError as exc:
        rows.append(("reachable", f"no: {exc}"))
        ok = False
    if ok and not token:
        rows.append(("auth", "no token: set --backend-token-file or $CODET5_LSP_TOKEN"))
        ok = False
    elif ok:
        for role in ("completion", "summary"):
            try:
                info = endpoint.get_json(f"/v1/model?role={role}&tokenizer=0", timeout_s=10)
            except BackendError as exc:
                rows.append(
                    ("auth" if role == "completion" else f"{role} model", f"refused: {exc}")
                )
                ok = False
                break
            if role == "completion":
                rows.append(("auth", f"accepted (user {info.get('user', '?')})"))
            meta = info.get("metadata", {})
            rows.append(
                (
                    f"{role} model",
                    (
                        f"{meta.get('source')} ({meta.get('family')}, "
                        f"{info.get('device')}, {info.get('compute_type')})"
                    ),
                )
            )
        else:
            limits = info.get("limits", {})
            rows.append(
                (
                    "limits",
                    (
                        f"max_new_tokens {limits.get('max_new_tokens')}, "
                        f"body {limits.get('max_body_bytes')} bytes, batches of "
                        f"up to {info.get('max_batch_size')}"
                    ),
                )
            )
    for key, value in rows:
        print(f"{key:>20}: {value}")
    return 0 if ok else 1
