"""Searches in batches: queries that can share an index call (same collection, k, params,
filter and output options) are stacked into one; each query gets its own slice back."""

from __future__ import annotations

import dataclasses
from typing import Any

from server.service.collection import Collection, Hit, Query
from server.service.vectors import concat

Result = list[list[Hit]]


def group_key(collection: Collection, query: Query) -> tuple[Any, ...]:
    """Queries with equal keys can share one index call."""
    flt = None if query.filter is None else query.filter.model_dump_json()
    return (id(collection), query.k, query.params, query.with_payload, query.with_vectors, flt)


def search_grouped(items: list[tuple[Collection, Query]]) -> list[Result | BaseException]:
    """Answer every (collection, query), one index call per group; errors stay per group."""
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, (collection, query) in enumerate(items):
        groups.setdefault(group_key(collection, query), []).append(i)
    out: list[Result | BaseException] = [[] for _ in items]
    for members in groups.values():
        collection = items[members[0]][0]
        queries = [items[i][1] for i in members]
        try:
            joined = concat([q.vectors for q in queries], collection.spec.dim)
            hits = collection.search(dataclasses.replace(queries[0], vectors=joined))
        except BaseException as exc:  # one group's failure is its own queries' answer
            for i in members:
                out[i] = exc
            continue
        start = 0
        for i, query in zip(members, queries, strict=True):
            out[i] = hits[start : start + len(query.vectors)]
            start += len(query.vectors)
    return out
