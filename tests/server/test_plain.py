"""Plain search bodies answered in bulk (server/routes/plain.py): the same bytes as the full
SearchRequest path for everything the fast reading takes, the full path's own error for a bad
body in a plain batch, and the full path for every body the fast reading leaves."""

from __future__ import annotations

import base64

import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient
from server_helpers import points_body

from core.errors import InvalidInput
from server.routes import search as routes
from server.routes.plain import plain_body
from server.schemas import SearchRequest
from server.service.collection import Collection

DIM = 16


@pytest.fixture
def collection(client: TestClient) -> Collection:
    client.put("/collections/c", json={"dim": DIM, "metric": "cosine"})
    x = np.random.default_rng(0).standard_normal((200, DIM)).astype(np.float32)
    r = client.put("/collections/c/points", json=points_body(x, payload=lambda i: {"i": i}))
    assert r.status_code == 200, r.text
    return client.app.state.service.get("c")  # type: ignore[attr-defined,no-any-return]


def full_path(collection: Collection, body: bytes) -> bytes | BaseException:
    """The answer of the SearchRequest path alone (pydantic parse, per-body preparation)."""
    try:
        req = routes.parse_json_model(SearchRequest, body)
        (answer,) = routes.answer_requests([(collection, req)])
    except Exception as exc:
        return exc
    return answer if isinstance(answer, BaseException) else routes.encode_hits(answer[0])


def queries(n: int, seed: int) -> list[list[float]]:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32).tolist()


def test_plain_bodies_give_the_full_paths_bytes(collection: Collection) -> None:
    q = queries(6, 1)
    docs: list[dict[str, object]] = [
        {"vector": q[0]},
        {"vector": q[1], "k": 3},
        {"vector": q[2], "k": 3, "with_payload": False},
        {"vector": q[3], "k": 3},  # same group as body 1
        {"vector": q[4], "k": 2, "with_vectors": True},
        {"vector": [str(v) for v in q[5]], "k": 4},  # numeric strings: the full path's floats
        {"vector": [True, *q[5][1:]], "k": 4},  # a bool is 1.0 to pydantic too
    ]
    bodies = [orjson.dumps(d) for d in docs]
    answers = routes.answer_jobs([(collection, b) for b in bodies])
    assert answers == [full_path(collection, b) for b in bodies]
    assert [len(orjson.loads(a)["hits"]) for a in answers] == [10, 3, 3, 3, 2, 4, 4]  # type: ignore[arg-type]


def b64(values: list[float], dtype: str) -> str:
    return base64.b64encode(np.asarray(values, dtype=dtype).tobytes()).decode()


def test_base64_bodies_give_the_full_paths_bytes(collection: Collection) -> None:
    q = queries(4, 4)
    docs: list[dict[str, object]] = [
        {"vector_b64": b64(q[0], "<f4"), "k": 3},
        {"vector_b64": b64(q[1], "<f4"), "dtype": "float32", "k": 3, "with_payload": False},
        {"vector_b64": b64(q[2], "<f2"), "dtype": "float16", "k": 3},
        {"vector": q[3], "k": 3},  # a list beside them
        {"vector_b64": b64(q[0], "<f4")[:-4], "k": 3},  # cut short: the full path's 400
        {"vector_b64": b64(q[1], "<f4"), "dtype": "float64"},  # not a dtype pith reads
        {"vector": q[2], "dtype": "float64"},  # pydantic refuses the dtype even beside a list
    ]
    bodies = [orjson.dumps(d) for d in docs]
    answers = routes.answer_jobs([(collection, b) for b in bodies])
    expected = [full_path(collection, b) for b in bodies]
    assert answers[:4] == expected[:4]
    assert all(isinstance(a, bytes) for a in answers[:4])
    for i in (4, 5, 6):
        assert isinstance(answers[i], InvalidInput)
        assert str(answers[i]) == str(expected[i])


def test_a_bad_body_in_a_plain_batch_gets_the_full_paths_error(collection: Collection) -> None:
    q = queries(3, 2)
    bodies = [
        orjson.dumps({"vector": q[0], "k": 5}),
        orjson.dumps({"vector": q[1][:-1], "k": 5}),  # one value short
        orjson.dumps({"vector": [0.0] * DIM, "k": 5}),  # no cosine direction
        orjson.dumps({"vector": q[2], "k": 5}),
        orjson.dumps({"vector": [q[2]], "k": 5}),  # nested
    ]
    answers = routes.answer_jobs([(collection, b) for b in bodies])
    expected = [full_path(collection, b) for b in bodies]
    assert answers[0] == expected[0] and answers[3] == expected[3]
    for i in (1, 2, 4):
        assert isinstance(answers[i], InvalidInput)
        assert str(answers[i]) == str(expected[i])


def test_json_edge_cases_give_the_full_paths_answers(collection: Collection) -> None:
    q = queries(2, 5)
    ints = [round(v * 10) or 1 for v in q[0]]
    bodies = [
        orjson.dumps({"vector": ints, "k": 3}),  # JSON integers
        b'{"vector": %s, "k": 3, "vector": %s}' % (orjson.dumps(q[0]), orjson.dumps(q[1])),
        b'{"vector": [%s], "k": 3}' % b", ".join(b"1e400" for _ in range(DIM)),  # past float64
        b'{"vector": [%s], "k": 3}' % b", ".join(b"18446744073709551616" for _ in range(DIM)),
        orjson.dumps({"vector": [None, *q[1][1:]], "k": 3}),
        orjson.dumps({"vector": [[v] for v in q[1]], "k": 3}),  # nested: never flattened
        orjson.dumps({"vector": [], "k": 3}),
    ]
    answers = routes.answer_jobs([(collection, b) for b in bodies])
    expected = [full_path(collection, b) for b in bodies]
    assert answers[:2] == expected[:2] and all(isinstance(a, bytes) for a in answers[:2])
    assert (
        orjson.loads(answers[1])["hits"]
        == orjson.loads(  # type: ignore[arg-type]
            full_path(collection, orjson.dumps({"vector": q[1], "k": 3}))  # type: ignore[arg-type]
        )["hits"]
    )  # the last of duplicate keys counts, as in pydantic
    for answer, want in zip(answers[2:], expected[2:], strict=True):
        assert type(answer) is type(want) and str(answer) == str(want)
    assert isinstance(answers[4], InvalidInput) and isinstance(answers[5], InvalidInput)
    assert plain_body(bodies[0]) is not None  # integers are plain numbers


def test_plain_bodies_skip_the_pydantic_parse(
    collection: Collection, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed: list[bytes] = []
    full = routes.parse_json_model

    def spy(model: type[SearchRequest], body: bytes) -> SearchRequest:
        parsed.append(body)
        return full(model, body)

    monkeypatch.setattr(routes, "parse_json_model", spy)
    q = queries(3, 3)
    plain = [orjson.dumps({"vector": v, "k": 2}) for v in q]
    other = orjson.dumps({"vector": q[0], "k": 2, "params": {"rerank": False}})
    answers = routes.answer_jobs([(collection, b) for b in [*plain, other]])
    assert parsed == [other]
    assert all(isinstance(a, bytes) for a in answers)


@pytest.mark.parametrize(
    "body",
    [
        b'{"vector": [1, 2], "k": true}',  # pydantic's k=1, read by the full path
        b'{"vector": [1, 2], "k": 2.0}',
        b'{"vector": [1, 2], "k": 0}',
        b'{"vector": [1, 2], "k": 10001}',
        b'{"vector": [1, 2], "with_payload": 1}',
        b'{"vector": [1, 2], "filter": {}}',
        b'{"vector": "AAAA"}',
        b'{"vector_b64": "AAAA", "dtype": "float64"}',
        b'{"vector_b64": "AA=A"}',
        b'{"vector_b64": "AAA=", "dtype": "float32"}',  # 2 bytes: not a whole float32
        b'{"vector_b64": "AAAA", "shape": [1, 3]}',
        b'{"text": "a"}',
        b"[1, 2]",
        b"{not json",
    ],
)
def test_the_fast_reading_leaves_what_it_does_not_know(body: bytes) -> None:
    assert plain_body(body) is None


def test_the_fast_reading_takes_defaults_from_the_schema() -> None:
    body = plain_body(b'{"vector": [1, 2.5]}')
    assert body is not None
    default = SearchRequest(vector=[1.0])
    assert (body.k, body.with_payload, body.with_vectors) == (
        default.k,
        default.with_payload,
        default.with_vectors,
    )
