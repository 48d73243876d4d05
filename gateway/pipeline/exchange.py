"""What every stage works on: one request, what the stages found out about it, and
how it was served. Stages share nothing else; the ports they need from each other
are declared here, so that no stage imports another (``chain`` wires them)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol

from multidict import CIMultiDict

from gateway.edge.canonical import Target
from gateway.edge.http import Incoming
from gateway.routing.decide import Backend
from gateway.routing.routes import Route
from gateway.session.bridge import After, LegacyPlan
from gateway.upstream.forward import Outgoing, UpstreamResult

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(slots=True)
class Exchange:
    """Everything one request carries through the stages."""

    request: Incoming
    rid: str
    target: Target
    route: Route
    host: str | None
    """The validated Host (None: HTTP/1.0 without one)."""
    sid: str | None = None
    hint: str | None = None
    """The legacy node the client's affinity cookie names."""
    headers: CIMultiDict[str] | None = None
    """The headers to send a backend (``screen``)."""
    body: bytes | AsyncIterator[bytes] | None = None
    length: int | None = None
    sync: str | None = None
    """The client's sync token; replaced when this request may change the session on new."""
    new_sync: str | None = None
    new_cid: str | None = None
    client_id: str | None = None

    @property
    def method(self) -> str:
        return self.request.method

    @property
    def safe(self) -> bool:
        return self.request.method in SAFE_METHODS

    @property
    def secure(self) -> bool:
        """The client reached us over https, as its connection or a trusted proxy in front
        says: the ``X-Forwarded-Proto`` sent on (``gateway.edge.headers``). The listener
        speaks plain HTTP, so behind a TLS proxy this is the only way to know."""
        return self.headers is not None and self.headers.get("X-Forwarded-Proto") == "https"

    @property
    def resendable(self) -> bool:
        return self.body is None or isinstance(self.body, bytes)

    def outgoing(self, extra: dict[str, str] | None = None) -> Outgoing:
        headers = self.headers
        assert headers is not None, "screened before it is forwarded"
        if extra:
            headers = CIMultiDict(headers)
            headers.update(extra)
        return Outgoing(self.request.method, self.target.forward, headers, self.body,
                        self.length)


@dataclass(slots=True)
class Served:
    """Which backend answered, why, and (for a body still streaming) who to tell how it
    ended: ``ended(None)`` when it arrived whole, ``ended(kind)`` when it broke."""

    result: UpstreamResult
    backend: Backend
    reason: str
    legacy_node: str | None = None
    ended: Callable[[str | None], None] | None = None


class ShadowSink(Protocol):
    """Where a legacy answer on a shadowed route goes to be compared (``gateway.shadow``)."""

    def submit(self, ex: Exchange, legacy: UpstreamResult) -> None: ...


class SessionSide(Protocol):
    """The session stage as the forward stage uses it, once per attempt."""

    async def before_legacy(self, ex: Exchange, hint: str | None, sync: str | None
                            ) -> LegacyPlan: ...

    async def after_legacy(self, ex: Exchange, plan: LegacyPlan,
                           result: UpstreamResult) -> After: ...

    async def for_new(self, ex: Exchange) -> str | None:
        """The identity token for new (None: no session), or a session error."""

    def writing_on_new(self, ex: Exchange) -> None: ...

    def written_on_new(self, ex: Exchange) -> None: ...
