"""An in-memory inverted index over point payloads: (dotted path, value) -> internal ids,
and each point's external key (so id-only search results never touch the store).

Equality and `in` read posting sets; numeric ranges read a per-path array sorted by value,
built on first use after a change. Arrays handed out are sorted, unique int64 ids, cached until
a write touches them. Long strings are keyed by a digest (they still match exactly).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable
from typing import Any

import numpy as np

Key = tuple[str, Any]
Entry = tuple[str, Key]
LONG_STRING = 256
EMPTY = np.zeros(0, dtype=np.int64)


def value_key(value: object) -> Key | None:
    """The posting key of a scalar payload value (None for null and unsupported values)."""
    kind = type(value)
    if kind is str:
        text: str = value  # type: ignore[assignment]
        if len(text) > LONG_STRING:
            return ("h", hashlib.blake2b(text.encode(), digest_size=16).digest())
        return ("s", text)
    if kind is bool:
        return ("b", value)
    if kind is int or kind is float:
        return ("n", value)
    if isinstance(value, bool):
        return ("b", bool(value))
    if isinstance(value, int | float):
        return ("n", value)
    return None


def flatten(payload: dict[str, Any], prefix: str = "") -> list[Entry]:
    """(dotted path, key) of every scalar in a payload; list elements index under their path."""
    out: list[Entry] = []
    for name, value in payload.items():
        _collect(out, f"{prefix}.{name}" if prefix else name, value)
    return out


def _collect(out: list[Entry], path: str, value: Any) -> None:
    if type(value) is dict:
        for name, inner in value.items():
            _collect(out, f"{path}.{name}", inner)
    elif type(value) is list:
        for item in value:
            _collect(out, path, item)
    else:
        key = value_key(value)
        if key is not None:
            out.append((path, key))


def _sorted_ids(ids: Iterable[int], count: int) -> np.ndarray:
    arr = np.fromiter(ids, dtype=np.int64, count=count)
    arr.sort()
    return arr


class PayloadIndex:
    """Postings per (path, key), the ids of every point, and cached numpy views of them."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._postings: dict[str, dict[Key, set[int]]] = {}
        self._entries: dict[int, tuple[Entry, ...]] = {}
        self._keys: dict[int, str] = {}
        self._arrays: dict[Entry, np.ndarray] = {}
        self._ranges: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._all: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, iid: int, key: str, payload: dict[str, Any] | None) -> None:
        """Index a new point (internal ids are never reused, so no old entries exist)."""
        entries = tuple(dict.fromkeys(flatten(payload))) if payload else ()
        with self._lock:
            self._entries[iid] = entries
            self._keys[iid] = key
            for path, value in entries:
                self._postings.setdefault(path, {}).setdefault(value, set()).add(iid)
                self._touch(path, value)
            self._all = None

    def add_many(self, points: Iterable[tuple[int, str, dict[str, Any] | None]]) -> None:
        """Index many new points (start-up): one lock, caches dropped once at the end."""
        with self._lock:
            postings, entries_of, keys = self._postings, self._entries, self._keys
            for iid, key, payload in points:
                keys[iid] = key
                entries = tuple(dict.fromkeys(flatten(payload))) if payload else ()
                entries_of[iid] = entries
                for path, value in entries:
                    by_value = postings.get(path)
                    if by_value is None:
                        by_value = postings[path] = {}
                    members = by_value.get(value)
                    if members is None:
                        by_value[value] = {iid}
                    else:
                        members.add(iid)
            self._arrays.clear()
            self._ranges.clear()
            self._all = None

    def remove(self, iid: int) -> None:
        """Forget a point (a no-op for unknown ids)."""
        with self._lock:
            entries = self._entries.pop(iid, None)
            if entries is None:
                return
            del self._keys[iid]
            for path, key in entries:
                by_key = self._postings[path]
                members = by_key[key]
                members.discard(iid)
                if not members:
                    del by_key[key]
                self._touch(path, key)
            self._all = None

    def _touch(self, path: str, key: Key) -> None:
        self._arrays.pop((path, key), None)
        if key[0] == "n":
            self._ranges.pop(path, None)

    # reads -------------------------------------------------------------------------------
    def key_of(self, iid: int) -> str | None:
        """The external key of a point (None once it is gone)."""
        return self._keys.get(iid)

    def all_ids(self) -> np.ndarray:
        """Every indexed point, sorted."""
        with self._lock:
            if self._all is None:
                self._all = _sorted_ids(self._entries, len(self._entries))
            return self._all

    def equal(self, path: str, values: Iterable[object]) -> np.ndarray:
        """Points whose value at `path` (or an element of a list there) is one of `values`."""
        with self._lock:
            parts = [self._posting(path, key) for key in map(value_key, values) if key is not None]
        if not parts:
            return EMPTY
        return parts[0] if len(parts) == 1 else np.unique(np.concatenate(parts))

    def _posting(self, path: str, key: Key) -> np.ndarray:
        cached = self._arrays.get((path, key))
        if cached is None:
            members = self._postings.get(path, {}).get(key, ())
            cached = _sorted_ids(members, len(members))
            self._arrays[(path, key)] = cached
        return cached

    def range(
        self, path: str, gt: float | None, gte: float | None, lt: float | None, lte: float | None
    ) -> np.ndarray:
        """Points with a numeric value at `path` inside the bounds."""
        with self._lock:
            values, ids = self._numeric(path)
        lo, hi = 0, len(values)
        if gte is not None:
            lo = max(lo, int(np.searchsorted(values, gte, side="left")))
        if gt is not None:
            lo = max(lo, int(np.searchsorted(values, gt, side="right")))
        if lte is not None:
            hi = min(hi, int(np.searchsorted(values, lte, side="right")))
        if lt is not None:
            hi = min(hi, int(np.searchsorted(values, lt, side="left")))
        return np.unique(ids[lo:hi]) if hi > lo else EMPTY

    def _numeric(self, path: str) -> tuple[np.ndarray, np.ndarray]:
        """(values sorted, ids) of the numeric entries under `path`."""
        cached = self._ranges.get(path)
        if cached is None:
            numbers = [(k[1], m) for k, m in self._postings.get(path, {}).items() if k[0] == "n"]
            values = np.concatenate(
                [np.full(len(m), float(v)) for v, m in numbers] or [np.zeros(0)]
            )
            ids = np.concatenate([np.fromiter(m, np.int64, len(m)) for _, m in numbers] or [EMPTY])
            order = np.argsort(values, kind="stable")
            cached = (values[order], ids[order])
            self._ranges[path] = cached
        return cached
