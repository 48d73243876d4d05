"""The session store as a port: what the bridge and the rest of the gateway ask of it.

``SessionStorePort`` is the seam between the gateway and wherever the shared
session records live, as ``gateway.upstream.forward.Upstream`` is for the backends.
``gateway.session.store.SessionStore`` is the real one (Redis, the scripts of
``adapters.store``); ``testkit.fakes.MemorySessionStore`` keeps records in memory
with the same semantics, and tests/integration/test_session_store_contract.py
holds both to the same observable behaviour. The values the port speaks
(``Record``, ``Lease``) and its failures live here, so a user of the port never
needs the Redis implementation.

What every implementation promises (docs/protocol.md section 5,
docs/consistency.md):

- **One record per session**, named by the session's ``handle`` (never the id
  itself). ``read`` answers None when there is no document: never was, dropped,
  or expired.
- **Versions**: ``v`` is bumped by every write of a document, never goes back,
  and survives a drop (which bumps it too): a lock taken on a dropped session
  reports that ``v`` as ``Lease.ended_v``.
- **The sync lock** is fenced and leased: ``acquire`` waits (backing off) until
  the lock is free or its holder's lease ran out, takes it with a fence larger
  than any before it for that session, and reads the record in the same atomic
  step; past the deadline it raises ``LockTimeout``. ``lock_events`` hears the
  outcome of every acquire (``at_once``, ``after_wait``, ``orphan_taken_back``,
  ``timed_out``) and how long it waited.
- **Writes are fenced and compare-and-set**: ``write`` lands only while the
  lease's fence holds an unexpired lock, else ``LockLost`` and nothing landed.
  With ``expected_v``, a ``v`` that moved answers ``(False, current v)`` and
  nothing is written, not even the release. ``bump`` adds one to ``v``,
  ``set_lv`` sets ``lv`` to the resulting ``v``, ``drop`` deletes the document
  and the sync fields (``lv``, ``node``, ``lrev``, ``base``, ``pi``) and bumps
  ``v``; ``fields`` may set ``doc``, ``t`` and the sync fields (``adapters.store``).
  ``base`` is the document as the node held it, the base of the three-way merge.
- **TTL**: every write (and every new-service write) refreshes the record's
  time to live; taking the lock sets one only on a record that has none, and a
  release leaves it as it is.
- **Trouble is told apart** (``gateway.session.store`` says why): ``StoreBusy``
  -- overloaded, nothing was sent, never an outage; ``StoreUnavailable`` -- no
  answer, the call may or may not have happened; ``BudgetExhausted``
  (``gateway.session.budget``) -- the request's Redis budget cut the call.
  ``up`` is False while the store is known to be down; when it answers again,
  ``up`` turns True and every ``on_recover`` callback runs. ``watch`` keeps
  ``up`` honest when no request asks.
- **Nothing is left locked**: ``release`` never raises; a lock whose acquire,
  write or release got no answer is remembered, taken back by this process's
  next acquire of that session, and released by ``release_orphans`` (after an
  outage); its lease ends it anyway.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast

from adapters.document import EMPTY, Document, SessionFormatError
from gateway.errors import ServiceUnavailable
from gateway.session.sync import Intent


class StoreUnavailable(ServiceUnavailable):
    """Redis did not answer; callers degrade instead of failing the request."""

    code = "session_store_unavailable"


class StoreBusy(ServiceUnavailable):
    """No Redis connection came free in time: this process is overloaded (not an outage)."""

    code = "session_store_busy"


class LockLost(ServiceUnavailable):
    """A fenced write found the sync lock held by someone else, or expired."""

    code = "session_sync_lost"


class LockTimeout(ServiceUnavailable):
    """The sync lock stayed taken past the request's budget."""

    code = "session_sync_timeout"


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
    intent_raw: bytes | None = None

    @property
    def doc(self) -> Document:
        """The shared document; ``SessionFormatError`` if it is not one."""
        return Document.from_json(self.doc_raw)

    @property
    def base(self) -> Document:
        if not self.base_raw:
            return EMPTY
        try:
            return Document.from_json(self.base_raw)
        except SessionFormatError:
            return EMPTY

    @property
    def intent(self) -> Intent | None:
        return Intent.from_json(self.intent_raw)

    @property
    def node_field(self) -> str:
        return node_field(self.node, self.boot)

    @property
    def legacy_current(self) -> bool:
        """Legacy holds the current document (no push needed on its node)."""
        return self.lv == self.v


@dataclass(slots=True)
class Lease:
    sid: str
    fence: int
    owner: str
    released: bool = False
    ended_v: int = 0
    """``v`` of a record with no document when the lock was taken: a session that was
    dropped (``v`` survives a drop), 0 when there was a document or no record at all."""


def node_field(node: str, boot: str) -> str:
    return f"{node}@{boot}" if boot else node


def parse_record(sid: str, raw: list[Any]) -> Record | None:
    """A record from its fields in ``adapters.store.FIELDS`` order (None: no document)."""
    doc, v, lv, node, lrev, base, t, pi = cast(list[bytes | None], raw)
    if doc is None or v is None:
        return None
    name, _, boot = (node or b"").decode().partition("@")
    return Record(sid, doc, int(v), int(lv or 0), name, boot, int(lrev or 0), base,
                  int(t or 0), pi)


class SessionStorePort(Protocol):
    """Where the shared session records live (the promises: this module's docstring)."""

    @property
    def up(self) -> bool:
        """False while the store is known to be down (``StoreUnavailable`` from a probe
        or a refused connection); True again once it answers."""

    @property
    def on_recover(self) -> list[Callable[[], None]]:
        """Called, in order, each time the store answers again after being down."""

    lock_events: Callable[[str, float], None]
    """(outcome, seconds waited) of every acquire: for metrics."""

    def handle(self, sid: str) -> str:
        """The name tokens and the store use for ``sid`` (never the cookie itself)."""

    async def read(self, sid: str) -> Record | None:
        """The session's record; None when it has no document."""

    async def acquire(self, sid: str, deadline: float) -> tuple[Lease, Record | None]:
        """Take the sync lock of ``sid`` (waiting, at most until ``deadline`` on the loop's
        clock, else ``LockTimeout``) and read the record in the same step."""

    async def write(self, lease: Lease, expected_v: int | None, *, bump: bool = False,
                    set_lv: bool = False, release: bool = False, drop: bool = False,
                    fields: dict[str, str | int] | None = None) -> tuple[bool, int]:
        """A fenced write; (written, v now). ``LockLost`` if the fence no longer holds."""

    async def release(self, lease: Lease) -> None:
        """Best effort, never raises: a lock that could not be released is remembered."""

    async def release_orphans(self) -> int:
        """After an outage: release every remembered lock; how many were."""

    async def watch(self, interval_s: float = 0.25) -> None:
        """Run until cancelled, keeping ``up`` true to the store when no request asks."""

    async def stop(self) -> None:
        """End the store's background work (probes, cut calls finishing)."""
