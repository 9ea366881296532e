"""A fork server for crash tests: imports the server once, then forks a fresh pith server
per request, so each of many kill -9 cycles costs a fork instead of a 4 s interpreter start.

Protocol (one JSON object per line on stdin): {"settings": {...}, "rlimit_fsize": int|null}.
It answers each with the child's pid on stdout. The children are real uvicorn servers in
their own processes: a test kills them with SIGKILL like any other. SIGCHLD is ignored, so
killed children are reaped at once and `os.kill(pid, 0)` failing means the child is gone.
Closing stdin ends the fork server and SIGKILLs the children it still has.
"""

from __future__ import annotations

import json
import os
import signal
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy loads (see server.cli)

import contextlib

import uvicorn
import uvicorn.loops.uvloop
import uvicorn.protocols.http.httptools_impl

from server.app import create_app
from server.settings import Settings


def serve(request: dict) -> None:
    """In the child: run one server until killed."""
    os.setpgid(0, 0)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    if request.get("rlimit_fsize"):
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        limit = int(request["rlimit_fsize"])
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    settings = Settings(**request["settings"])
    uvicorn.run(
        create_app(settings),
        host="127.0.0.1",
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=5,
    )
    os._exit(0)


def main() -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    children: list[int] = []
    print("ready", flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            try:
                serve(request)
            finally:
                os._exit(1)
        children.append(pid)
        print(pid, flush=True)
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


if __name__ == "__main__":
    main()
