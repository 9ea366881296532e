"""Embedded mode: the pith engine in-process (server.service, the code the server runs),
no HTTP. Each `Call` is answered by the same parsers, validators and service methods the
server's routes use, and returns the same JSON-shaped answer, so results and errors agree
with a live server's. Needs the `pith` package (the server) importable."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pith_client.calls import Call, dumps
from pith_client.errors import error_from

T = TypeVar("T")


class EmbeddedTransport:
    """A `server.service.Service` over the data folder `path` (opened now, closed by close())."""

    def __init__(self, path: str | Path, embedders: Any = None, options: Any = None) -> None:
        from server.service.registry import Service

        self.service = Service(Path(path), options, None, embedders)
        self.service.open_all()
        self.service.ready = True
        self.retried = 0
        self._handlers: dict[str, Callable[[Any, Call[Any]], Any]] = HANDLERS

    def execute(self, call: Call[T], retries: int | None = None) -> Any:
        from pydantic import ValidationError

        from core.errors import PithError
        from server.errors import validation_message

        try:
            return self._handlers[call.op](self.service, call)
        except PithError as exc:
            raise error_from(exc.code, exc.message, exc.status) from exc
        except ValidationError as exc:
            raise error_from("invalid_input", validation_message(list(exc.errors())), 400) from exc

    def close(self) -> None:
        self.service.close_all()


# handlers: (service, call) -> the JSON body the server's route would answer ----------------
def _create_collection(svc: Any, call: Call[Any]) -> Any:
    from server.routes.collections import parse_spec

    collection, _ = svc.create(call.name, parse_spec(dumps(call.body)))
    return collection.info()


def _train(svc: Any, call: Call[Any]) -> Any:
    collection = svc.get(call.name)
    future = collection.train()
    if call.params.get("wait"):
        future.result()
    return {"state": collection.st.training.state}


def _upsert(svc: Any, call: Call[Any]) -> Any:
    from server.bodies import parse_upsert
    from server.routes.points import write_body

    collection = svc.get(call.name)
    batch = parse_upsert(dumps(call.body), collection)
    future = collection.upsert(batch.keys, batch.vectors, batch.payloads, call.params["wait"])
    return write_body(future.result())


def _get_point(svc: Any, call: Call[Any]) -> Any:
    from server.routes.points import point_body
    from server.service.ids import path_id_key

    point_id = call.path.rsplit("/", 1)[1]
    point = svc.get(call.name).get(path_id_key(point_id), call.params["with_vector"])
    return point_body(point)


def _delete_points(svc: Any, call: Call[Any]) -> Any:
    from server.routes.points import write_body
    from server.schemas import DeleteRequest
    from server.service.ids import id_key

    collection = svc.get(call.name)
    body = DeleteRequest.model_validate(call.body)
    keys = None if body.ids is None else [id_key(i) for i in body.ids]
    return write_body(collection.delete(keys, body.filter, call.params["wait"]).result())


def _scroll(svc: Any, call: Call[Any]) -> Any:
    from server.routes.points import _cursor, point_body
    from server.schemas import ScrollRequest

    collection = svc.get(call.name)
    body = ScrollRequest.model_validate(call.body)
    points, cursor = collection.scroll(
        body.filter, _cursor(body.cursor), body.limit, body.with_payload, body.with_vectors
    )
    next_cursor = None if cursor is None else str(cursor)
    return {"points": [point_body(p) for p in points], "next_cursor": next_cursor}


def _count(svc: Any, call: Call[Any]) -> Any:
    from server.schemas import CountRequest

    collection = svc.get(call.name)
    return {"count": collection.count(CountRequest.model_validate(call.body).filter)}


def _answer(items: list[Any]) -> list[Any]:
    """Search (collection, request) pairs exactly as the server's search threads do."""
    from server.routes.search import answer_requests, hit_body

    out = []
    for answer in answer_requests(items):
        if isinstance(answer, BaseException):
            raise answer
        (hits,) = answer
        out.append({"hits": [hit_body(h) for h in hits]})
    return out


def _search(svc: Any, call: Call[Any]) -> Any:
    from server.bodies import parse_json_model
    from server.schemas import SearchRequest

    collection = svc.get(call.name)
    (result,) = _answer([(collection, parse_json_model(SearchRequest, dumps(call.body)))])
    return result


def _search_batch(svc: Any, call: Call[Any]) -> Any:
    from server.schemas import BatchSearchRequest

    collection = svc.get(call.name)
    body = BatchSearchRequest.model_validate(call.body)
    return {"results": _answer([(collection, one) for one in body.searches])}


def _create_snapshot(svc: Any, call: Call[Any]) -> Any:
    from server.routes.snapshots import snapshot_body
    from server.service.snapshots import SnapshotInfo

    collection = svc.get(call.name)
    path = collection.snapshot(svc.snapshot_dir(call.name)).result()
    stat = path.stat()
    return snapshot_body(SnapshotInfo(path.name, stat.st_size, stat.st_mtime))


def _list_snapshots(svc: Any, call: Call[Any]) -> Any:
    from server.routes.snapshots import snapshot_body

    return {"snapshots": [snapshot_body(s) for s in svc.list_snapshots(call.name)]}


def _restore_snapshot(svc: Any, call: Call[Any]) -> Any:
    from server.schemas import RestoreRequest

    body = RestoreRequest.model_validate(call.body)
    return svc.restore(call.name, svc.snapshot_file(call.name, body.snapshot)).info()


def _delete_snapshot(svc: Any, call: Call[Any]) -> Any:
    svc.snapshot_file(call.name, call.body["snapshot"]).unlink()
    return {"status": "deleted"}


def _download_snapshot(svc: Any, call: Call[Any]) -> Any:
    assert call.file_out is not None
    shutil.copyfile(svc.snapshot_file(call.name, call.body["snapshot"]), call.file_out)
    return None


def _upload_snapshot(svc: Any, call: Call[Any]) -> Any:
    from core.errors import InvalidInput

    assert call.file_in is not None
    if call.file_in.stat().st_size == 0:
        raise InvalidInput("empty upload: send the tarball as the request body")
    return svc.restore(call.name, call.file_in).info()


def _delete_collection(svc: Any, call: Call[Any]) -> Any:
    svc.delete(call.name)
    return {"status": "deleted"}


HANDLERS: dict[str, Callable[[Any, Call[Any]], Any]] = {
    "create_collection": _create_collection,
    "list_collections": lambda svc, call: {"collections": svc.names()},
    "get_collection": lambda svc, call: svc.get(call.name).info(),
    "delete_collection": _delete_collection,
    "train": _train,
    "upsert": _upsert,
    "get_point": _get_point,
    "delete_points": _delete_points,
    "scroll": _scroll,
    "count": _count,
    "search": _search,
    "search_batch": _search_batch,
    "create_snapshot": _create_snapshot,
    "list_snapshots": _list_snapshots,
    "restore_snapshot": _restore_snapshot,
    "delete_snapshot": _delete_snapshot,
    "download_snapshot": _download_snapshot,
    "upload_snapshot": _upload_snapshot,
    "readiness": lambda svc, call: {"status": "ready", "load_s": svc.load_s, "failed": svc.failed},
}
