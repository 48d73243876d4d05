"""The gateway's side of the shared session record in Redis.

Wraps ``adapters.store`` (key names, fields, the compare-and-set script) with
this process's Redis client, and tracks whether Redis answers: any Redis
failure marks the store down (the gateway degrades to legacy-only sticky
routing) and a background ping brings it back by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import cast

from redis.exceptions import LockError, RedisError

from adapters.session import SessionFormatError, SharedSession
from adapters.store import FIELDS, WRITE_SCRIPT, session_key, write_args
from gateway import log
from gateway.errors import ServiceUnavailable
from gateway.redis_client import RedisClient

_log = log.get("session_store")


class StoreUnavailable(ServiceUnavailable):
    """Redis did not answer; callers degrade instead of failing the request."""

    code = "session_store_unavailable"


@dataclass(frozen=True, slots=True)
class Record:
    """One session record as read; ``doc``/``base`` are parsed only when asked for."""

    sid: str
    doc_raw: bytes
    v: int
    lv: int
    node: str
    boot: str
    lrev: int
    base_raw: bytes | None
    t: int

    @property
    def doc(self) -> SharedSession:
        return SharedSession.from_json(self.doc_raw)

    @property
    def base(self) -> SharedSession:
        if not self.base_raw:
            return SharedSession()
        try:
            return SharedSession.from_json(self.base_raw)
        except SessionFormatError:
            return SharedSession()

    @property
    def legacy_current(self) -> bool:
        """Legacy holds the current document (no push needed on its node)."""
        return self.lv == self.v


def node_field(node: str, boot: str) -> str:
    return f"{node}@{boot}" if boot else node


class SessionStore:
    def __init__(self, redis: RedisClient, prefix: str, ttl_s: int,
                 on_error: Callable[[], None] = lambda: None) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl_s = ttl_s
        self._write = redis.register_script(WRITE_SCRIPT)
        self.up = True
        self._recovering: asyncio.Task[None] | None = None
        self.on_recover: list[Callable[[], None]] = []
        self._on_error = on_error

    def key(self, sid: str) -> str:
        return session_key(self.prefix, sid)

    async def read(self, sid: str) -> Record | None:
        try:
            raw = await self.redis.hmget(self.key(sid), FIELDS)
        except (RedisError, OSError) as exc:
            raise self._down(exc) from exc
        doc, v, lv, node, lrev, base, t, _pi = cast(list[bytes | None], raw)
        if doc is None or v is None:
            return None
        node_s = (node or b"").decode()
        name, _, boot = node_s.partition("@")
        return Record(sid, doc, int(v), int(lv or 0), name, boot, int(lrev or 0), base,
                      int(t or 0))

    async def write(self, sid: str, expected_v: int, *, bump: bool, set_lv: bool,
                    fields: dict[str, str | int]) -> tuple[bool, int]:
        """Compare-and-set on ``v``; returns (written, v now)."""
        fields = {**fields, "t": int(time.time())}
        args = write_args(expected_v, self.ttl_s, bump=bump, set_lv=set_lv, fields=fields)
        try:
            ok, v = await self._write(keys=[self.key(sid)], args=args)
        except (RedisError, OSError) as exc:
            raise self._down(exc) from exc
        return bool(ok), int(v)

    async def delete(self, sid: str) -> None:
        try:
            await self.redis.delete(self.key(sid))
        except (RedisError, OSError) as exc:
            raise self._down(exc) from exc

    @contextlib.asynccontextmanager
    async def locked(self, sid: str, timeout_s: float = 5.0,
                     wait_s: float = 3.0) -> AsyncIterator[None]:
        """A short cross-process lock for the (rare) push/pull paths of one session.

        Hash-tagged like the record, so it lives in the same cluster slot.
        """
        lock = self.redis.lock(f"{self.key(sid)}:lock", timeout=timeout_s,
                               blocking_timeout=wait_s, sleep=0.005, thread_local=False)
        try:
            acquired = await lock.acquire()
        except LockError as exc:
            raise ServiceUnavailable("session busy") from exc
        except (RedisError, OSError) as exc:
            raise self._down(exc) from exc
        if not acquired:
            raise ServiceUnavailable("session busy: another request is syncing it")
        try:
            yield
        finally:
            try:
                await lock.release()
            except LockError:
                _log.warning("session_lock_expired")
            except (RedisError, OSError) as exc:
                self._down(exc)

    # ---------------------------------------------------------------- health
    def _down(self, exc: BaseException) -> StoreUnavailable:
        self._on_error()
        if self.up:
            self.up = False
            _log.error("session_store_down", reason=f"{type(exc).__name__}: {exc}")
            if self._recovering is None or self._recovering.done():
                self._recovering = asyncio.create_task(self._recover())
        return StoreUnavailable(f"session store unavailable: {type(exc).__name__}")

    async def _recover(self) -> None:
        delay = 0.1
        while True:
            await asyncio.sleep(delay)
            try:
                await self.redis.ping()
            except (RedisError, OSError):
                delay = min(delay * 2, 1.0)
                continue
            self.up = True
            _log.info("session_store_recovered")
            for callback in self.on_recover:
                callback()
            return

    async def stop(self) -> None:
        if self._recovering is not None:
            self._recovering.cancel()
