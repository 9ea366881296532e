"""FAISS-backed indexes over the encoders' codes: flat (SDC/ADC), IVF, HNSW; id filters;
exact re-rank from a memory-mapped float16 file; save/load with a versioned manifest."""

from index.base import Index, SearchResult
from index.factory import build_index, index_for, load_index, save_index
from index.spec import FlatSpec, HNSWSpec, IndexSpec, IVFSpec, RerankSpec, SearchParams

__all__ = [
    "FlatSpec",
    "HNSWSpec",
    "IVFSpec",
    "Index",
    "IndexSpec",
    "RerankSpec",
    "SearchParams",
    "SearchResult",
    "build_index",
    "index_for",
    "load_index",
    "save_index",
]
