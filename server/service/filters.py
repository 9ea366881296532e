"""Payload filters: equality, `in`, numeric ranges, and must / should / must_not (nestable).

A filter selects internal ids from the payload index; the search passes them to the index
as `allowed`, so the scan itself skips everything else (no post-filtering of k results).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.errors import InvalidInput
from server.service.payloads import PayloadIndex

Scalar = bool | int | float | str
MAX_DEPTH = 16


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MatchValue(_Model):
    """The value at `key` equals `value` (for lists: one element does)."""

    value: Scalar


class MatchAny(_Model):
    """The value at `key` is one of `any`."""

    any: list[Scalar] = Field(max_length=10_000)


class Range(_Model):
    """Numeric bounds on the value at `key`."""

    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None


class FieldCondition(_Model):
    """A condition on one payload key (a dotted path such as "meta.year")."""

    key: str = Field(min_length=1, max_length=512)
    match: MatchValue | MatchAny | None = None
    range: Range | None = None

    @model_validator(mode="after")
    def _one_test(self) -> FieldCondition:
        if (self.match is None) == (self.range is None):
            raise ValueError("a condition takes exactly one of match or range")
        return self


class Filter(_Model):
    """All of `must`, at least one of `should` (when given), none of `must_not`."""

    must: list[FieldCondition | Filter] | None = None
    should: list[FieldCondition | Filter] | None = None
    must_not: list[FieldCondition | Filter] | None = None

    def is_empty(self) -> bool:
        return not (self.must or self.should or self.must_not)


def select(flt: Filter, payloads: PayloadIndex, depth: int = 0) -> np.ndarray:
    """Sorted internal ids of the points the filter keeps."""
    if depth > MAX_DEPTH:
        raise InvalidInput(f"filter nested deeper than {MAX_DEPTH} levels")
    kept: np.ndarray | None = None
    for cond in flt.must or ():
        part = _condition(cond, payloads, depth)
        kept = part if kept is None else np.intersect1d(kept, part, assume_unique=True)
    if flt.should:
        union = np.unique(np.concatenate([_condition(c, payloads, depth) for c in flt.should]))
        kept = union if kept is None else np.intersect1d(kept, union, assume_unique=True)
    if kept is None:
        kept = payloads.all_ids()
    for cond in flt.must_not or ():
        kept = np.setdiff1d(kept, _condition(cond, payloads, depth), assume_unique=True)
    return kept


def _condition(cond: FieldCondition | Filter, payloads: PayloadIndex, depth: int) -> np.ndarray:
    if isinstance(cond, Filter):
        return select(cond, payloads, depth + 1)
    if isinstance(cond.match, MatchValue):
        return payloads.equal(cond.key, [cond.match.value])
    if isinstance(cond.match, MatchAny):
        return payloads.equal(cond.key, cond.match.any)
    r = cond.range
    assert r is not None
    return payloads.range(cond.key, r.gt, r.gte, r.lt, r.lte)


def parse_filter(raw: Any) -> Filter | None:
    """A filter from JSON (None or {} means no filter)."""
    if raw is None:
        return None
    flt = Filter.model_validate(raw)
    return None if flt.is_empty() else flt
