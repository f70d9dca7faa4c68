"""`audiocnn serve`: the REST API and the web page, on the same library the other commands use."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

from audiocnn.cli import common


def add_commands(commands: common.Commands) -> None:
    """Add `serve` (the REST API and page) to the command line."""
    serve = commands.add_parser(
        "serve", parents=[common.model_option()],
        help="a web page and a REST API to classify and explain recordings",
        description="Start an HTTP server: the page at / (upload or record a sound, see its labels over time, "
        "click a window to see why), and the API under /v1 (POST /v1/predict, POST /v1/explain, GET /v1/model; "
        "GET /healthz, GET /metrics; OpenAPI at /docs). Binds to 127.0.0.1 only unless --host says otherwise.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine "
                       "only; 0.0.0.0 for every interface, then use --api-key or a reverse proxy)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--runtime", choices=("auto", "onnx", "torch", "int8"), default="auto",
                       help="inference engine, as for `predict` (int8: fastest on CPUs, 5 s windows only)")
    serve.add_argument("--max-upload-mb", type=float, default=200.0,
                       help="largest request body in MiB, all files together (default 200): beyond it, 413")
    serve.add_argument("--max-seconds", type=float, default=3600.0,
                       help="longest recording accepted, in seconds (default 3600): beyond it, 422")
    serve.add_argument("--concurrency", type=int, default=2,
                       help="requests classified at once (default 2, one per core is a good start)")
    serve.add_argument("--queue", type=int, default=16,
                       help="requests that may wait for a worker (default 16: 16 clients at once are never "
                            "refused); beyond them, 503 with Retry-After. Each place may hold an upload on disk")
    serve.add_argument("--timeout", type=float, default=600.0,
                       help="seconds a request's job may take; then it is stopped and answered 504 (default 600)")
    serve.add_argument("--upload-timeout", type=float, default=300.0,
                       help="seconds a request's body may take to arrive (default 300): beyond it, 408")
    serve.add_argument("--header-timeout", type=float, default=10.0,
                       help="seconds a connection may take to send a request's headers (default 10): then it is "
                       "closed")
    serve.add_argument("--grace", type=float, default=3.0,
                       help="seconds running requests get to finish when the server is told to stop (SIGTERM, "
                       "Ctrl-C; default 3): then their jobs are stopped and answered 503")
    serve.add_argument("--max-connections", type=int, default=256,
                       help="open connections (default 256, at most a third of the process's file limit): beyond it the "
                       "oldest one still sending its headers is closed")
    serve.add_argument("--max-files", type=int, default=64, help="files in one request (default 64)")
    serve.add_argument("--keep-results", type=int, default=16,
                       help="results kept under an id for downloads, re-runs and explanations without another upload "
                       "(/v1/predict?keep=true; default 16, 0: none); the least recently used go first")
    serve.add_argument("--keep-mb", type=float, default=512.0,
                       help="MiB of uploads the kept results may hold together (default 512)")
    serve.add_argument("--keep-minutes", type=float, default=30.0,
                       help="a kept result unused this long is deleted (default 30)")
    serve.add_argument("--reviews", type=Path, default=None, metavar="DIR",
                       help="where the page's reviews (verdicts on detections, and copies of their recordings) are "
                       "saved; they outlive the server (default: audiocnn/reviews in your data folder, "
                       "~/.local/share on Linux)")
    serve.add_argument("--reviews-mb", type=float, default=2048.0,
                       help="MiB of recordings the saved reviews may hold together (default 2048); past it a new "
                       "review is refused until old ones are deleted")
    serve.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                       help="answer requests addressed to NAME too (repeatable). A server on 127.0.0.1 answers "
                       "127.0.0.1, localhost and [::1] only, which stops DNS rebinding; give the name a proxy "
                       "forwards. On another --host, NAME makes the list (default: any name)")
    serve.add_argument("--api-key", default=os.environ.get("AUDIOCNN_API_KEY") or None,
                       help="require this key (header X-API-Key or Authorization: Bearer) on /v1 and /metrics "
                       "(default: $AUDIOCNN_API_KEY; none: open)")
    serve.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    from audiocnn.errors import ConfigError
    from audiocnn.serve.server import run
    from audiocnn.serve.settings import ServeSettings

    if not 0 < args.port < 65536:
        raise ConfigError(f"--port must be 1-65535 (got {args.port})")
    for name in args.allow_host:
        if not re.fullmatch(r"[A-Za-z0-9._\-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\]", name):
            raise ConfigError(f"--allow-host {name!r}: not a host name (letters, digits, '.', '-', or [IPv6])")
    settings = ServeSettings(model=args.model, runtime=args.runtime, max_upload_mb=args.max_upload_mb,
                             max_seconds=args.max_seconds, concurrency=args.concurrency, queue=args.queue,
                             timeout_s=args.timeout, upload_timeout_s=args.upload_timeout,
                             header_timeout_s=args.header_timeout, grace_s=args.grace,
                             max_connections=args.max_connections,
                             max_files=args.max_files, keep_results=args.keep_results, keep_mb=args.keep_mb,
                             keep_minutes=args.keep_minutes, reviews_dir=args.reviews, reviews_mb=args.reviews_mb,
                             api_key=args.api_key)
    run(settings, host=args.host, port=args.port, extra_hosts=tuple(args.allow_host))
    return common.EXIT_OK
