"""Text embedders: turn text into single vectors or token vectors (all-MiniLM-L6-v2, offline)."""

from embed.minilm import MiniLM, TokenBatch

__all__ = ["MiniLM", "TokenBatch"]
