"""Point id -> shard: a stable hash of the canonical key (the same on every process and
every run, unlike Python's `hash`), so any ingress routes a point to the same shard."""

from __future__ import annotations

import hashlib

import numpy as np


def shard_of(key: str, shards: int) -> int:
    """The shard of a canonical point key ('42' or a lowercase UUID)."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") % shards


def split_keys(keys: list[str], shards: int) -> dict[int, np.ndarray]:
    """Positions of the keys that belong to each shard (shards without keys left out)."""
    owner = np.fromiter((shard_of(k, shards) for k in keys), dtype=np.int64, count=len(keys))
    return {s: np.flatnonzero(owner == s) for s in np.unique(owner).tolist()}


# A scroll cursor names a shard and a position inside it: shard * SPAN + (internal id + 1).
CURSOR_SPAN = 1 << 48


def encode_cursor(shard: int, iid: int) -> int:
    return shard * CURSOR_SPAN + iid + 1


def decode_cursor(cursor: int) -> tuple[int, int]:
    """(shard, internal id to continue after); -1 (the start) is shard 0 from the start."""
    if cursor < 0:
        return 0, -1
    return cursor // CURSOR_SPAN, cursor % CURSOR_SPAN - 1
