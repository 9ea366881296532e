"""Service-wide knobs (a light module: the settings import it before numpy loads)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Options:
    """Service-wide knobs (from the server settings)."""

    checkpoint_every_points: int = 50_000
    checkpoint_idle_s: float = 30.0
    train_sample: int = 131_072
    seed: int = 0
    auto_train: bool = True
