"""Bulk uploads: the input cut into batches (ids, vectors, payloads), each batch one upsert
by id, so a batch sent twice (a retry after a lost answer) writes the same points again."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pith_client.calls import as_rows, is_multi, point_ids
from pith_client.errors import InvalidInput

AUTO_PROGRESS_POINTS = 10_000  # progress=None shows a bar from this many points on


@dataclass(frozen=True)
class Batch:
    ids: list[Any]
    vectors: Any
    payloads: list[Mapping[str, Any] | None] | None

    def __len__(self) -> int:
        return len(self.ids)


class UploadPlan:
    """`vectors`: an (n, dim) array (float16 is sent as float16) or a list of token matrices;
    `ids`: n ints / UUID strings (None: 0..n-1); `payloads`: n dicts or None."""

    def __init__(
        self,
        ids: Any,
        vectors: Any,
        payloads: Sequence[Mapping[str, Any] | None] | None,
        batch_size: int,
    ) -> None:
        if batch_size < 1:
            raise InvalidInput(f"batch_size must be at least 1, got {batch_size}")
        self.multi = is_multi(vectors)
        self.vectors = list(vectors) if self.multi else as_rows(vectors)
        self.total = len(self.vectors)
        self.ids = point_ids(ids, self.total)
        self.payloads = None if payloads is None else list(payloads)
        for label, column in (("ids", self.ids), ("payloads", self.payloads)):
            if column is not None and len(column) != self.total:
                raise InvalidInput(f"{label}: {len(column)} given for {self.total} vectors")
        self.batch_size = batch_size

    def batches(self) -> Iterator[Batch]:
        for start in range(0, self.total, self.batch_size):
            end = min(self.total, start + self.batch_size)
            payloads = None if self.payloads is None else self.payloads[start:end]
            yield Batch(self.ids[start:end], self.vectors[start:end], payloads)


def progress_bar(total: int, show: bool | None, desc: str = "upload") -> Any:
    """A tqdm bar (vectors/s), shown when `show` or, for None, on long uploads."""
    from tqdm.auto import tqdm

    visible = show if show is not None else total >= AUTO_PROGRESS_POINTS
    return tqdm(
        total=total,
        unit="vec",
        unit_scale=True,
        desc=desc,
        disable=not visible,
        file=sys.stderr,
        dynamic_ncols=True,
    )
