"""A gateway with both seams in memory, and requests made in memory: what the stage
tests of the pipeline drive (tests/unit/test_pipeline_*.py).

``memory_gateway(tmp_path, *changes)`` builds the demo config (config.yaml, with
``changes`` applied to its parsed YAML) with ``gateway.runtime.compose.build``, a
``MemorySessionStore`` and one ``MemoryUpstream`` per node and instance (legacy
``a`` and ``b``, new ``n1`` and ``n2``), each answering 200 with its own id as the
body unless a test scripts it. ``MemoryGateway.send`` answers as the listener does:
the pipeline's reply, or the problem+json of its refusal. Nothing is dialled: the
Redis URL names a port where nothing listens, and no route of the demo pins.

``request(...)`` is an ``Incoming`` as the listener would parse it; ``Body`` a request
body arriving chunk by chunk, counting reads and ``100 Continue``s.
"""

from __future__ import annotations

import copy
import json
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.edge.http import Incoming, Reply, problem
from gateway.errors import GatewayError
from gateway.observe.metrics import Metrics
from gateway.pipeline.chain import Pipeline
from gateway.pipeline.exchange import Exchange
from gateway.runtime.compose import Overrides, Parts, build
from gateway.runtime.startup import Secrets
from gateway.settings import parse
from gateway.upstream.client import ClientLimits
from gateway.upstream.forward import Outgoing, Upstream
from testkit.fakes import MemorySessionStore, MemoryUpstream
from testkit.fakes import Reply as Answer
from testkit.keys import SESSION_KEY, make_keypair

ROOT = Path(__file__).resolve().parents[2]
DEMO = yaml.safe_load((ROOT / "config.yaml").read_text())
HOST = "shop.test"
CLIENT = "203.0.113.9"
RID = "rid-0000000001"
SID = "S" * 22
"""A session id as the monolith sets it (its cookie: ``shop_session``)."""
LEGACY, NEW = ("a", "b"), ("n1", "n2")

Change = Callable[[dict[str, Any]], object]


def route(name: str, **values: Any) -> Change:
    """A change to one route of the demo config (``stage="canary", percent=100``...)."""
    def change(data: dict[str, Any]) -> None:
        [section] = [r for r in data["routes"] if r["name"] == name]
        section.update(values)
    return change


def gateway(**values: Any) -> Change:
    """A change to the ``gateway`` section."""
    return lambda data: data["gateway"].update(values)


class Body:
    """A request body (``gateway.edge.http.BodySource``), one chunk per read."""

    def __init__(self, *chunks: bytes) -> None:
        self.size = sum(len(c) for c in chunks)
        self._chunks = deque(chunks)
        self.reads = 0
        self.continued = 0
        """``100 Continue``s sent to the client."""

    async def read(self) -> bytes:
        self.reads += 1
        return self._chunks.popleft() if self._chunks else b""

    async def send_continue(self) -> None:
        self.continued += 1


def request(method: str = "GET", target: str = "/", headers: Iterable[tuple[str, str]] = (),
            *, body: bytes | Body | None = None, host: str | None = HOST, peer: str = CLIENT,
            version: tuple[int, int] = (1, 1), scheme: str = "http") -> Incoming:
    """A request as the listener hands it over. A body is declared with its
    Content-Length, unless ``headers`` declare it (``Transfer-Encoding: chunked``, or a
    Content-Length of their own: the declared one)."""
    fields: CIMultiDict[str] = CIMultiDict([("Host", host)] if host is not None else [])
    fields.extend(headers)
    source = Body(body) if isinstance(body, bytes) else body
    chunked = "Transfer-Encoding" in fields
    if source is not None and not chunked and "Content-Length" not in fields:
        fields["Content-Length"] = str(source.size)
    declared = fields.get("Content-Length", "")
    return Incoming(method, target, version, CIMultiDictProxy(fields), peer, scheme,
                    int(declared) if declared.isdigit() else None, chunked, source)


def cookie(**values: str) -> tuple[str, str]:
    return "Cookie", "; ".join(f"{k}={v}" for k, v in values.items())


@dataclass
class MemoryGateway:
    parts: Parts
    store: MemorySessionStore
    backends: dict[str, MemoryUpstream]

    @property
    def pipeline(self) -> Pipeline:
        return self.parts.pipeline

    @property
    def metrics(self) -> Metrics:
        return self.parts.held.metrics

    async def send(self, incoming: Incoming, rid: str = RID) -> Reply:
        """The answer the client gets (as ``gateway.runtime.app`` makes it)."""
        try:
            return await self.pipeline.handle(incoming, rid)
        except GatewayError as exc:
            return problem(exc, rid)

    async def prepare(self, incoming: Incoming) -> Exchange:
        """The exchange the stages before the decision make of ``incoming``."""
        return await self.pipeline.prepare(incoming, RID)

    def received(self, *ids: str) -> list[Outgoing]:
        """What the named backends (default: all) were sent, in order per backend."""
        return [r for i in ids or self.backends for r in self.backends[i].received]

    def count(self, name: str, **labels: str) -> float:
        """A metric's sample (0 when never counted)."""
        return self.metrics.registry.get_sample_value(name, labels) or 0.0

    def total(self, name: str) -> float:
        """A metric's samples summed over every label set."""
        return sum(s.value for family in self.metrics.registry.collect()
                   for s in family.samples if s.name == name)

    def seed(self, sid: str = SID, node: str = "b", lrev: int = 7) -> None:
        """A session of user 7 the store holds in sync with ``node``."""
        self.store.put(sid, {"doc": json.dumps({"schema": 2, "user": {"id": 7, "name": "ann"},
                                                "fields": {}, "extra": {}}),
                             "v": 3, "lv": 3, "node": node, "lrev": lrev})


def side(reply: Reply) -> str:
    """Which side answered the client: ``legacy`` or ``new`` (each backend answers 200 with
    its id unless scripted)."""
    assert reply.status == 200, reply
    body = reply.body.decode()
    return "new" if body in NEW else "legacy" if body in LEGACY else f"? {body}"


def title(reply: Reply) -> str:
    """The problem+json ``title`` of a refusal (its error's code)."""
    assert reply.headers["Content-Type"] == "application/problem+json", reply
    return str(json.loads(reply.body)["title"])


def set_cookies(reply: Reply) -> dict[str, str]:
    """The cookies a reply sets, by name: the rest of each line after ``name=``."""
    lines = reply.headers.getall("Set-Cookie", [])
    return {name: rest for name, _, rest in (line.partition("=") for line in lines)}


async def whole(reply: Reply) -> bytes:
    if reply.stream is None:
        return reply.body
    return b"".join([chunk async for chunk in reply.stream])


def _own_id(upstream_id: str) -> Callable[[Outgoing], Answer]:
    return lambda r: Answer(200, upstream_id.encode(), {"Content-Type": "text/plain"})


@asynccontextmanager
async def memory_gateway(tmp_path: Path, *changes: Change) -> AsyncIterator[MemoryGateway]:
    data = copy.deepcopy(DEMO)
    data["redis"]["url"] = "redis://127.0.0.1:9/0"  # never dialled
    data["database"]["url"] = f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}"
    data["tokens"]["private_key_file"] = str(make_keypair(tmp_path / "keys").private_pem)
    for change in changes:
        change(data)
    store = MemorySessionStore(handle_key=SESSION_KEY)
    backends: dict[str, MemoryUpstream] = {}

    def upstream(upstream_id: str, url: str, limits: ClientLimits) -> Upstream:
        backends[upstream_id] = MemoryUpstream(upstream_id, url, _own_id(upstream_id),
                                               limits=limits)
        return backends[upstream_id]

    secrets = Secrets("internal", {"admin": "admin"}, SESSION_KEY)
    parts = build(parse(data, "config.yaml"),
                  Overrides(secrets=secrets, store=store, upstreams=upstream))
    held = parts.held
    try:
        yield MemoryGateway(parts, store, backends)
    finally:
        await held.shadow.stop()
        await held.pin_book.stop()
        await store.stop()
        await held.clients.close()
        await held.ledger.close()
        await held.redis.aclose()
