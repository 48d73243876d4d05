"""Session records in memory, and the Redis scripts of ``adapters.store`` on them.

One hash of text fields per session, with an expiry, as Redis keeps it (the
fields are ``adapters.store``'s); each method here is one script, run whole --
nothing else happens between its steps, as nothing runs beside a Lua script:

    take          SYNC_ACQUIRE   the fenced lock with a lease, and the record
    sync_write    SYNC_WRITE     a fenced write, compare-and-set on ``v``
    unlock        SYNC_RELEASE   by fence or by owner token
    cas           WRITE_SCRIPT   a new service's compare-and-set, at most once per op id

Time is ``clock`` (seconds, as ``time.time``): Redis's own clock for leases,
fences and expiry. Lease and TTL come with each call, as the scripts' arguments do:
stores sharing one ``Records`` are processes sharing one Redis. ``MemorySessionStore``
runs these as its calls.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from adapters.store import FIELDS, OPS_KEPT

Raw = list[bytes | None]
"""A record's fields in ``adapters.store.FIELDS`` order, as ``HMGET`` answers them."""
_DROPPED = ("doc", "lv", "node", "lrev", "base", "pi", "ops")


class ManualClock:
    """Wall-clock seconds (as ``time.time``) that move only when a test says so."""

    def __init__(self, start: float = 1_750_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(slots=True)
class _Entry:
    fields: dict[str, bytes]
    expires_at: float | None = None


class Records:
    """Every session's record, as one Redis holds them."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._entries: dict[str, _Entry] = {}

    def read(self, sid: str) -> Raw:
        entry = self._entry(sid)
        return [None if entry is None else entry.fields.get(n) for n in FIELDS]

    def take(self, sid: str, owner: str, orphan: str, lease_ms: int, ttl_s: int
             ) -> tuple[int, int, Raw]:
        """(fence, 0, the record) taken; (0, ms left of the holder's lease, []) busy."""
        now = self._now_ms()
        h = self._fields(sid)
        lk, le = _num(h.get("lk")), _num(h.get("le"))
        if lk != 0 and le > now and (not orphan or h.get("lo") != orphan.encode()):
            return 0, le - now, []
        fence = max(_num(h.get("f")) + 1, now)
        entry = self._hset(sid, {"f": fence, "lk": fence, "le": now + lease_ms,
                                 "lo": owner})
        if entry.expires_at is None:
            self._expire(entry, ttl_s)
        return fence, 0, self.read(sid)

    def sync_write(self, sid: str, fence: int, expected_v: int | None, ttl_s: int, *,
                   bump: bool, set_lv: bool, release: bool, drop: bool,
                   fields: Mapping[str, str | int]) -> tuple[int, int]:
        """(1, v) written; (0, current v) ``v`` moved; (-1, 0) the fence lost the lock."""
        now = self._now_ms()
        h = self._fields(sid)
        if _num(h.get("lk")) != fence or _num(h.get("le")) <= now:
            return -1, 0
        cur = _num(h.get("v"))
        if expected_v is not None and cur != expected_v:
            return 0, cur
        changes: dict[str, str | int]
        if drop:
            for name in _DROPPED:
                h.pop(name, None)
            v = cur + 1
            changes = {"v": v, "t": now // 1000}
        else:
            v = cur + 1 if bump else cur
            changes = {"v": v, **({"lv": v} if set_lv else {}), **fields}
        if release:
            changes["lk"] = 0
        self._expire(self._hset(sid, changes), ttl_s)
        return 1, v

    def unlock(self, sid: str, fence: int, owner: str) -> int:
        """1 released; 0 when the lock is held by neither that fence nor that owner token
        (``fence`` 0: by owner token only)."""
        h = self._fields(sid)
        lk = _num(h.get("lk"))
        if lk != 0 and (lk == fence or (owner != "" and h.get("lo") == owner.encode())):
            h["lk"] = b"0"
            return 1
        return 0

    def cas(self, sid: str, expected_v: int, ttl_s: int, *, bump: bool, set_lv: bool,
            op: str, fields: Mapping[str, str | int]) -> tuple[int, int]:
        """(1, v) written; (0, current v) ``v`` moved; (2, current v) ``op`` applied before."""
        h = self._fields(sid)
        cur = _num(h.get("v"))
        ops = (h.get("ops") or b"").decode().split()
        if op and op in ops:
            return 2, cur
        if cur != expected_v:
            return 0, cur
        v = cur + 1 if bump else cur
        changes: dict[str, str | int] = {"v": v, **({"lv": v} if set_lv else {})}
        if op:
            changes["ops"] = " ".join([*ops, op][-OPS_KEPT:])
        self._expire(self._hset(sid, {**changes, **fields}), ttl_s)
        return 1, v

    # ------------------------------------------------------------ for tests to look and arrange
    def put(self, sid: str, fields: Mapping[str, str | int], ttl_s: int) -> None:
        self._expire(self._hset(sid, fields), ttl_s)

    def all_fields(self, sid: str) -> dict[str, str]:
        return {k: v.decode() for k, v in self._fields(sid).items()}

    def ttl(self, sid: str) -> float | None:
        entry = self._entry(sid)
        if entry is None or entry.expires_at is None:
            return None
        return entry.expires_at - self.clock()

    # ------------------------------------------------------------ the hashes
    def _entry(self, sid: str) -> _Entry | None:
        entry = self._entries.get(sid)
        if entry is not None and entry.expires_at is not None \
                and self.clock() >= entry.expires_at:
            del self._entries[sid]  # as Redis expires a key: when it is next touched
            return None
        return entry

    def _fields(self, sid: str) -> dict[str, bytes]:
        """The live fields of ``sid`` (a new, unsaved dict when there is no record)."""
        entry = self._entry(sid)
        return entry.fields if entry is not None else {}

    def _hset(self, sid: str, fields: Mapping[str, str | int]) -> _Entry:
        entry = self._entry(sid)
        if entry is None:
            entry = self._entries[sid] = _Entry({})
        entry.fields.update({k: str(v).encode() for k, v in fields.items()})
        return entry

    def _expire(self, entry: _Entry, ttl_s: int) -> None:
        entry.expires_at = self.clock() + ttl_s

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)


def _num(raw: bytes | None) -> int:
    return int(raw) if raw else 0
