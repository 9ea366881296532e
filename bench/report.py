"""Benchmark rows: one per configuration, printed as a table and written as JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class Row:
    """One measured configuration (keys as in `python -m bench --json`)."""

    dataset: str
    name: str
    baseline: bool
    bytes_per_vector_ram: float
    bytes_per_vector_disk: float
    recall_at_10: float
    ndcg_at_10: float
    qps: float
    build_s: float
    note: str = ""


HEADER = (
    "configuration",
    "base",
    "B/vec RAM",
    "B/vec disk",
    "R@10",
    "nDCG@10",
    "QPS",
    "× first",
    "build s",
)


def format_table(rows: list[Row]) -> str:
    """A markdown table of the rows, with QPS also as a ratio to the first row's (the
    exact baseline of the same run: absolute times on a shared machine are noise)."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    first = rows[0].qps if rows and rows[0].qps > 0 else float("nan")
    for r in rows:
        cells = (
            r.name + (f" ({r.note})" if r.note else ""),
            "yes" if r.baseline else "",
            f"{r.bytes_per_vector_ram:,.1f}",
            f"{r.bytes_per_vector_disk:,.0f}",
            f"{r.recall_at_10:.3f}",
            f"{r.ndcg_at_10:.3f}",
            f"{r.qps:,.0f}",
            f"{r.qps / first:.2f}",
            f"{r.build_s:.1f}",
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_json(rows: list[Row], path: Path) -> None:
    """The rows as a list of objects."""
    Path(path).write_text(json.dumps([asdict(r) for r in rows], indent=1))
