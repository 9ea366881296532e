#!/bin/sh
# Installs pith in two steps, so that a container image keeps its dependencies in a layer of
# their own (rebuilt only when pyproject.toml or this script changes):
#   deploy/install.sh deps   torch first (pinned, from TORCH_INDEX_URL when set), then every
#                            dependency of pyproject.toml plus the extras in PITH_EXTRAS
#   deploy/install.sh app    the project itself, without dependencies
# The Dockerfiles run exactly this script; tests/deploy/test_dockerfile.py runs it too.
# Environment: PYTHON (default python3), PITH_SRC (project folder, default .), PITH_EXTRAS
# (default embed,cluster), PITH_FAISS (cpu | gpu: faiss-cpu is swapped for PITH_FAISS_GPU),
# TORCH_INDEX_URL (an index holding the wanted torch build), PITH_PIP_ARGS (added to every
# pip install, e.g. --dry-run).
set -eu

step="${1:?usage: install.sh deps|app}"
python="${PYTHON:-python3}"
src="${PITH_SRC:-.}"
extras="${PITH_EXTRAS:-embed,cluster}"
faiss="${PITH_FAISS:-cpu}"
faiss_gpu="${PITH_FAISS_GPU:-faiss-gpu-cu12==1.14.1.post1}"
pip_args="${PITH_PIP_ARGS:-}"

# The requirements of pyproject.toml: torch's pin alone, or everything else (extras included).
requirements() {
    "$python" - "$src/pyproject.toml" "$extras" "$faiss" "$faiss_gpu" "$1" <<'PY'
import sys, tomllib

path, extras, faiss, faiss_gpu, part = sys.argv[1:]
project = tomllib.load(open(path, "rb"))["project"]
reqs = list(project["dependencies"])
for extra in filter(None, extras.split(",")):
    reqs += project["optional-dependencies"][extra]
for req in dict.fromkeys(reqs):
    is_torch = req.split("=")[0].split(">")[0].split("<")[0].strip() == "torch"
    if faiss == "gpu" and req.startswith("faiss-cpu"):
        req = faiss_gpu
    if is_torch == (part == "torch"):
        print(req)
PY
}

case "$step" in
deps)
    torch="$(requirements torch)"
    if [ -n "${TORCH_INDEX_URL:-}" ]; then
        # shellcheck disable=SC2086
        "$python" -m pip install $pip_args --index-url "$TORCH_INDEX_URL" "$torch"
    else
        # shellcheck disable=SC2086
        "$python" -m pip install $pip_args "$torch"
    fi
    rest="$(mktemp)"
    requirements rest >"$rest"
    # shellcheck disable=SC2086
    "$python" -m pip install $pip_args "$torch" -r "$rest"
    rm -f "$rest"
    ;;
app)
    # shellcheck disable=SC2086
    "$python" -m pip install $pip_args --no-deps "$src"
    ;;
*)
    echo "install.sh: unknown step '$step' (deps or app)" >&2
    exit 2
    ;;
esac
