"""The shared session record in Redis, as new services read and write it.

Per docs/protocol.md section 5 and ``adapters.store``: one ``HMGET key doc v`` to
read; every write through ``WRITE_SCRIPT``, a compare-and-set on ``v`` that
refreshes the TTL. A change is a function of the current document, so on a
conflict we re-read and re-apply it, and no concurrent update is lost.

Exactly once, even when Redis hangs: every change carries an op id. A write
whose answer never came (a timeout: the command may sit in a hung Redis and
run when it wakes) is sent again with the same id until Redis says what
happened -- applied now, or applied before (``WRITE_SCRIPT`` remembers the
ids), never twice. Only when Redis stays silent past ``write_budget_s`` is the
outcome unknown (``OutcomeUnknown``, a 500 that invites no blind retry); a 503
always means nothing was written (docs/consistency.md).
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from redis.exceptions import RedisError

from adapters.claims import Identity
from adapters.document import EMPTY, Document, SessionFormatError
from adapters.handles import session_handle
from adapters.store import WRITE_SCRIPT, session_key, valid_session_id, write_args

from .errors import ApiError, OutcomeUnknown, SessionBusy, not_logged_in
from .redis_client import RedisClient
from .shop_session import ShopSession

log = structlog.get_logger("new_services.sessions")

Change = Callable[[ShopSession], ShopSession]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A session, as the shop sees its document, and the ``v`` it was read at."""

    session: ShopSession
    v: int


def fingerprint(sid: str) -> str:
    """A short, one-way tag for logs: a session id is a credential and is never logged."""
    return hashlib.sha256(sid.encode()).hexdigest()[:12]


class SessionStore:
    """Reads and compare-and-set writes of session records under one key prefix."""

    def __init__(self, redis: RedisClient, *, prefix: str, ttl_s: int, attempts: int,
                 write_budget_s: float = 5.0, handle_key: bytes = b"") -> None:
        """``handle_key``: the gateway's session key, to name a session created here
        (login) as the gateway will. Every other call names a session by the handle its
        token carries."""
        self._handle_key = handle_key
        self._redis = redis
        self._prefix = prefix
        self._ttl = ttl_s
        self._attempts = attempts
        self._budget = write_budget_s
        self._write = redis.register_script(WRITE_SCRIPT)

    async def read(self, sid: str) -> Snapshot | None:
        """The record's session and ``v``; ``None`` if missing, or if its document is not
        one (not JSON, another schema) or does not fit the shop (a cart that is no counter)."""
        if not valid_session_id(sid):
            return None
        doc, v = await self._redis.hmget(session_key(self._prefix, sid), ["doc", "v"])
        if doc is None or v is None:
            return None
        try:
            return Snapshot(ShopSession.from_document(Document.from_json(doc)), int(v))
        except (SessionFormatError, ValueError):
            log.error("session_unreadable", session=fingerprint(sid))
            return None

    async def read_owned(self, identity: Identity) -> Snapshot | None:
        """The token's session, only if it exists and belongs to the token's user (the
        record's user id written as the token's ``sub`` is: ``7`` is ``"7"``)."""
        snap = await self.read(identity.session_id)
        if snap is None or snap.session.user is None:
            return None
        if str(snap.session.user.id) != identity.user_id:
            return None
        return snap

    async def create(self, doc: Document) -> str:
        """A new record (``v`` 1, ``lv`` 0, no legacy node) under a fresh session id, kept
        under its handle; returns the id (the cookie), which is stored nowhere."""
        if not self._handle_key:
            raise RuntimeError("no session key: set $STRANGLER_SESSION_KEY to log in on new")
        while True:  # a collision of 256-bit random ids does not happen; be correct anyway
            sid = secrets.token_urlsafe(32)
            fields: dict[str, str | int] = {
                "doc": doc.to_json(), "base": EMPTY.to_json(),
                "node": "", "lrev": 0, "lv": 0, "t": int(time.time()),
            }
            if await self._cas(session_handle(self._handle_key, sid), 0, fields):
                return sid

    async def update(
        self, identity: Identity, change: Change, first: Snapshot | None = None,
        op: str | None = None,
    ) -> ShopSession:
        """Apply ``change`` to the token's session, exactly once; 401 if it is not (or no
        longer) theirs. ``op`` names the change (a fresh id when not given)."""
        op = op or secrets.token_hex(8)
        deadline = time.monotonic() + self._budget
        snap, sent, conflicts = first, False, 0
        while True:
            try:
                if snap is None:
                    snap = await self.read_owned(identity)
                if snap is None:
                    raise not_logged_in()
                new = change(snap.session)
                if new == snap.session and not sent:
                    return new
                sent = True
                done, _ = await self._apply(identity.session_id, snap.v, new, op)
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
                return after.session if after is not None else new
            conflicts += 1
            if conflicts >= self._attempts and time.monotonic() >= deadline:
                log.warning("session_cas_gave_up", session=fingerprint(identity.session_id))
                raise SessionBusy()
            log.info("session_cas_conflict", session=fingerprint(identity.session_id),
                     attempt=conflicts)
            snap = None
            await _backoff(conflicts)

    async def log_out(self, identity: Identity) -> bool:
        """Write the empty document if the token's session is still theirs; False otherwise."""
        try:
            await self.update(identity, lambda s: s.logged_out())
        except ApiError:  # not (or no longer) theirs: leave it alone
            return False
        return True

    async def _apply(self, sid: str, expected_v: int, session: ShopSession,
                     op: str) -> tuple[int, int]:
        """(1 written | 0 conflict | 2 applied before, v)."""
        args = write_args(expected_v, self._ttl, bump=True, set_lv=False, op=op,
                          fields={"doc": session.to_document().to_json(),
                                  "t": int(time.time())})
        result: Any = await self._write(keys=[session_key(self._prefix, sid)], args=args)
        return int(result[0]), int(result[1])

    async def _cas(self, sid: str, expected_v: int, fields: dict[str, str | int]) -> bool:
        args = write_args(expected_v, self._ttl, bump=True, set_lv=False, fields=fields)
        result: Any = await self._write(keys=[session_key(self._prefix, sid)], args=args)
        return int(result[0]) == 1


# A Redis that did not answer: the command may still run. (A refused connection is a
# ConnectionError too, but then nothing was sent; retrying the same op is harmless.)
_UNANSWERED = (RedisError, OSError, asyncio.TimeoutError)


async def _backoff(attempt: int) -> None:
    # Spread racing writers apart so that each round lets more than one through;
    # the cap keeps the worst case of a long retry chain well under a second.
    await asyncio.sleep(random.uniform(0, min(0.002 * (attempt + 1), 0.02)))
