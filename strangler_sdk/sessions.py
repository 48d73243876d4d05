"""The shared session record in Redis, as a new service reads and writes it.

docs/protocol.md section 5: one ``HMGET key doc v`` to read; every write
through ``adapters.store.WRITE_SCRIPT``, a compare-and-set on ``v`` that
refreshes the TTL. A change is a pure function of the document, so on a
conflict it is re-read and re-applied, and no concurrent update is lost.

Exactly once, even when Redis hangs: every change carries an op id. A write
whose answer never came (the command may sit in a hung Redis and run when it
wakes) is sent again with the same id until Redis says what happened --
applied now, or applied before, never twice. Only when Redis stays silent past
``write_budget_s`` is the outcome unknown (``OutcomeUnknown``, a 500 that
invites no blind retry); a 503 (``SessionBusy``, or the caller's translation of
a Redis error before anything was sent) always means nothing was written.

"No session" (a read gives ``None``, an update raises ``NotLoggedIn``): a
missing record, a document this service cannot read (never overwritten), a
record whose user is not the token's ``sub``, or a guest token whose record
names a user now (the user logged in since; the gateway mints a fresh token).
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from redis.exceptions import RedisError

from adapters.claims import Identity
from adapters.document import EMPTY, Document, SessionFormatError
from adapters.handles import session_handle
from adapters.profile import SessionProfile
from adapters.store import WRITE_SCRIPT, session_key, valid_session_id, write_args

from .errors import NotLoggedIn, OutcomeUnknown, SessionBusy
from .fields import readable

log = structlog.get_logger("strangler_sdk.sessions")

Change = Callable[[Document], Document]
"""A pure function of the document read: it may run more than once."""

DEFAULT_TTL_S = 86400
DEFAULT_WRITE_BUDGET_S = 5.0
DEFAULT_CAS_ATTEMPTS = 50


class Redis(Protocol):
    """What the SDK needs of a redis-py asyncio client (``Redis`` or ``RedisCluster``)."""

    async def hmget(self, name: str, keys: list[str]) -> list[Any]: ...

    def register_script(self, script: str) -> Any: ...


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A session's document and the ``v`` it was read at."""

    doc: Document
    v: int


def fingerprint(handle: str) -> str:
    """A short, one-way tag for logs."""
    return hashlib.sha256(handle.encode()).hexdigest()[:12]


def owns(identity: Identity, doc: Document) -> bool:
    """Is ``doc`` the session ``identity`` may use? A user's: the record's user id written
    as text (``7`` is ``"7"``) is the token's ``sub``. A guest's: the record names no user."""
    if identity.user_id is None:
        return doc.user is None
    return doc.user is not None and str(doc.user.id) == identity.user_id


class SharedSessions:
    """Reads and compare-and-set writes of session records under one key prefix."""

    def __init__(self, redis: Any, *, prefix: str, ttl_s: int = DEFAULT_TTL_S,
                 profile: SessionProfile | None = None,
                 write_budget_s: float = DEFAULT_WRITE_BUDGET_S,
                 cas_attempts: int = DEFAULT_CAS_ATTEMPTS, handle_key: bytes = b"") -> None:
        """``ttl_s`` must be the deployment's ``redis.session_ttl_s``. ``profile``: documents
        breaking its declared types are no session here. ``handle_key``: the gateway's
        session key, needed only to create sessions (a login on new)."""
        if ttl_s <= 0 or cas_attempts <= 0 or write_budget_s <= 0:
            raise ValueError("ttl_s, cas_attempts and write_budget_s must be > 0")
        self._redis = redis
        self._prefix = prefix
        self._ttl = ttl_s
        self.profile = profile
        self._budget = write_budget_s
        self._attempts = cas_attempts
        self._handle_key = handle_key
        self._write = redis.register_script(WRITE_SCRIPT)

    async def read(self, handle: str) -> Snapshot | None:
        """The record's document and ``v``; ``None`` if there is none or it is unreadable."""
        if not valid_session_id(handle):
            return None
        doc, v = await self._redis.hmget(session_key(self._prefix, handle), ["doc", "v"])
        if doc is None or v is None:
            return None
        try:
            parsed = Document.from_json(doc)
            version = int(v)
        except (SessionFormatError, ValueError):
            log.error("session_unreadable", session=fingerprint(handle))
            return None
        if self.profile is not None and not readable(self.profile, parsed):
            log.error("session_unreadable", session=fingerprint(handle), reason="profile")
            return None
        return Snapshot(parsed, version)

    async def read_owned(self, identity: Identity) -> Snapshot | None:
        """The token's session, only if it exists and is the token's (``owns``)."""
        snap = await self.read(identity.session_id)
        if snap is None or not owns(identity, snap.doc):
            return None
        return snap

    async def update(self, identity: Identity, change: Change, *, first: Snapshot | None = None,
                     op: str | None = None) -> Document:
        """Apply ``change`` to the token's session, exactly once; ``NotLoggedIn`` if it is
        not (or no longer) theirs. ``first``: a snapshot just read (saves a round trip);
        ``op``: names the change (a fresh id when not given)."""
        op = op or secrets.token_hex(16)
        deadline = time.monotonic() + self._budget
        snap, sent, conflicts = first, False, 0
        while True:
            try:
                if snap is None:
                    snap = await self.read_owned(identity)
                if snap is None:
                    raise NotLoggedIn()
                new = change(snap.doc)
                if new == snap.doc and not sent:
                    return new
                sent = True
                done = await self._apply(identity.session_id, snap.v, new, op)
            except _UNANSWERED as exc:
                if not sent:
                    raise  # nothing was written: the caller may say so (503)
                if time.monotonic() >= deadline:
                    log.error("session_write_outcome_unknown", op=op, error=type(exc).__name__,
                              session=fingerprint(identity.session_id))
                    raise OutcomeUnknown() from exc
                log.warning("session_write_unanswered", op=op, error=type(exc).__name__)
                snap = None
                await asyncio.sleep(0.05)
                continue
            if done == 1:
                return new
            if done == 2:  # an earlier attempt of this op landed; its answer was lost
                log.info("session_write_already_applied", op=op)
                after = await self.read_owned(identity)
                return after.doc if after is not None else new
            conflicts += 1
            if conflicts >= self._attempts and time.monotonic() >= deadline:
                log.warning("session_cas_gave_up", session=fingerprint(identity.session_id))
                raise SessionBusy()
            snap = None
            await _backoff(conflicts)

    async def create(self, doc: Document) -> str:
        """A new record (``v`` 1, ``lv`` 0, no legacy node) under a fresh session id, kept
        under its handle; returns the id (the cookie's value), which is stored nowhere."""
        if not self._handle_key:
            raise RuntimeError("no session key: sessions cannot be created here")
        while True:  # 256-bit random ids do not collide; be correct anyway
            sid = secrets.token_urlsafe(32)
            fields: dict[str, str | int] = {
                "doc": doc.to_json(), "base": EMPTY.to_json(),
                "node": "", "lrev": 0, "lv": 0, "t": int(time.time()),
            }
            args = write_args(0, self._ttl, bump=True, set_lv=False, fields=fields)
            key = session_key(self._prefix, session_handle(self._handle_key, sid))
            result: Any = await self._write(keys=[key], args=args)
            if int(result[0]) == 1:
                return sid

    async def log_out(self, identity: Identity) -> bool:
        """Write the empty document if the token's session is still theirs."""
        try:
            await self.update(identity, lambda _: EMPTY)
        except NotLoggedIn:
            return False
        return True

    async def _apply(self, handle: str, expected_v: int, doc: Document, op: str) -> int:
        """1 written | 0 conflict | 2 applied before."""
        args = write_args(expected_v, self._ttl, bump=True, set_lv=False, op=op,
                          fields={"doc": doc.to_json(), "t": int(time.time())})
        result: Any = await self._write(keys=[session_key(self._prefix, handle)], args=args)
        return int(result[0])


# A Redis that did not answer: the command may still run. (A refused connection is a
# ConnectionError too, but then nothing was sent; retrying the same op is harmless.)
_UNANSWERED = (RedisError, OSError, asyncio.TimeoutError)


async def _backoff(attempt: int) -> None:
    # Spread racing writers apart so that each round lets more than one through;
    # the cap keeps the worst case of a long retry chain well under a second.
    await asyncio.sleep(random.uniform(0, min(0.002 * (attempt + 1), 0.02)))
