"""The Unleash-server flag provider: a real Unleash server holds the flags.

Reading is the official SDK's job. One registered ``UnleashClient`` per
gateway process polls ``/api/client/features`` every ``refresh_interval``
seconds in its background (APScheduler) thread, reports usage metrics, and is
the client every ``FlagView`` evaluates canary membership with. Its cache is
``flags.unleash_snapshot.SnapshotCache``: in memory, plus the last fetched
document on disk, so a gateway that starts while Unleash is down serves the
last flags it knew.

    Unleash --poll--> SDK thread --cache.set--> snapshot file (atomic)
                          |  engine takes the document, then FETCHED event
                          +--call_soon_threadsafe--> event loop: new FlagView

A view is published on the SDK's FETCHED event rather than on ``cache.set``:
the SDK writes its cache *before* its engine takes the document, and a view
published in between would memoise canary answers from the old definitions.

At start: the server's document if it answers; else the snapshot (and
``healthy`` stays False until a fetch succeeds); with no snapshot, every route
is legacy -- never config.yaml's stages, since with a server configured the
server is the truth.

Writing goes through the Admin API (``flags.unleash_flags.UnleashFlags``), in
an order that never lets a polling client see a half-made change; a flip
returns once this process's own view has it (bounded wait).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import structlog
from UnleashClient import UnleashClient  # type: ignore[attr-defined]
from UnleashClient.constants import FEATURES_URL
from UnleashClient.events import BaseEvent, UnleashEventType, UnleashFetchedEvent
from UnleashClient.utils import InstanceAllowType

from flags.features import MalformedFeature, parse_definitions
from flags.model import FlagError, FlagState, RouteFlag, Stage
from flags.store import Change
from flags.unleash_admin import UnleashAdmin
from flags.unleash_flags import UnleashFlags, all_legacy
from flags.unleash_snapshot import SnapshotCache
from flags.view import FlagView

log = structlog.get_logger("flags")

Listener = Callable[[FlagView], None]


class _OneLine(logging.Filter):
    """The SDK logs every failed poll with a full traceback (~100 lines a poll during an
    outage); keep its message, drop the traceback. ``flags_store_down`` says it once."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = None
        record.exc_text = None
        return True


_SDK_LOGS = logging.getLogger("UnleashClient")
if not any(isinstance(f, _OneLine) for f in _SDK_LOGS.filters):
    _SDK_LOGS.addFilter(_OneLine())


def api_url(url: str) -> str:
    """The SDK's URL: the server's, ending in ``/api``."""
    url = url.rstrip("/")
    return url if url.endswith("/api") else f"{url}/api"


class UnleashServerProvider:
    """``flags.provider.Provider`` backed by an Unleash server."""

    def __init__(
        self,
        *,
        url: str,
        client_token: str,
        admin_token: str | None,
        routes: Mapping[str, RouteFlag] | list[str],
        snapshot_file: Path,
        groups: Mapping[str, str] | None = None,
        app_name: str = "strangler-gateway",
        environment: str = "development",
        project: str = "default",
        instance_id: str | None = None,
        refresh_interval: int = 15,
        metrics_interval: int = 60,
        request_timeout: int = 3,
    ) -> None:
        self.url = api_url(url)
        self._client_token = client_token
        self._admin_token = admin_token
        self._project = project
        self.environment = environment
        self.routes = all_legacy(routes)
        self.groups = dict(groups or {})
        self.app_name = app_name
        self.instance_id = instance_id or f"{socket.gethostname()}-{os.getpid()}"
        self.refresh_interval = refresh_interval
        self.metrics_interval = metrics_interval
        self.request_timeout = request_timeout
        self.snapshot_file = Path(snapshot_file)
        self.view = FlagView(FlagState(self.routes, False, 0, self.groups), app_name)
        self.healthy = False
        self.source = "none"
        """Where the current view came from: server, snapshot or none (every route legacy)."""
        self.client: UnleashClient | None = None
        self._cache: SnapshotCache | None = None
        self._listeners: list[Listener] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watch: asyncio.Task[None] | None = None
        self._writer: UnleashFlags | None = None
        self._published = False
        """True once ``view`` evaluates with the registered client (not the placeholder)."""

    # ------------------------------------------------------------ lifecycle
    def subscribe(self, listener: Listener) -> None:
        """Call ``listener(view)`` after every change of view."""
        self._listeners.append(listener)

    async def start(self) -> None:
        """Register with Unleash and fetch; fall back to the snapshot, else all legacy."""
        self._loop = asyncio.get_running_loop()
        self._cache = SnapshotCache(self.snapshot_file)
        self.client = UnleashClient(
            url=self.url, app_name=self.app_name, environment=self.environment,
            instance_id=self.instance_id, refresh_interval=self.refresh_interval,
            metrics_interval=self.metrics_interval, request_timeout=self.request_timeout,
            request_retries=0,  # the next poll is the retry (and no urllib3 retry warnings)
            custom_headers={"Authorization": self._client_token}, cache=self._cache,
            event_callback=self._on_sdk_event,
            multiple_instance_mode=InstanceAllowType.SILENTLY_ALLOW)
        started = time.monotonic()
        # registration and the first fetch are blocking requests: not on the loop
        await asyncio.to_thread(self.client.initialize_client)
        raw = self._cache.get(FEATURES_URL)
        if self._cache.fetched_at is not None and raw:
            self._apply(self._parse(raw), "server")
        elif self._cache.snapshot is not None:
            self._apply(self._parse(self._cache.snapshot), "snapshot")
            log.warning("flags_from_snapshot", url=self.url, path=str(self.snapshot_file))
        else:
            log.error("flags_unreachable_no_snapshot", url=self.url,
                      path=str(self.snapshot_file), every_route="legacy")
            self.source = "none"
        self._set_healthy(self._cache.fetched_at is not None)
        log.info("flags_started", provider="unleash", url=self.url, source=self.source,
                 seconds=round(time.monotonic() - started, 3))
        self._watch = asyncio.create_task(self._watch_health(), name="flags-unleash-health")

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        if self.client is not None:
            # flushes the last metrics and joins the SDK's scheduler thread
            await asyncio.to_thread(self.client.destroy)
        if self._writer is not None:
            await self._writer.admin.close()
        for waiter in self._waiters:
            waiter.cancel()

    # ------------------------------------------------------------ writes
    async def set_route(self, route: str, stage: Stage, percent: int | None, *, actor: str,
                        reason: str = "") -> Change:
        """Write through the Admin API, then wait (bounded) until this view has it."""
        change = await self._admin().set_route(route, stage, percent, actor=actor,
                                               reason=reason)
        after = change.after
        assert isinstance(after, RouteFlag)
        await self._until(lambda v: all((f := v.flag(r)) is not None and f.same_setting(after)
                                        for r in change.moved), f"route {route}")
        return replace(change, version=self.view.state.version)

    async def set_kill(self, on: bool, *, actor: str, reason: str = "") -> Change:
        change = await self._admin().set_kill(on, actor=actor, reason=reason)
        await self._until(lambda v: v.kill_switch is on, "kill switch")
        return replace(change, version=self.view.state.version)

    def _admin(self) -> UnleashFlags:
        if self._writer is None:
            if not self._admin_token:
                raise FlagError("flags.unleash.admin_token: no admin API token; flips are "
                                "made in Unleash itself")
            admin = UnleashAdmin(self.url, self._admin_token, project=self._project,
                                 environment=self.environment)
            self._writer = UnleashFlags(admin, self.routes, self.groups)
        return self._writer

    async def _until(self, done: Callable[[FlagView], bool], what: str) -> None:
        """Wait for the SDK to bring the change home: the server's revision tick (1 s)
        plus one poll; past that, the write stands and other gateways follow anyway."""
        started = time.monotonic()
        deadline = started + 2 * self.refresh_interval + self.request_timeout + 2
        while not done(self.view):
            left = deadline - time.monotonic()
            if left <= 0:
                log.warning("flag_change_not_seen_yet", what=what,
                            waited_s=round(time.monotonic() - started, 3))
                return
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, left)
            except TimeoutError:
                pass
            finally:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
        log.info("flag_change_arrived", what=what,
                 seconds=round(time.monotonic() - started, 3))

    # ------------------------------------------------------------ reads
    def _parse(self, raw: str | Mapping[str, Any]) -> FlagState:
        doc = json.loads(raw) if isinstance(raw, str) else raw
        return parse_definitions(doc, self.routes, self.groups)

    def _on_sdk_event(self, event: BaseEvent) -> None:
        """SDK dispatcher thread: a fetched document, already in the SDK's engine."""
        if event.event_type is not UnleashEventType.FETCHED or self._loop is None:
            return
        assert isinstance(event, UnleashFetchedEvent)
        try:
            state = self._parse(event.raw_features)
        except (ValueError, MalformedFeature) as exc:
            log.error("flags_document_unreadable", reason=str(exc))
            return
        with contextlib.suppress(RuntimeError):  # the loop is closing
            self._loop.call_soon_threadsafe(self._fetched, state)

    def _fetched(self, state: FlagState) -> None:
        self._set_healthy(True)
        self._apply(state, "server")

    def _apply(self, state: FlagState, source: str) -> None:
        old = self.view.state
        self.source = source
        if self._published and (state.routes, state.kill_switch) == (old.routes,
                                                                      old.kill_switch):
            return
        assert self.client is not None
        self._published = True
        self.view = FlagView(state, self.app_name, client=self.client)
        log.info("flags_changed", source=source, version=state.version,
                 kill_switch=state.kill_switch,
                 routes={r: f"{f.stage.value}:{f.percent}" for r, f in state.routes.items()})
        for listener in self._listeners:
            listener(self.view)
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _watch_health(self) -> None:
        """Unhealthy once no fetch has been answered for two polls and a timeout."""
        stale_after = 2 * self.refresh_interval + self.request_timeout
        while True:
            await asyncio.sleep(min(1.0, self.refresh_interval))
            fetched = self._cache.fetched_at if self._cache else None
            self._set_healthy(fetched is not None
                              and time.monotonic() - fetched <= stale_after)

    def _set_healthy(self, healthy: bool) -> None:
        if healthy != self.healthy:
            if healthy:
                log.info("flags_store_up", provider="unleash", url=self.url)
            else:
                log.warning("flags_store_down", provider="unleash", url=self.url)
        self.healthy = healthy
