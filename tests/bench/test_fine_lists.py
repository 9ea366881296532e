"""bench.fine_lists on a small synthetic set: blocks are balanced and cut from their list,
each coarse stage picks the blocks it claims to, and every configuration is timed."""

import numpy as np
import pytest

from bench.ab import time_in_rounds
from bench.datasets.synthetic import synthetic
from bench.fine_lists import (
    CAP,
    Blocks,
    configurations,
    coverage_lines,
    cut_blocks,
    exact_picks,
    greedy_capacity,
    nearest,
)
from bench.harness import Context
from bench.single import context

NLIST = 16


@pytest.fixture(scope="module")
def ctx(tmp_path_factory) -> Context:
    ds = synthetic(n=6000, nq=200, dim=64, seed=5)
    return context(ds, 200, 0, tmp_path_factory.mktemp("fine"))


@pytest.fixture(scope="module")
def blocks(ctx: Context) -> Blocks:
    return cut_blocks(ctx.xb, NLIST)


def test_greedy_capacity_sends_the_overflow_to_the_next_best_column() -> None:
    scores = np.array([[0.9, 0.1, 0.0], [0.8, 0.3, 0.0], [0.7, 0.2, 0.5], [0.6, 0.0, 0.1]])
    assert greedy_capacity(scores, 2).tolist() == [0, 0, 2, 2]
    assert greedy_capacity(scores, 4).tolist() == [0, 0, 0, 0]


def test_blocks_are_balanced_and_cut_from_their_list(ctx: Context, blocks: Blocks) -> None:
    sizes = np.bincount(blocks.block_of, minlength=len(blocks.centroids))
    assert sizes.max() <= CAP and sizes.min() > 0
    lists = nearest(blocks.parents, ctx.xb)
    assert (blocks.parent_of[blocks.block_of] == lists).all()
    per_list = np.bincount(blocks.parent_of, minlength=NLIST)
    assert (per_list == -(-np.bincount(lists, minlength=NLIST) // CAP)).all()
    assert np.allclose(np.linalg.norm(blocks.centroids, axis=1), 1.0, atol=1e-5)


def test_exact_picks_are_the_best_blocks_best_first(ctx: Context, blocks: Blocks) -> None:
    scores, picked = exact_picks(ctx.xq, blocks.centroids, 20)
    full = ctx.xq @ blocks.centroids.T
    assert (np.diff(scores, axis=1) <= 0).all()
    assert np.allclose(scores[:, 0], full.max(1))
    assert np.allclose(scores[:, -1], -np.sort(-full, axis=1)[:, 19])
    assert (np.take_along_axis(full, picked, axis=1) == scores).all()


def test_coverage_reaches_all_when_every_block_is_probed(ctx: Context, blocks: Blocks) -> None:
    nb = len(blocks.centroids)
    lines = coverage_lines(ctx, blocks, (1, NLIST), [8, nb])
    rows = {line.rsplit(" (", 1)[0]: line.split()[-2:] for line in lines[1:]}
    assert rows[f"{NLIST} lists"] == ["1.0000", f"{len(ctx.xb):,}"]
    assert rows[f"{nb} blocks"] == ["1.0000", f"{len(ctx.xb):,}"]
    assert float(rows["8 blocks"][0]) < 1.0 and int(rows["8 blocks"][1]) <= 8 * CAP


def test_every_configuration_is_timed_and_its_coarse_stage_used(
    ctx: Context, blocks: Blocks
) -> None:
    nb = len(blocks.centroids)
    timed = time_in_rounds(ctx, configurations(ctx, blocks, [24, nb], NLIST), rounds=2)
    names = [t.name.split(" (")[0] for t in timed]
    assert names[2:] == [
        "blocks 24, scan only, blocks given",
        f"blocks {nb}, scan only, blocks given",
        "blocks 24, exact coarse + rerank 100",
        f"blocks {nb}, exact coarse + rerank 100",
        f"blocks 24 of {NLIST} lists, residual coarse + rerank 100",
        f"blocks {nb} of {NLIST} lists, residual coarse + rerank 100",
    ]
    assert all(len(t.qps) == 2 and min(t.qps) > 0 for t in timed)
    by_name = dict(zip(names, timed, strict=True))
    everything = by_name[f"blocks {nb}, exact coarse + rerank 100"].search(ctx.xq)
    # every list probed: the residual stage hands over every block, as the exact one does
    residual = by_name[f"blocks {nb} of {NLIST} lists, residual coarse + rerank 100"]
    assert (residual.search(ctx.xq) == everything).all()
    few = by_name["blocks 24, exact coarse + rerank 100"].search(ctx.xq)
    assert (few != everything).any()
    _, picked = exact_picks(ctx.xq, blocks.centroids, 24)  # found only in the 24 best blocks
    assert all(np.isin(blocks.block_of[f], p).all() for f, p in zip(few, picked, strict=True))
