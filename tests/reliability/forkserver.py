"""A fork server for crash tests: imports the server once, then forks a fresh pith server
per request, so each of many kill -9 cycles costs a fork instead of a 4 s interpreter start.

Protocol (one JSON object per line on stdin): {"settings": {...}, "log_file": path|null}.
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
    if request.get("log_file"):  # the child's output: a file, or stderr (stdout is our pipe)
        fd = os.open(request["log_file"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(fd, 2)
    os.dup2(2, 1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
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
