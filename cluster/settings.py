"""Cluster-wide knobs (plain values: the ingress reads them from the server settings)."""

from __future__ import annotations

from dataclasses import dataclass, field

from server.service.options import Options

NAMESPACE = "pith"
META_NAME = "pith-meta"


@dataclass(frozen=True)
class ClusterConfig:
    """Shards and replicas of new collections, where replicas keep their data, and the
    service options every replica's `Service` runs with."""

    root: str  # data folder of the replicas on every node
    shards: int = 2
    replicas: int = 2
    options: Options = field(default_factory=Options)
    call_timeout_s: float = 120.0

    def quorum(self, replicas: int) -> int:
        """Acknowledgements a write needs: a majority of the shard's replicas."""
        return replicas // 2 + 1


def leader_name(collection: str, shard: int) -> str:
    return f"pith-leader/{collection}/{shard}"
