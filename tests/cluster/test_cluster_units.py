"""Routing, cursors and merging without Ray (fast)."""

from __future__ import annotations

import numpy as np

from cluster.merge import merge_hits, merge_writes
from cluster.ops import Ack, Failed, unwrap
from cluster.routing import decode_cursor, encode_cursor, shard_of, split_keys
from core.errors import InvalidInput
from server.service.collection import Hit


def test_shard_of_is_stable_and_spread() -> None:
    # fixed values: a change of hash would move every stored point to another shard
    assert [shard_of(str(i), 4) for i in range(8)] == [shard_of(str(i), 4) for i in range(8)]
    assert [shard_of(k, 4) for k in ("0", "1", "2", "42")] == GOLDEN
    counts = np.bincount([shard_of(str(i), 4) for i in range(4000)], minlength=4)
    assert counts.min() > 900  # about 1000 each


GOLDEN = [0, 2, 3, 3]  # blake2b-64 of the key, modulo 4


def test_split_keys_covers_every_key_once() -> None:
    keys = [str(i) for i in range(100)] + ["6f9619ff-8b86-d011-b42d-00cf4fc964ff"]
    parts = split_keys(keys, 3)
    positions = np.sort(np.concatenate(list(parts.values())))
    assert positions.tolist() == list(range(len(keys)))
    for shard, pos in parts.items():
        assert all(shard_of(keys[i], 3) == shard for i in pos.tolist())


def test_cursor_round_trip() -> None:
    assert decode_cursor(-1) == (0, -1)
    for shard, iid in [(0, -1), (0, 0), (3, 12345), (7, 2**40)]:
        assert decode_cursor(encode_cursor(shard, iid)) == (shard, iid)


def _hits(scores: list[float], base: int) -> list[Hit]:
    return [Hit(base + i, s, None, None) for i, s in enumerate(scores)]


def test_merge_hits_inner_product_and_l2() -> None:
    a = [_hits([0.9, 0.5, 0.1], 0)]
    b = [_hits([0.8, 0.7, 0.2], 10)]
    assert [h.id for h in merge_hits([a, b], 3, smaller_first=False)[0]] == [0, 10, 11]
    c = [_hits([0.1, 0.5, 0.9], 0)]
    d = [_hits([0.2, 0.3, 0.4], 10)]
    assert [h.id for h in merge_hits([c, d], 4, smaller_first=True)[0]] == [0, 10, 11, 12]


def test_merge_writes_and_failures() -> None:
    merged = merge_writes([Ack(3, "completed", 2), Ack(5, "acknowledged", 1)])
    assert (merged.seq, merged.status, merged.count) == (5, "acknowledged", 3)
    assert unwrap(7) == 7
    try:
        unwrap(Failed(InvalidInput("bad")))
    except InvalidInput as exc:
        assert exc.message == "bad"
    else:
        raise AssertionError("a Failed value must raise its error")
