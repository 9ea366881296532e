"""Search: one query, or a batch of queries, with filters applied inside the index scan."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request, Response

from index import SearchParams
from server.auth import require_read
from server.bodies import parse_json_model, query_vectors
from server.deps import CollectionDep
from server.errors import ERRORS_COMMON, FastJSON
from server.fastpath import start_search
from server.openapi import json_body
from server.routes.plain import PlainBody, plain_body, plain_request, plain_vectors
from server.schemas import BatchSearchRequest, BatchSearchResponse, SearchRequest, SearchResponse
from server.service.batching import Result, search_grouped
from server.service.collection import Collection, Hit, Query
from server.service.vectors import Vectors

router = APIRouter(tags=["search"], responses=ERRORS_COMMON)


def prepare_query(
    req: SearchRequest, collection: Collection, vectors: Vectors | None = None
) -> Query:
    """Request -> service query: vectors validated (or text embedded), defaults resolved."""
    p, spec = req.params, collection.spec
    params = SearchParams(
        nprobe=p.nprobe,
        ef_search=p.ef_search,
        rerank=p.rerank if p.rerank is not None else spec.rerank,
        oversample=p.oversample if p.oversample is not None else spec.oversample,
    )
    flt = None if req.filter is None or req.filter.is_empty() else req.filter
    if vectors is None:
        vectors = query_vectors(req, collection)
    return Query(vectors, req.k, flt, params, req.with_payload, req.with_vectors)


def hit_body(hit: Hit) -> dict[str, Any]:
    out: dict[str, Any] = {"id": hit.id, "score": hit.score}
    if hit.payload is not None:
        out["payload"] = hit.payload
    if hit.vector is not None:
        out["vector"] = hit.vector
    return out


SearchItem = tuple[Collection, SearchRequest]
SearchJob = tuple[Collection, SearchRequest | bytes]  # bytes: a raw body, answered as JSON


def answer_jobs(jobs: list[SearchJob]) -> list[Result | bytes | BaseException]:
    """The search dispatcher's work, on a search thread: raw bodies are parsed here (not on
    the event loop) and answered with their encoded JSON; parsed requests with their hits.
    Plain bodies go in bulk (server/routes/plain.py); the others one by one."""
    out: dict[int, Result | bytes | BaseException] = dict(answer_plain_jobs(jobs))
    rest = [i for i in range(len(jobs)) if i not in out]
    parsed = [_parsed(jobs[i][1]) for i in rest]
    valid = [
        (jobs[i][0], r) for i, r in zip(rest, parsed, strict=True) if isinstance(r, SearchRequest)
    ]
    answers = iter(answer_requests(valid))
    for i, one in zip(rest, parsed, strict=True):
        answer = one if isinstance(one, BaseException) else next(answers)
        if isinstance(jobs[i][1], bytes) and not isinstance(answer, BaseException):
            out[i] = encode_hits(answer[0])
        else:
            out[i] = answer
    return [out[i] for i in range(len(jobs))]


def answer_plain_jobs(jobs: list[SearchJob]) -> dict[int, bytes | BaseException]:
    """Encoded answers of the plain raw bodies, by job index: one validated matrix and one
    search per single-vector collection and (k, with_payload, with_vectors); bodies for
    multi-vector collections are not read here (they would be parsed twice). A group whose
    vectors fail validation is left out (its bodies go the full way, each to its own answer
    or 400)."""
    groups: dict[tuple[int, int, bool, bool, bool], list[tuple[int, PlainBody]]] = {}
    for i, (collection, req) in enumerate(jobs):
        single = not collection.spec.multivector
        body = plain_body(req) if isinstance(req, bytes) and single else None
        if body is not None:
            groups.setdefault((id(collection), *body.group), []).append((i, body))
    out: dict[int, bytes | BaseException] = {}
    for members in groups.values():
        collection = jobs[members[0][0]][0]
        bodies = [body for _, body in members]
        vectors = plain_vectors(collection, bodies)
        if vectors is None:
            continue
        try:
            query = prepare_query(plain_request(bodies[0]), collection, vectors)
            answers: list[bytes | BaseException] = list(map(encode_hits, collection.search(query)))
        except Exception as exc:  # the search's own error is every member's answer
            answers = [exc] * len(members)
        for (i, _), answer in zip(members, answers, strict=True):
            out[i] = answer
    return out


def _parsed(req: SearchRequest | bytes) -> SearchRequest | BaseException:
    if not isinstance(req, bytes):
        return req
    try:
        return parse_json_model(SearchRequest, req)
    except Exception as exc:  # this body's own 400
        return exc


def encode_hits(hits: list[Hit]) -> bytes:
    """The body of a search answer."""
    return orjson.dumps({"hits": [hit_body(h) for h in hits]}, option=orjson.OPT_SERIALIZE_NUMPY)


def answer_requests(items: list[SearchItem]) -> list[Result | BaseException]:
    """Validate (or embed) each query, then search them in groups."""
    prepared = prepare_all(items)
    answers = iter(search_grouped([p for p in prepared if not isinstance(p, BaseException)]))
    return [p if isinstance(p, BaseException) else next(answers) for p in prepared]


def prepare_all(items: list[SearchItem]) -> list[tuple[Collection, Query] | BaseException]:
    """Queries of a batch; plain single vectors of one collection are validated together."""
    out: list[tuple[Collection, Query] | BaseException | None] = [None] * len(items)
    plain: dict[int, list[int]] = {}
    for i, (collection, req) in enumerate(items):
        if req.vector is not None and not collection.spec.multivector:
            plain.setdefault(id(collection), []).append(i)
    for members in plain.values():
        collection = items[members[0]][0]
        try:
            stacked = collection.vectors([items[i][1].vector for i in members], None, "vector")
        except Exception:  # someone's vector is wrong: each is checked alone below
            continue
        for row, i in enumerate(members):
            out[i] = (
                collection,
                prepare_query(items[i][1], collection, Vectors(stacked.data[row : row + 1])),
            )
    for i, (collection, req) in enumerate(items):
        if out[i] is None:
            try:
                out[i] = (collection, prepare_query(req, collection))
            except Exception as exc:  # this request's own 400, the others go on
                out[i] = exc
    return [p for p in out if p is not None]


@router.post(
    "/collections/{name}/search",
    summary="Search: the k nearest points to a vector, token vectors or text",
    description="Scores: ip/cosine report the inner product (larger is better); l2 reports "
    "the Euclidean distance (smaller is better); multi-vector collections report the "
    "Chamfer sum. A filter restricts the scan itself: k hits come back whenever k points "
    "pass it. Concurrent searches are batched into one index call.",
    response_model=SearchResponse,
    openapi_extra=json_body(SearchRequest),
)
async def search(name: str, request: Request) -> Response:
    """Served by server/fastpath.py unless CORS is on; the same work either way."""
    answer = await start_search(request.app, request.headers, name, await request.body())
    return Response(answer, media_type="application/json")


@router.post(
    "/collections/{name}/search/batch",
    summary="Several searches in one request",
    response_model=BatchSearchResponse,
    dependencies=[Depends(require_read)],
)
async def search_batch(
    collection: CollectionDep, body: BatchSearchRequest, request: Request
) -> Response:
    dispatcher = request.app.state.dispatcher
    answers = await asyncio.gather(*(dispatcher.submit((collection, one)) for one in body.searches))
    results = [hits for (hits,) in answers]  # parsed requests are answered with their hits
    return FastJSON({"results": [{"hits": [hit_body(h) for h in hits]} for hits in results]})
