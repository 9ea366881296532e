# faiss ships SWIG-generated stubs that miss most of its API (downcasts, struct fields, search
# parameters): type-check against an opaque module instead.
from typing import Any

def __getattr__(name: str) -> Any: ...
