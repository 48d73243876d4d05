"""HTTP to the app (one cookie jar per virtual user) and to the admin API.

Every app request is recorded as the user saw it: its route (matched with
the gateway's own router, so it is the route the gateway counted), status
(0 when no answer came), latency and the backend of the debug header.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from flags.text import fit
from gateway.routing.routes import Router
from strangler.rehearse.stats import Recorder, Sample

BACKEND_HEADER = "X-Strangler-Backend"


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    """0: no answer (timeout, reset, refused)."""
    body: Any
    backend: str | None
    error: str = ""

    @property
    def answered(self) -> bool:
        """The app gave a verdict: anything but no answer or a 5xx."""
        return 0 < self.status < 500


class AppClient:
    """One browser-like user: its own cookie jar, every request recorded."""

    def __init__(self, base_url: str, timeout_s: float, router: Router, recorder: Recorder,
                 clock: Callable[[], float]) -> None:
        self.base = base_url.rstrip("/")
        self.router = router
        self.recorder = recorder
        self.clock = clock
        self.http = aiohttp.ClientSession(
            cookie_jar=aiohttp.CookieJar(unsafe=True),
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            connector=aiohttp.TCPConnector(limit=4))

    async def close(self) -> None:
        await self.http.close()

    def _route(self, method: str, path: str) -> str:
        match = self.router.match(path, method)
        return match.route.name if match.route is not None else "?"

    async def call(self, method: str, path: str, json: Any = None,
                   headers: dict[str, str] | None = None) -> Reply:
        start = self.clock()
        try:
            async with self.http.request(method, self.base + path, json=json,
                                         headers=headers) as resp:
                raw = await resp.read()
                backend = resp.headers.get(BACKEND_HEADER)
                reply = Reply(resp.status, _decode(raw), backend.split(":")[0] if backend else None)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            reply = Reply(0, None, None, f"{type(exc).__name__}: {exc}"[:200])
        self.recorder.add(Sample(start, self.clock(), self._route(method, path), reply.status,
                                 reply.backend))
        return reply


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw[:200].decode(errors="replace")


class AdminError(Exception):
    """The admin API refused or did not answer; the message says which and why."""


class AdminClient:
    """The gateway's admin API with a bearer token (the ledger records its name)."""

    def __init__(self, base_url: str, token: str | None) -> None:
        self.base = base_url.rstrip("/")
        self.token = token
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))

    async def close(self) -> None:
        await self.http.close()

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            async with self.http.request(method, self.base + path, json=body,
                                         headers=headers) as resp:
                text = await resp.text()
                if resp.status >= 400:
                    raise AdminError(f"{method} {path}: {resp.status} {text[:300]}")
                return _decode(text.encode()) if path != "/metrics" else text
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise AdminError(f"{method} {self.base}{path}: {type(exc).__name__}: {exc}") from exc

    async def routes(self) -> dict[str, Any]:
        body: dict[str, Any] = await self._call("GET", "/api/routes")
        return body

    async def set_route(self, name: str, stage: str, percent: int | None,
                        reason: str) -> dict[str, Any]:
        # A reason is composed from the plan's names and gate figures: a long or odd one
        # must never get a rollback refused, so it is made to fit the ledger's rule.
        body: dict[str, Any] = {"stage": stage, "reason": fit(reason)}
        if percent is not None:
            body["percent"] = percent
        out: dict[str, Any] = await self._call("PUT", f"/api/routes/{name}", body)
        return out

    async def kill(self, on: bool, reason: str) -> dict[str, Any]:
        out: dict[str, Any] = await self._call("PUT", "/api/kill-switch",
                                               {"on": on, "reason": fit(reason)})
        return out

    async def metrics(self) -> str:
        return str(await self._call("GET", "/metrics"))

    async def ledger(self, route: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        query = f"?limit={limit}" + (f"&route={route}" if route else "")
        body = await self._call("GET", "/api/ledger" + query)
        return list(body.get("entries", [])) if isinstance(body, dict) else []

    async def wait_ready(self, within_s: float) -> None:
        deadline = asyncio.get_running_loop().time() + within_s
        while True:
            try:
                await self._call("GET", "/readyz")
                return
            except AdminError:
                if asyncio.get_running_loop().time() > deadline:
                    raise
            await asyncio.sleep(0.1)
