"""Helpers of the deploy tests, the processes they run on loopback: pith servers, nginx with
the repository's config, a Ray head. Each is started on free ports in its own process group
and stopped by its own pid at teardown (never `ray stop`, which stops every Ray here)."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
NGINX_TEMPLATE = ROOT / "deploy" / "nginx" / "pith.conf"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout_s:.0f} s")


def answers(url: str, expect: int = 200) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == expect
    except httpx.HTTPError:
        return False


def stop_group(
    proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, wait_s: float = 20
) -> None:
    """Stop a process started with start_new_session=True, and whatever it started."""
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(wait_s)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


# Ray turns 127.0.0.1 into the machine's address (for the node and for the address a driver
# joins) unless its lookup is pinned, as tests/cluster pins it in-process.
PIN_RAY_TO_LOOPBACK = (
    "import sys, ray._private.services as s; s.get_node_ip_address = lambda *a, **k: "
    "'127.0.0.1'; s.resolve_ip_for_localhost = lambda h: h; "
)


class Pith:
    """`python -m server serve` on a free loopback port (Ray pinned to loopback)."""

    def __init__(self, data: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        run = PIN_RAY_TO_LOOPBACK + "from server.cli import main; sys.exit(main())"
        cmd = (
            [sys.executable, "-c", run]
            if "--cluster" in extra
            else [sys.executable, "-m", "server"]
        )
        cmd += ["serve", "--data", str(data)]
        cmd += ["--host", "127.0.0.1", "--port", str(self.port), *extra]
        full_env = {**os.environ, "PITH_CPU_THREADS": "2", "PITH_LOG_LEVEL": "warning"}
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env={**full_env, **(env or {})})

    def wait_ready(self, timeout_s: float = 120) -> None:
        def ready() -> bool:
            assert self.proc.poll() is None, f"pith on {self.port} exited"
            return answers(f"{self.url}/readyz")

        wait_until(ready, timeout_s, f"pith on {self.port} ready")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)


def render_nginx(listen: int, upstream_ports: list[int]) -> str:
    """The repository's template, filled in as envsubst would (only the PITH_* names)."""
    servers = " ".join(f"server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;" for p in upstream_ports)
    values = {
        "PITH_LISTEN": f"127.0.0.1:{listen}",
        "PITH_UPSTREAMS": servers,
        "PITH_RESOLVER": "127.0.0.1",
    }
    text = NGINX_TEMPLATE.read_text()
    for name, value in values.items():
        text = text.replace("${" + name + "}", value)
    assert "${PITH_" not in text, "template names a variable the test does not fill in"
    return text


def nginx_binary() -> str:
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        if os.environ.get("CI"):
            raise AssertionError("nginx is not installed (make system-deps installs it)")
        pytest.skip("nginx is not installed: apt-get install nginx (make system-deps)")
    return found


class Nginx:
    """nginx with the rendered template inside a minimal main config, in a temp prefix."""

    def __init__(self, prefix: Path, upstream_ports: list[int]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        prefix.mkdir(parents=True, exist_ok=True)
        (prefix / "pith.conf").write_text(render_nginx(self.port, upstream_ports))
        # Workers run as the master's user (root in CI) so they can use the temp folders.
        user = "user root root;\n" if os.geteuid() == 0 else ""
        (prefix / "nginx.conf").write_text(
            f"{user}daemon off;\nworker_processes 1;\npid {prefix}/nginx.pid;\n"
            f"error_log {prefix}/error.log warn;\nevents {{ worker_connections 256; }}\n"
            f"http {{\n  access_log {prefix}/access.log;\n"
            f"  client_body_temp_path {prefix}/body;\n  proxy_temp_path {prefix}/proxy;\n"
            f"  fastcgi_temp_path {prefix}/fcgi;\n  uwsgi_temp_path {prefix}/uwsgi;\n"
            f"  scgi_temp_path {prefix}/scgi;\n  include {prefix}/pith.conf;\n}}\n"
        )
        self.prefix = prefix
        binary = nginx_binary()
        check = subprocess.run(
            [binary, "-t", "-p", str(prefix), "-c", str(prefix / "nginx.conf")],
            capture_output=True,
            text=True,
        )
        assert check.returncode == 0, check.stderr
        self.proc = subprocess.Popen(
            [binary, "-p", str(prefix), "-c", str(prefix / "nginx.conf")],
            start_new_session=True,
        )
        wait_until(lambda: answers(f"{self.url}/healthz"), 30, "nginx answering")

    def log(self) -> str:
        path = self.prefix / "error.log"
        return path.read_text() if path.exists() else ""

    def stop(self) -> None:
        stop_group(self.proc, signal.SIGQUIT)


class RayHead:
    """`ray start --head --block` pinned to loopback, with its own temp folder, ports and
    auth token (Ray turns 127.0.0.1 into the machine's address unless told not to)."""

    PIN = PIN_RAY_TO_LOOPBACK + "from ray.scripts.scripts import main; sys.argv[0] = 'ray'; main()"

    def __init__(self) -> None:
        self.temp_dir = tempfile.mkdtemp(prefix="pray", dir="/tmp")  # short: socket paths
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        cmd = [sys.executable, "-c", self.PIN, "start", "--head", "--block"]
        cmd += ["--node-ip-address", "127.0.0.1", "--port", str(self.port), "--num-cpus", "4"]
        cmd += ["--include-dashboard", "false", "--temp-dir", self.temp_dir]
        cmd += ["--disable-usage-stats", "--ray-client-server-port", str(free_port())]
        cmd += ["--dashboard-agent-listen-port", str(free_port())]
        # The workers import this checkout (the editable install may predate cluster/).
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
        self.env = {
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": secrets.token_hex(32),
            "RAY_USAGE_STATS_ENABLED": "0",
            "PYTHONPATH": path,
        }
        self.proc = subprocess.Popen(cmd, env={**os.environ, **self.env}, start_new_session=True)
        wait_until(self._up, 90, "ray head up")

    def _up(self) -> bool:
        assert self.proc.poll() is None, "ray start exited"
        with socket.socket() as s:
            s.settimeout(1)
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self) -> None:
        stop_group(self.proc, signal.SIGTERM, wait_s=3)  # then SIGKILL: a test cluster
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def stop_group_pith(pith: Pith) -> None:
    if pith.proc.poll() is None:
        pith.proc.send_signal(signal.SIGTERM)
        try:
            pith.proc.wait(10)
        except subprocess.TimeoutExpired:
            pith.kill()
