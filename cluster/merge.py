"""Global top-k from per-shard top-k lists, and the combined acknowledgement of a write."""

from __future__ import annotations

import heapq
from collections.abc import Sequence

from cluster.ops import Ack
from server.service.collection import Hit
from server.service.writes import WriteResult


def merge_hits(
    per_shard: Sequence[list[list[Hit]]], k: int, smaller_first: bool
) -> list[list[Hit]]:
    """Per query, the k best hits over all shards (l2 distances: smallest first)."""
    if not per_shard:
        return []
    sign = 1.0 if smaller_first else -1.0
    out = []
    for lists in zip(*per_shard, strict=True):
        merged = heapq.merge(*lists, key=lambda h: sign * h.score)
        out.append(list(merged)[:k])
    return out


def merge_writes(results: Sequence[Ack]) -> WriteResult:
    """One acknowledgement for a write split over shards: the latest shard sequence number,
    'completed' only when every shard's part is, and the points counted over all shards."""
    if not results:
        return WriteResult(0, "completed", 0)
    status = "completed" if all(r.status == "completed" for r in results) else "acknowledged"
    return WriteResult(max(r.seq for r in results), status, sum(r.count for r in results))
