"""Server settings: one pydantic-settings class, read once at start (flags or PITH_* env)."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from server.service.options import Options


class Settings(BaseSettings):
    """Everything the server reads from its environment; built once, passed down."""

    model_config = SettingsConfigDict(env_prefix="PITH_", extra="forbid")

    data: Path = Field(Path("./data"), description="data folder")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    api_key: SecretStr | None = Field(None, description="read-write API key (none: open)")
    read_only_api_key: SecretStr | None = Field(None, description="API key that can only read")
    cors_origins: list[str] = Field(default_factory=list, description="allowed CORS origins")
    max_body_bytes: int = Field(256 * 2**20, ge=1024, description="request body limit")
    max_upload_bytes: int = Field(16 * 2**30, ge=1024, description="snapshot upload limit")
    cpu_threads: int = Field(
        default_factory=lambda: max(2, os.cpu_count() or 2),
        ge=1,
        description="worker threads for encode/search/parse",
    )
    blas_threads: int = Field(1, ge=1, le=256, description="OpenBLAS threads (read at start)")
    search_threads: int = Field(
        1,
        ge=1,
        le=256,
        description="search threads of single-vector collections; each runs its batches on an "
        "OpenMP team",
    )
    multivector_search_threads: int = Field(
        default_factory=lambda: max(1, os.cpu_count() or 1),
        ge=1,
        le=256,
        description="search threads for multi-vector collections (one OpenMP thread each)",
    )
    search_omp_threads: int | None = Field(
        None,
        ge=1,
        le=256,
        description="OpenMP threads per search thread (default: the cores shared among them)",
    )
    search_processes: int | None = Field(
        None,
        ge=0,
        le=256,
        description="search processes answering searches from read-only followers of the "
        "collections, each with its own interpreter (default: one per core on 2 or more cores; "
        "0: every search in the server process)",
    )
    search_connections: bool = Field(
        True,
        description="hand each new client connection to a search process, which answers its "
        "plain searches itself and hands it back at the first other request",
    )
    checkpoint_every_points: int = Field(50_000, ge=1)
    checkpoint_idle_s: float = Field(30.0, gt=0)
    train_sample: int = Field(131_072, ge=256)
    seed: int = 0
    auto_train: bool = True
    demo: bool = False
    demo_size: int = Field(3000, ge=10, le=117_659)
    log_level: str = "info"
    access_log: bool = Field(
        False, description="log every request (uvicorn's access log; /metrics counts them anyway)"
    )
    cluster: str | None = Field(None, description="Ray address of a pith cluster to serve")
    cluster_shards: int = Field(2, ge=1, le=256, description="shards of a new cluster collection")
    cluster_replicas: int = Field(2, ge=1, le=16, description="replicas of each cluster shard")

    def search_team(self) -> int:
        """OpenMP threads each search thread's index calls use."""
        if self.search_omp_threads is not None:
            return self.search_omp_threads
        return max(1, (os.cpu_count() or 1) // self.search_threads)

    def search_process_count(self) -> int:
        """Search processes to run (see `search_processes`)."""
        if self.search_processes is not None:
            return self.search_processes
        cores = os.cpu_count() or 1
        return cores if cores >= 2 else 0

    def options(self) -> Options:
        """The service's share of the settings."""
        return Options(
            checkpoint_every_points=self.checkpoint_every_points,
            checkpoint_idle_s=self.checkpoint_idle_s,
            train_sample=self.train_sample,
            seed=self.seed,
            auto_train=self.auto_train,
        )
