from typing_extensions import Buffer

def rerank_f16(
    queries: Buffer,
    vectors: Buffer,
    rows: Buffer,
    ids: Buffer,
    scores: Buffer,
    best: Buffer,
    nq: int,
    d: int,
    n: int,
    c: int,
    k: int,
    l2: bool,
    /,
) -> None: ...
def simd() -> str: ...
