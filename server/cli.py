"""The `pith` command: `pith serve --data DIR --host H --port P [--demo]` (flags override
PITH_* environment variables; API keys come from PITH_API_KEY / PITH_READ_ONLY_API_KEY).

Client subcommands (the pith_client SDK, imported only when used): `pith import COLLECTION
FILE`, `pith search`, `pith bench`, `pith snapshot create|list|restore`, `pith collections`;
each talks to --url (PITH_URL) with --api-key (PITH_API_KEY), or runs embedded on --path."""

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
    serve.add_argument(
        "--access-log", action="store_true", default=None, help="log requests (PITH_ACCESS_LOG)"
    )
    serve.add_argument("--cluster", help="serve a Ray cluster at this address (PITH_CLUSTER)")
    add_client_commands(commands)
    return parser


def _client_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--url", help="server URL (PITH_URL, default http://127.0.0.1:8000)")
    parser.add_argument("--api-key", help="API key (PITH_API_KEY)")
    parser.add_argument("--path", help="embedded mode: the data folder, no server")
    return parser


def add_client_commands(commands: Any) -> None:
    """The SDK's subcommands (parsed here; run by pith_client.commands)."""
    imp = _client_args(commands.add_parser("import", help="upload .npy/.jsonl/.parquet points"))
    imp.add_argument("collection")
    imp.add_argument("file")
    imp.add_argument("--batch-size", type=int, default=1024)
    imp.add_argument("--parallel", type=int, default=2, help="batches in flight")
    imp.add_argument("--metric", default="cosine", help="for a new collection: ip, cosine, l2")
    imp.add_argument("--vector-column", default="vector", help="parquet: the vector column")
    imp.add_argument("--id-column", default="id", help="parquet: the id column, if any")
    bar = imp.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="progress", action="store_true", default=None)
    bar.add_argument("--no-progress", dest="progress", action="store_false")
    find = _client_args(commands.add_parser("search", help="search a collection"))
    find.add_argument("collection")
    source = find.add_mutually_exclusive_group(required=True)
    source.add_argument("--vector", help="comma-separated floats")
    source.add_argument("--text", help="query text (collections with an embedder)")
    source.add_argument("--npy", help="a .npy file of queries (with --row)")
    find.add_argument("--row", type=int, default=0)
    find.add_argument("-k", type=int, default=10)
    find.add_argument("--filter", help="a filter as JSON")
    bench = _client_args(commands.add_parser("bench", help="search throughput and latency"))
    bench.add_argument("collection")
    bench.add_argument("--queries", type=int, default=1000)
    bench.add_argument("--concurrency", type=int, default=4)
    bench.add_argument("-k", type=int, default=10)
    bench.add_argument("--seed", type=int, default=0)
    snap = _client_args(commands.add_parser("snapshot", help="create, list or restore snapshots"))
    snap.add_argument("action", choices=["create", "list", "restore"])
    snap.add_argument("collection")
    snap.add_argument("snapshot", nargs="?", help="restore: the snapshot name")
    snap.add_argument("--file", help="restore: upload this tarball instead")
    _client_args(commands.add_parser("collections", help="list collections"))


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
    from server.protocol import protocol_for

    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    app = create_app(settings)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=30,
        access_log=settings.access_log,
        http=protocol_for(app),
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command != "serve":
        from pith_client.commands import run  # the SDK: installed from clients/python

        return run(args)
    try:
        settings = settings_from(args)
    except ValidationError as exc:
        print(f"pith: invalid settings: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        serve(settings)
    return 0
