"""The REST API through TestClient: collections, points, errors, auth, limits, operations."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable

import numpy as np
import pytest
from fastapi.testclient import TestClient
from server_helpers import points_body, unit_rows

DIM = 16


def make(client: TestClient, name: str = "c", **spec: object) -> dict:
    r = client.put(f"/collections/{name}", json={"dim": DIM, **spec})
    assert r.status_code in (200, 201), r.text
    return r.json()


def error(r, status: int, code: str) -> str:  # type: ignore[no-untyped-def]
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    return body["error"]["message"]


# collections -----------------------------------------------------------------------------
def test_collection_lifecycle(client: TestClient) -> None:
    r = client.put("/collections/c", json={"dim": DIM, "metric": "l2"})
    assert r.status_code == 201 and r.json()["spec"]["index"]["metric"] == "l2"
    again = client.put("/collections/c", json={"dim": DIM, "metric": "l2"})
    assert again.status_code == 200 and again.json()["spec"] == r.json()["spec"]
    error(client.put("/collections/c", json={"dim": DIM, "metric": "ip"}), 409, "conflict")
    assert client.get("/collections").json() == {"collections": ["c"]}
    info = client.get("/collections/c").json()
    assert info["points"] == 0 and info["training"]["state"] == "trained"
    assert client.delete("/collections/c").json() == {"status": "deleted"}
    error(client.get("/collections/c"), 404, "not_found")
    assert client.get("/collections").json() == {"collections": []}


@pytest.mark.parametrize(
    "spec",
    [
        {"dim": DIM, "encoder": {"kind": "pq", "m": 64}},  # m above dim: the library refuses
        {"dim": DIM, "index": {"kind": "hnsw"}, "encoder": {"kind": "pq", "m": 4}},
        {"dim": DIM, "encoder": {"kind": "nope"}},
        {"dim": DIM, "unknown": True},
        {"dim": "sixteen"},
    ],
)
def test_invalid_specs_are_422(client: TestClient, spec: dict) -> None:
    error(client.put("/collections/c", json=spec), 422, "invalid_spec")
    assert client.get("/collections").json() == {"collections": []}


@pytest.mark.parametrize("name", ["..", ".hidden", "a/b", "a" * 65, "sp ace", "%2e%2e"])
def test_collection_names_are_strict(client: TestClient, name: str) -> None:
    r = client.put(f"/collections/{name}", json={"dim": DIM})
    assert r.status_code in (400, 404, 405), r.text
    assert "error" in r.json()


# points ----------------------------------------------------------------------------------
def test_upsert_get_replace_delete(client: TestClient) -> None:
    make(client)
    x = unit_rows(20, DIM, seed=1)
    r = client.put("/collections/c/points", json=points_body(x))
    assert r.json() == {"operation_id": 1, "status": "completed", "count": 20}
    p = client.get("/collections/c/points/7", params={"with_vector": True}).json()
    assert p["payload"] == {"i": 7} and p["version"] == 1
    np.testing.assert_allclose(p["vector"], x[7], atol=2e-3)  # float16 storage
    y = unit_rows(1, DIM, seed=2)
    client.put(
        "/collections/c/points",
        json={"points": [{"id": 7, "vector": y[0].tolist(), "payload": {"new": 1}}]},
    )
    p = client.get("/collections/c/points/7", params={"with_vector": True}).json()
    assert p["payload"] == {"new": 1} and p["version"] == 2
    np.testing.assert_allclose(p["vector"], y[0], atol=2e-3)
    assert client.post("/collections/c/points/count", json={}).json() == {"count": 20}
    hits = client.post("/collections/c/search", json={"vector": y[0].tolist(), "k": 20}).json()[
        "hits"
    ]
    assert hits[0]["id"] == 7 and [h["id"] for h in hits].count(7) == 1
    r = client.post("/collections/c/points/delete", json={"ids": [7, 8, 999]})
    assert r.json()["count"] == 2
    error(client.get("/collections/c/points/7"), 404, "not_found")
    assert client.post("/collections/c/points/count", json={}).json() == {"count": 18}
    hits = client.post("/collections/c/search", json={"vector": y[0].tolist(), "k": 20}).json()[
        "hits"
    ]
    assert {h["id"] for h in hits}.isdisjoint({7, 8}) and len(hits) == 18


def test_ids_u64_and_uuid(client: TestClient) -> None:
    make(client)
    u = str(uuid.UUID(int=12345))
    big = 2**64 - 1
    x = unit_rows(2, DIM, seed=3)
    body = {
        "points": [{"id": big, "vector": x[0].tolist()}, {"id": u.upper(), "vector": x[1].tolist()}]
    }
    assert client.put("/collections/c/points", json=body).status_code == 200
    assert client.get(f"/collections/c/points/{big}").json()["id"] == big
    assert client.get(f"/collections/c/points/{u}").json()["id"] == u
    hits = client.post("/collections/c/search", json={"vector": x[1].tolist(), "k": 2}).json()[
        "hits"
    ]
    assert hits[0]["id"] == u and hits[1]["id"] == big
    for bad in (-1, 2**64, "nope", 1.5, None):
        r = client.put(
            "/collections/c/points", json={"points": [{"id": bad, "vector": x[0].tolist()}]}
        )
        error(r, 400, "invalid_input")
    error(client.get("/collections/c/points/not-an-id"), 400, "invalid_input")


def test_batch_duplicates_keep_the_last(client: TestClient) -> None:
    make(client)
    x = unit_rows(3, DIM, seed=4)
    body = {
        "points": [{"id": 1, "vector": v.tolist(), "payload": {"k": k}} for k, v in enumerate(x)]
    }
    assert client.put("/collections/c/points", json=body).json()["count"] == 1
    assert client.get("/collections/c/points/1").json()["payload"] == {"k": 2}
    assert client.post("/collections/c/points/count", json={}).json()["count"] == 1


def test_base64_batch_and_point_forms(client: TestClient) -> None:
    make(client, metric="ip")
    x = unit_rows(10, DIM, seed=5)
    body = {
        "points": [{"id": i} for i in range(10)],
        "vectors_b64": base64.b64encode(x.astype("<f2").tobytes()).decode(),
        "dtype": "float16",
        "shape": [10, DIM],
    }
    assert client.put("/collections/c/points", json=body).json()["count"] == 10
    one = {"id": 50, "vector_b64": base64.b64encode(x[3].astype("<f4").tobytes()).decode()}
    assert client.put("/collections/c/points", json={"points": [one]}).status_code == 200
    q = {"vector_b64": base64.b64encode(x[3].astype("<f4").tobytes()).decode(), "k": 2}
    ids = sorted(h["id"] for h in client.post("/collections/c/search", json=q).json()["hits"])
    assert ids == [3, 50]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"points": [{"id": 1, "vector": [0.1] * (DIM - 1)}]}, "dimension"),
        (
            {
                "points": [
                    {
                        "id": 1,
                        "vector_b64": base64.b64encode(
                            np.full(DIM, np.nan, "<f4").tobytes()
                        ).decode(),
                    }
                ]
            },
            "NaN",
        ),
        ({"points": [{"id": 1, "vector": [1e9] * DIM}]}, "float16"),
        ({"points": [{"id": 1, "vector": [0.1] * DIM, "extra": 1}]}, "unknown"),
        ({"points": [{"id": 1, "vector": [0.1] * DIM}], "bogus": 1}, "unknown"),
        ({"points": [{"id": 1}]}, "exactly one"),
        ({"points": [{"id": 1, "vector_b64": "!!notbase64"}]}, "base64"),
        ({"points": [{"id": 1}], "vectors_b64": "AAAAAAAAAAA=", "shape": [1, DIM]}, "shape"),
        ({"points": [{"id": 1, "vector": "abc"}]}, "numbers"),
        ({"points": [{"id": 1, "vector": [0.1] * DIM, "payload": [1]}]}, "payload"),
        ({"points": [{"id": 1, "text": "hello"}]}, "embedder"),
        ({"points": {}}, "list"),
    ],
)
def test_bad_points_are_400_and_change_nothing(
    client: TestClient, body: dict, fragment: str
) -> None:
    make(client, metric="ip")
    x = unit_rows(1, DIM, seed=6)
    client.put(
        "/collections/c/points",
        json={"points": [{"id": 1, "vector": x[0].tolist(), "payload": {"a": 1}}]},
    )
    msg = error(client.put("/collections/c/points", json=body), 400, "invalid_input")
    assert fragment.lower() in msg.lower()
    p = client.get("/collections/c/points/1", params={"with_vector": True}).json()
    assert p["payload"] == {"a": 1} and p["version"] == 1
    assert client.post("/collections/c/points/count", json={}).json()["count"] == 1


def test_cosine_accepts_any_magnitude(client: TestClient) -> None:
    make(client)
    body = {"points": [{"id": 1, "vector": [1e30] * DIM}, {"id": 2, "vector": [-3.0] * DIM}]}
    assert client.put("/collections/c/points", json=body).status_code == 200
    v = client.get("/collections/c/points/1", params={"with_vector": True}).json()["vector"]
    np.testing.assert_allclose(v, np.full(DIM, DIM**-0.5), atol=1e-3)


def test_malformed_json_and_bad_search_requests(client: TestClient) -> None:
    make(client)
    r = client.put(
        "/collections/c/points", content=b"{not json", headers={"content-type": "application/json"}
    )
    error(r, 400, "invalid_input")
    r = client.post(
        "/collections/c/search", content=b"{not json", headers={"content-type": "application/json"}
    )
    error(r, 400, "invalid_input")
    error(
        client.post("/collections/c/search", json={"vector": [0.1] * DIM, "k": 0}),
        400,
        "invalid_input",
    )
    error(client.post("/collections/c/search", json={"k": 3}), 400, "invalid_input")
    error(
        client.post("/collections/c/search", json={"vector": [0.1] * DIM, "nope": 1}),
        400,
        "invalid_input",
    )
    error(client.post("/collections/c/search", json={"vector": [0.0] * DIM}), 400, "invalid_input")
    error(client.post("/collections/nope/search", json={"vector": [0.1] * DIM}), 404, "not_found")


def test_scroll_pages_through_everything_once(client: TestClient) -> None:
    make(client)
    x = unit_rows(57, DIM, seed=7)
    client.put("/collections/c/points", json=points_body(x, payload=lambda i: {"odd": i % 2}))
    seen, cursor = [], None
    while True:
        page = client.post(
            "/collections/c/points/scroll", json={"limit": 10, "cursor": cursor}
        ).json()
        seen += [p["id"] for p in page["points"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == list(range(57)) and len(seen) == 57
    odd = {"must": [{"key": "odd", "match": {"value": 1}}]}
    page = client.post(
        "/collections/c/points/scroll", json={"filter": odd, "limit": 100, "with_vectors": True}
    ).json()
    assert [p["id"] for p in page["points"]] == list(range(1, 57, 2)) and page[
        "next_cursor"
    ] is None
    assert len(page["points"][0]["vector"]) == DIM
    error(client.post("/collections/c/points/scroll", json={"cursor": "x1"}), 400, "invalid_input")


def test_delete_by_filter(client: TestClient) -> None:
    make(client)
    x = unit_rows(30, DIM, seed=8)
    client.put("/collections/c/points", json=points_body(x, payload=lambda i: {"group": i % 3}))
    r = client.post(
        "/collections/c/points/delete",
        json={"filter": {"must": [{"key": "group", "match": {"value": 0}}]}},
    )
    assert r.json()["count"] == 10
    left = client.post("/collections/c/points/scroll", json={"limit": 100}).json()["points"]
    assert sorted(p["id"] for p in left) == [i for i in range(30) if i % 3]
    error(client.post("/collections/c/points/delete", json={}), 400, "invalid_input")


def test_wait_false_is_visible_after_the_writer_applies(client: TestClient) -> None:
    make(client)
    x = unit_rows(50, DIM, seed=9)
    r = client.put("/collections/c/points", params={"wait": "false"}, json=points_body(x))
    assert r.json()["status"] in ("acknowledged", "completed")
    assert client.get("/collections/c/points/49").status_code == 200  # logged = readable
    r = client.put("/collections/c/points", json=points_body(x[:1], ids=[100]))  # wait=true
    assert r.json()["operation_id"] == 2
    assert client.get("/collections/c").json()["indexed_points"] == 51


# errors, auth, limits, operations --------------------------------------------------------
def test_unknown_routes_and_methods(client: TestClient) -> None:
    error(client.get("/nope"), 404, "not_found")
    error(client.delete("/healthz"), 405, "method_not_allowed")


def test_body_limit_is_413_json(make_client: Callable[..., TestClient]) -> None:
    client = make_client(max_body_bytes=4096)
    make(client)
    x = unit_rows(100, DIM, seed=10)
    error(client.put("/collections/c/points", json=points_body(x)), 413, "payload_too_large")
    assert client.post("/collections/c/points/count", json={}).json()["count"] == 0


def test_api_keys(make_client: Callable[..., TestClient]) -> None:
    client = make_client(api_key="rw-secret", read_only_api_key="ro-secret")
    rw, ro = {"Authorization": "Bearer rw-secret"}, {"api-key": "ro-secret"}
    error(client.get("/collections"), 401, "unauthorized")
    error(client.get("/collections", headers={"api-key": "wrong"}), 401, "unauthorized")
    assert client.put("/collections/c", json={"dim": DIM}, headers=rw).status_code == 201
    error(client.put("/collections/d", json={"dim": DIM}, headers=ro), 403, "forbidden")
    error(client.put("/collections/c/points", json={"points": []}, headers=ro), 403, "forbidden")
    assert client.get("/collections", headers=ro).json() == {"collections": ["c"]}
    assert (
        client.post("/collections/c/search", json={"vector": [0.1] * DIM}, headers=ro).status_code
        == 200
    )
    assert client.get("/healthz").status_code == 200  # probes stay open
    error(client.get("/metrics"), 401, "unauthorized")


def test_cors_off_by_default_and_on_when_configured(make_client: Callable[..., TestClient]) -> None:
    pre = {"Origin": "https://a.example", "Access-Control-Request-Method": "POST"}
    off = make_client()
    assert "access-control-allow-origin" not in off.options("/collections", headers=pre).headers
    on = make_client(cors_origins=["https://a.example"])
    r = on.options("/collections", headers=pre)
    assert r.headers["access-control-allow-origin"] == "https://a.example"


def test_metrics_and_openapi(client: TestClient) -> None:
    make(client)
    client.put("/collections/c/points", json=points_body(unit_rows(5, DIM, seed=11)))
    text = client.get("/metrics").text
    assert (
        'pith_http_requests_total{method="PUT",route="/collections/{name}/points",status="200"} 1.0'
        in text
    )
    assert 'pith_collection_points{collection="c"} 5.0' in text
    assert "pith_http_request_duration_seconds_bucket" in text
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    assert {"UpsertRequest", "CollectionSpec", "SearchRequest", "ErrorBody"} <= set(schemas)
    upsert = spec["paths"]["/collections/{name}/points"]["put"]
    assert upsert["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "UpsertRequest"
    )
    assert "413" in upsert["responses"] and "507" in upsert["responses"]
    assert (
        "Euclidean distance" in spec["paths"]["/collections/{name}/search"]["post"]["description"]
    )
