"""Command line of the benchmark harness."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from bench.report import Row, format_table, write_json

DATASETS = ("wordnet-minilm", "wordnet-minilm-tokens", "synthetic", "synthetic-tokens")


def _threads(n: int) -> None:
    import faiss
    import torch

    faiss.omp_set_num_threads(n)
    torch.set_num_threads(n)


def _run(name: str, args: argparse.Namespace, workdir: Path) -> list[Row]:
    only = (lambda c: any(s in c for s in args.only)) if args.only else (lambda c: True)
    if name in ("wordnet-minilm", "synthetic"):
        from bench.datasets.synthetic import synthetic
        from bench.datasets.wordnet import wordnet_minilm
        from bench.single import run_single

        ds = wordnet_minilm(limit=args.limit) if name == "wordnet-minilm" else synthetic()
        return run_single(ds, args.queries, args.seed, workdir, only)
    from bench.datasets.synthetic import synthetic_tokens
    from bench.datasets.wordnet import wordnet_minilm_tokens
    from bench.multivector import run_multivector

    mv = (
        wordnet_minilm_tokens(n_docs=args.docs)
        if name == "wordnet-minilm-tokens"
        else synthetic_tokens()
    )
    return run_multivector(mv, n_queries=args.queries, seed=args.seed)


def main(parser: argparse.ArgumentParser, tmp: Path) -> int:
    parser.add_argument(
        "--dataset",
        action="append",
        choices=DATASETS,
        help="repeatable; default: both wordnet sets",
    )
    parser.add_argument("--queries", type=int, default=2000, help="queries sampled (seeded)")
    parser.add_argument(
        "--limit", type=int, default=None, help="wordnet-minilm: use a seeded sample of N synsets"
    )
    parser.add_argument("--docs", type=int, default=20_000, help="wordnet-minilm-tokens: documents")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--only", action="append", help="run configurations whose name contains this"
    )
    parser.add_argument("--json", type=Path, help="write the rows to this file")
    args = parser.parse_args()
    _threads(args.threads)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(dir=tmp, prefix="pith-bench-") as workdir:
        for name in args.dataset or ["wordnet-minilm", "wordnet-minilm-tokens"]:
            print(f"== {name}", file=sys.stderr, flush=True)
            got = _run(name, args, Path(workdir) / name)
            print(f"\n### {name}\n\n{format_table(got)}\n", flush=True)
            rows.extend(got)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        write_json(rows, args.json)
    return 0
