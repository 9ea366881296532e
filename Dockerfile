# syntax=docker/dockerfile:1
# pith, CPU image (see deploy/README.md; the GPU image is deploy/Dockerfile.gpu):
#   docker build -t pith .
#   docker run -p 8000:8000 -v pith-data:/data pith
# The same image runs a Ray node for cluster mode: `ray start --head --block ...`.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1

# The CPU build of torch (the default build on PyPI bundles CUDA: several GB).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG PITH_EXTRAS=embed,cluster

WORKDIR /opt/pith

# Dependencies in a layer of their own: only pyproject.toml and install.sh invalidate it.
COPY pyproject.toml deploy/install.sh ./
RUN TORCH_INDEX_URL="$TORCH_INDEX_URL" PITH_EXTRAS="$PITH_EXTRAS" sh install.sh deps

# gcc only while pip builds pith's one C extension (kernels/native.c, the re-rank kernel).
COPY . .
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && sh deploy/install.sh app \
    && python -c "from kernels import native; assert native.available()" \
    && apt-get purge -y --auto-remove gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --create-home --home-dir /home/pith pith \
    && mkdir -p /data \
    && chown pith:pith /data

USER 10001:10001
WORKDIR /home/pith
VOLUME ["/data"]
EXPOSE 8000

# No curl in slim images: python asks /readyz (503 while collections load, then 200).
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request as r; r.urlopen('http://127.0.0.1:8000/readyz', timeout=4)"]

CMD ["pith", "serve", "--data", "/data", "--host", "0.0.0.0", "--port", "8000"]
