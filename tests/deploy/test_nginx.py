"""nginx with deploy/nginx/pith.conf in front of pith replicas, on loopback: one replica is
killed with SIGKILL while requests flow, and every request through nginx still succeeds.

Single-node test: two independent pith servers holding the same points (search only: they
share no writes). Cluster test: two stateless pith ingresses over one Ray cluster (the
deployment deploy/README.md describes), with writes (wait=true) and searches."""

from __future__ import annotations

import importlib.util
import re
import threading
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml
from deploy_helpers import NGINX_TEMPLATE, ROOT, Nginx, Pith, RayHead, wait_until

DIM = 16
SPEC = {"dim": DIM, "metric": "cosine"}


def unit_rows(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def points(x: np.ndarray, first_id: int) -> dict:
    return {
        "points": [
            {"id": first_id + i, "vector": v.tolist(), "payload": {"i": first_id + i}}
            for i, v in enumerate(x)
        ]
    }


def top_id(http: httpx.Client, vector: np.ndarray) -> int:
    r = http.post("/collections/docs/search", json={"vector": vector.tolist(), "k": 3})
    assert r.status_code == 200, r.text
    return int(r.json()["hits"][0]["id"])


def test_searches_survive_a_killed_replica(tmp_path: Path, started: list) -> None:
    x = unit_rows(200, seed=3)
    replicas = [Pith(tmp_path / name) for name in ("a", "b")]
    started.extend(replicas)
    for replica in replicas:
        replica.wait_ready()
        with httpx.Client(base_url=replica.url, timeout=30) as direct:
            assert direct.put("/collections/docs", json=SPEC).status_code == 201
            assert direct.put("/collections/docs/points", json=points(x, 0)).status_code == 200
    nginx = Nginx(tmp_path / "nginx", [r.port for r in replicas])
    started.append(nginx)

    with httpx.Client(base_url=nginx.url, timeout=30) as http:
        assert [top_id(http, x[i]) for i in range(10)] == list(range(10))
        replicas[0].kill()
        # Round robin sends every other request to the dead replica first: each must be
        # retried on the live one, not surface as an error.
        assert [top_id(http, x[i]) for i in range(10, 40)] == list(range(10, 40))
        assert "connect() failed" in nginx.log()
        replicas[1].kill()
        r = http.post("/collections/docs/search", json={"vector": x[0].tolist(), "k": 3})
        assert r.status_code == 502
        assert r.json()["error"]["code"] == "bad_gateway"


def cluster_mode_missing() -> str | None:
    """Why the cluster test cannot run yet (cluster mode is built separately), or None."""
    if importlib.util.find_spec("cluster.service") is None:
        return "cluster mode (package cluster/) is not in this tree"
    from server.cli import build_parser

    if "--cluster" not in build_parser().format_help() + _serve_help():
        return "`pith serve --cluster` is not there yet"
    return None


def _serve_help() -> str:
    from server.cli import build_parser

    serve = build_parser()._subparsers._group_actions[0].choices["serve"]  # type: ignore[union-attr]
    return serve.format_help()


class Traffic:
    """Writes (wait=true) of fresh ids and searches for them, through nginx, in a thread."""

    def __init__(self, url: str, seed: int) -> None:
        self.http = httpx.Client(base_url=url, timeout=60)
        self.rng_seed = seed
        self.acked: dict[int, np.ndarray] = {}
        self.failures: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        rows = unit_rows(10_000, seed=self.rng_seed)
        batch, next_id = 8, 1000
        while not self.stop.is_set() and next_id + batch < 1000 + len(rows):
            x = rows[next_id - 1000 : next_id - 1000 + batch]
            r = self.http.put("/collections/docs/points?wait=true", json=points(x, next_id))
            if r.status_code != 200:
                self.failures.append(f"upsert {r.status_code} {r.text[:200]}")
            else:
                self.acked.update({next_id + i: v for i, v in enumerate(x)})
                q = {"vector": x[0].tolist(), "k": 1}
                s = self.http.post("/collections/docs/search", json=q)
                if s.status_code != 200 or s.json()["hits"][0]["id"] != next_id:
                    self.failures.append(f"search {s.status_code} {s.text[:200]}")
            next_id += batch


@pytest.mark.slow
def test_cluster_writes_and_searches_survive_a_killed_ingress(
    tmp_path: Path, started: list
) -> None:
    missing = cluster_mode_missing()
    if missing:
        pytest.skip(missing)
    head = RayHead()
    started.append(head)
    env = {**head.env, "PITH_CLUSTER_SHARDS": "1", "PITH_CLUSTER_REPLICAS": "2"}
    ingresses = [
        Pith(tmp_path / f"ingress{i}", "--cluster", head.address, env=env) for i in range(2)
    ]
    started.extend(ingresses)
    for ingress in ingresses:
        ingress.wait_ready()
    nginx = Nginx(tmp_path / "nginx", [i.port for i in ingresses])
    started.append(nginx)
    http = httpx.Client(base_url=nginx.url, timeout=120)
    assert http.put("/collections/docs", json=SPEC).status_code in (200, 201)

    traffic = Traffic(nginx.url, seed=4)
    traffic.thread.start()
    wait_for_acks(traffic, 10)
    ingresses[0].kill()
    before = len(traffic.acked)
    wait_for_acks(traffic, before + 10)
    traffic.stop.set()
    traffic.thread.join(120)

    assert traffic.failures == []
    # the killed ingress was tried after it died: the retry path was taken
    assert re.search(r"connect\(\) failed|prematurely closed|reset by peer", nginx.log())
    count = http.post("/collections/docs/points/count", json={}).json()["count"]
    assert count == len(traffic.acked)
    for point_id, vector in list(traffic.acked.items())[::7]:
        assert top_id(http, vector) == point_id
    traffic.http.close()
    http.close()


def wait_for_acks(traffic: Traffic, n: int, timeout_s: float = 120) -> None:
    def enough() -> bool:
        assert traffic.failures == [], traffic.failures
        return len(traffic.acked) >= n

    wait_until(enough, timeout_s, f"{n} acknowledged points")


def test_compose_puts_every_ingress_behind_nginx_and_every_ray_node_on_a_volume() -> None:
    services = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())["services"]
    commands = {name: str(s.get("command", "")) for name, s in services.items()}
    ingresses = sorted(n for n, c in commands.items() if c.startswith("pith serve"))
    ray_nodes = sorted(n for n, c in commands.items() if c.startswith("ray start"))
    assert len(ingresses) >= 2 and len(ray_nodes) >= 3
    nginx = services["nginx"]
    upstreams = nginx["environment"]["PITH_UPSTREAMS"]
    assert sorted(re.findall(r"server ([\w-]+):8000 ", upstreams)) == ingresses
    assert "./nginx/pith.conf:/etc/nginx/templates/pith.conf.template:ro" in nginx["volumes"]
    rendered = NGINX_TEMPLATE.read_text()
    for name, value in nginx["environment"].items():
        rendered = rendered.replace("${" + name + "}", str(value))
    assert "${PITH_" not in rendered
    for name in ingresses:
        assert "--cluster ray://ray-head:10001" in commands[name]
        assert services[name]["tmpfs"] == ["/data"]  # stateless
        replicas = int(services[name]["environment"]["PITH_CLUSTER_REPLICAS"])
        assert replicas <= len(ray_nodes), "replicas of a shard would share a node"
    volumes = [v for n in ray_nodes for v in services[n]["volumes"] if v.endswith(":/data")]
    assert len(volumes) == len(ray_nodes) == len(set(volumes))
