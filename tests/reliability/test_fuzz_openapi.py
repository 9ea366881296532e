"""Schemathesis against the served OpenAPI document of a live server: at least 1,000
generated requests (valid and invalid by the schema), no 5xx, and every response matches
the documented status codes, content types and schemas.

Each generated case is sent as generated and, when its path names a collection, once more
aimed at a live collection with points (a random name mostly meets a 400/404 at the door).
Negative generation is left out where the schema leaves nothing to break (a path with one
free-form string), since Hypothesis would spend seconds failing to find an invalid case, and
where building invalid cases is slow (COSTLY_NEGATIVE).
PITH_FUZZ_REQUESTS sets the number of requests (1,000 in `make test`)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import httpx
import schemathesis
from crash_helpers import ForkServer
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

REQUESTS = int(os.environ.get("PITH_FUZZ_REQUESTS", "1000"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
TARGET = "fz"
# invalid cases of these take Hypothesis ~0.7 s each to build (nested filters, id unions),
# 80% of the run; their bad bodies are in test_bad_input's corpus instead
COSTLY_NEGATIVE = {
    "/collections/{name}/search/batch",
    "/collections/{name}/points/delete",
    "/collections/{name}/points/count",
}
schemathesis.serializer.alias("application/x-tar", "application/octet-stream")  # snapshot upload


class Enough(Exception):
    """Ends the Hypothesis run once enough requests went out (cases can send two)."""


def ensure_target(http: httpx.Client) -> None:
    """The collection half the requests aim at, with a few points (re-made if fuzzed away)."""
    if http.get(f"/collections/{TARGET}").status_code == 200:
        return
    assert http.put(f"/collections/{TARGET}", json={"dim": 4}).status_code == 201
    points = [{"id": i, "vector": [1.0, i, 0.5, -1.0], "payload": {"n": i}} for i in range(8)]
    assert http.put(f"/collections/{TARGET}/points", json={"points": points}).status_code == 200


def strategies(schema: schemathesis.BaseSchema) -> st.SearchStrategy:
    """Valid cases of every operation; invalid cases of those with a body or query."""
    out = []
    for result in schema.get_all_operations():
        op = result.ok()
        out.append(op.as_strategy(generation_mode=GenerationMode.POSITIVE))
        if (op.body or op.query) and op.path not in COSTLY_NEGATIVE:
            out.append(op.as_strategy(generation_mode=GenerationMode.NEGATIVE))
    return st.one_of(out)


def test_fuzzed_requests_get_no_5xx_and_match_the_schema(forks: ForkServer, tmp_path: Path) -> None:
    server = forks.start(tmp_path / "data", max_body_bytes=1 << 20)
    http = httpx.Client(base_url=server.url, timeout=30)
    ensure_target(http)
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    sent: list[int] = []
    failures: list[str] = []

    def send(case: schemathesis.Case) -> None:
        response = case.call(base_url=server.url, timeout=30)
        sent.append(response.status_code)
        try:
            case.validate_response(response, checks=CHECKS)
        except Exception as exc:  # collected, so one run reports every kind of failure
            failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {exc}")
        if case.method == "DELETE" or response.status_code >= 500:
            ensure_target(http)

    @seed(20261129)
    @settings(
        max_examples=REQUESTS,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategies(schema))
    def one(case: schemathesis.Case) -> None:
        if len(sent) >= REQUESTS:
            raise Enough
        send(case)
        if "name" in (case.path_parameters or {}) and case.path_parameters["name"] != TARGET:
            case.path_parameters = {**case.path_parameters, "name": TARGET}
            send(case)

    with contextlib.suppress(Enough):
        one()
    server_errors = sum(1 for s in sent if s >= 500)
    statuses = {s: sent.count(s) for s in sorted(set(sent))}
    print(f"\nfuzz: {len(sent)} requests, {server_errors} 5xx, statuses {statuses}")
    assert not failures, "\n".join(failures[:10])
    assert len(sent) >= REQUESTS and server_errors == 0
    assert sum(1 for s in sent if s < 300) >= len(sent) // 10  # not all refused at the door
    server.kill()
