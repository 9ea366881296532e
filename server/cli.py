"""The `pith` command: `pith serve --data DIR --host H --port P [--demo]` (flags override
PITH_* environment variables; API keys come from PITH_API_KEY / PITH_READ_ONLY_API_KEY)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from server.settings import Settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pith", description="pith vector search server")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP server")
    serve.add_argument("--data", help="data folder (PITH_DATA, default ./data)")
    serve.add_argument("--host", help="bind address (PITH_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (PITH_PORT, default 8000)")
    serve.add_argument("--demo", action="store_true", default=None, help="create the wordnet demo")
    serve.add_argument("--cors-origin", dest="cors_origins", action="append", help="allowed origin")
    serve.add_argument("--cpu-threads", type=int, help="worker threads (PITH_CPU_THREADS)")
    serve.add_argument("--log-level", help="debug, info, warning, error")
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    """Flags given on the command line, the rest from the environment."""
    given: dict[str, Any] = {
        k: v for k, v in vars(args).items() if v is not None and k in Settings.model_fields
    }
    return Settings(**given)


def limit_native_threads(settings: Settings) -> None:
    """Thread counts of native libraries, which they read once when loaded: call before
    numpy/faiss are imported. One OpenBLAS thread: a query's small matrix products are not
    worth waking (and spinning) a team, and the search threads already use the cores."""
    if "numpy" in sys.modules:
        logging.getLogger("pith.cli").warning("numpy already loaded: BLAS threads unchanged")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(settings.blas_threads))


def serve(settings: Settings) -> None:
    limit_native_threads(settings)
    import uvicorn

    from server.app import create_app

    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=30,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from(args)
    except ValidationError as exc:
        print(f"pith: invalid settings: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        serve(settings)
    return 0
