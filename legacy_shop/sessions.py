"""The node's session store: a dict in process memory, as the monolith always had.

A session's ``data`` is the shop's own shape; the session-export hook hands it
out as it is and takes imports of it (``check_data``)::

    data = {"uid": 7 | None, "uname": "alice" | None,
            "basket": [{"sku": 12, "quantity": 2}, ...],   # sorted by sku
            "settled_orders": [41, 57],
            "created_at": "...", "csrf": "...", "last_viewed_product": 3}

``settled_orders`` lists the orders whose lines already left the basket (a
replayed checkout takes them out only once). ``created_at``, ``csrf``,
``last_viewed_product`` and whatever else a session holds are the monolith's
own; an import keeps them as given. Every change bumps ``revision`` (1 when
created), which is how the gateway notices that a session moved. Sessions
expire after ``idle_s`` without a request.

Fences (docs/protocol.md section 4): the gateway's export and import calls
carry the fence of the sync lock they hold. The store remembers the highest
fence seen per session id -- also for ids it holds no session for -- and
refuses an import with a lower one, so an import from a gateway whose lock
ran out can never land after a newer holder looked at the session. Each
session also remembers which fence imported it last, and at which revision,
so the gateway can tell its own import from a change the monolith made.
"""

from __future__ import annotations

import copy
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

SETTLED_KEPT = 64


def new_session_id() -> str:
    return secrets.token_urlsafe(32)


def new_csrf_token() -> str:
    return secrets.token_urlsafe(16)


class BadSessionData(ValueError):
    """Imported session data that is not the shop's session shape."""


def check_data(data: Any) -> dict[str, Any]:
    """Imported session data, checked and in the shop's own form; ``BadSessionData`` if it
    is not a session of this shop.

    Of the keys the shop reads, each may be absent (a session born elsewhere has no
    basket yet) and, when present, must be what the shop writes: ``uid`` an int or
    null, ``uname`` a string or null (a string when ``uid`` is set), ``basket`` a list
    of ``{"sku": int, "quantity": int >= 0}`` (lines of one sku add up, empty lines
    go, sorted by sku), ``settled_orders`` a list of positive order ids (deduplicated,
    sorted, the newest ``SETTLED_KEPT`` kept). Every other key is kept as given.
    JSON's ``true`` is no int here.
    """
    if not isinstance(data, dict):
        raise BadSessionData("data must be an object")
    checked = dict(data)
    uid, uname = data.get("uid"), data.get("uname")
    if uid is not None and _int(uid) is None:
        raise BadSessionData("data.uid must be an int or null")
    if uname is not None and not isinstance(uname, str):
        raise BadSessionData("data.uname must be a string or null")
    if uid is not None and uname is None:
        raise BadSessionData("data.uname must be a string when data.uid is set")
    if "basket" in data:
        checked["basket"] = _basket(data["basket"])
    if "settled_orders" in data:
        orders = data["settled_orders"]
        if not isinstance(orders, list) or not all(_int(i) is not None and i > 0 for i in orders):
            raise BadSessionData("data.settled_orders must be a list of order ids")
        checked["settled_orders"] = sorted(set(orders))[-SETTLED_KEPT:]
    return checked


def _basket(value: Any) -> list[dict[str, int]]:
    if not isinstance(value, list):
        raise BadSessionData("data.basket must be a list")
    cart: dict[int, int] = {}
    for i, line in enumerate(value):
        if not isinstance(line, dict) or set(line) != {"sku", "quantity"}:
            raise BadSessionData(f"data.basket[{i}] must be {{\"sku\", \"quantity\"}}")
        sku, qty = _int(line["sku"]), _int(line["quantity"])
        if sku is None or qty is None or qty < 0:
            raise BadSessionData(f"data.basket[{i}]: sku and quantity must be ints, "
                                 "quantity >= 0")
        cart[sku] = cart.get(sku, 0) + qty
    return [{"sku": p, "quantity": q} for p, q in sorted(cart.items()) if q > 0]


def _int(value: Any) -> int | None:
    return value if type(value) is int else None


def empty_data(*, uid: int | None = None, uname: str | None = None) -> dict[str, Any]:
    """A fresh session's data, including the monolith's private keys."""
    return {
        "uid": uid,
        "uname": uname,
        "basket": [],
        "settled_orders": [],
        "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "csrf": new_csrf_token(),
    }


@dataclass(slots=True, eq=False)
class Session:
    """One session. Mutate only through the methods: they keep the revision honest."""

    sid: str
    revision: int
    data: dict[str, Any]
    last_seen: float
    imported: tuple[int, int] | None = None
    """(fence, revision) of the last import that carried a fence."""

    @property
    def uid(self) -> int | None:
        uid = self.data.get("uid")
        return uid if isinstance(uid, int) else None

    @property
    def uname(self) -> str:
        return str(self.data.get("uname") or "")

    @property
    def csrf(self) -> str:
        return str(self.data.get("csrf") or "")

    def basket(self) -> dict[int, int]:
        """Product id -> quantity (always > 0)."""
        return {line["sku"]: line["quantity"] for line in self.data.get("basket", ())}

    def set_basket(self, cart: Mapping[int, int]) -> bool:
        """Replace the basket; returns whether anything changed (and bumped the revision)."""
        lines = [{"sku": p, "quantity": q} for p, q in sorted(cart.items()) if q > 0]
        return self.set("basket", lines)

    def add_item(self, product_id: int, qty: int) -> bool:
        cart = self.basket()
        cart[product_id] = cart.get(product_id, 0) + qty
        return self.set_basket(cart)

    def remove_item(self, product_id: int) -> bool:
        cart = self.basket()
        cart.pop(product_id, None)
        return self.set_basket(cart)

    def subtract(self, ordered: Mapping[int, int]) -> bool:
        """Take away exactly what an order took; whatever was added meanwhile stays."""
        cart = self.basket()
        for pid, qty in ordered.items():
            cart[pid] = cart.get(pid, 0) - qty
        return self.set_basket(cart)

    def settle(self, order_id: int, ordered: Mapping[int, int]) -> bool:
        """Take an order's lines out of the basket once per order; returns whether it did."""
        settled = [i for i in self.data.get("settled_orders", ()) if isinstance(i, int)]
        if order_id in settled:
            return False
        cart = self.basket()
        for pid, qty in ordered.items():
            cart[pid] = cart.get(pid, 0) - qty
        lines = [{"sku": p, "quantity": q} for p, q in sorted(cart.items()) if q > 0]
        self.data["basket"] = lines
        self.data["settled_orders"] = sorted({*settled, order_id})[-SETTLED_KEPT:]
        self.revision += 1
        return True

    def set(self, key: str, value: Any) -> bool:
        if key in self.data and self.data[key] == value:
            return False
        self.data[key] = value
        self.revision += 1
        return True

    def export(self) -> dict[str, Any]:
        """A deep copy of ``data``: callers may serialise it after the session moved on."""
        return copy.deepcopy(self.data)


class SessionStore:
    """Sessions by id, with idle expiry. Not thread-safe; one event loop owns it."""

    def __init__(self, idle_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._idle_s = idle_s
        self._clock = clock
        self._sessions: dict[str, Session] = {}
        self._fences: dict[str, tuple[int, float]] = {}
        """sid -> (highest fence seen, when): kept for ids without a session too."""

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, sid: str | None) -> Session | None:
        """The live session ``sid`` (and mark it used), or ``None``."""
        session = self.peek(sid)
        if session is not None:
            session.last_seen = self._clock()
        return session

    def peek(self, sid: str | None) -> Session | None:
        """Like ``get`` without counting as use: for exports and response headers."""
        if not sid:
            return None
        session = self._sessions.get(sid)
        if session is not None and self._clock() - session.last_seen > self._idle_s:
            del self._sessions[sid]
            return None
        return session

    def revision(self, sid: str | None) -> int:
        """The revision of ``sid``, 0 when it does not exist (any more)."""
        session = self.peek(sid)
        return session.revision if session else 0

    def login(self, old_sid: str | None, uid: int, uname: str) -> Session:
        """A fresh session for a user; the old one is destroyed (session fixation defence)."""
        self.destroy(old_sid)
        sid = new_session_id()
        while sid in self._sessions:  # pragma: no cover - 256 random bits
            sid = new_session_id()
        session = Session(sid, 1, empty_data(uid=uid, uname=uname), self._clock())
        self._sessions[sid] = session
        return session

    def destroy(self, sid: str | None) -> bool:
        return bool(sid) and self._sessions.pop(sid or "", None) is not None

    def fence(self, sid: str, fence: int) -> bool:
        """Note a gateway's fence for ``sid``; False if a higher one was seen already."""
        seen = self._fences.get(sid)
        if seen is not None and fence < seen[0]:
            return False
        self._fences[sid] = (fence, self._clock())
        return True

    def put(
        self, sid: str, data: dict[str, Any], expected_revision: int | None,
        fence: int | None = None,
    ) -> tuple[bool, int]:
        """Import ``data`` under ``sid``: compare-and-set when ``expected_revision`` is set.

        Returns ``(True, new_revision)``, or ``(False, current_revision)`` when
        the node's revision is not the expected one (0 for an unknown session)
        or ``fence`` is lower than one already seen (``fenced`` tells which).
        Private keys the import lacks (a session born on the new side has no
        CSRF token) are kept from the node's copy or made fresh.
        """
        current = self.peek(sid)
        revision = current.revision if current else 0
        if fence is not None and not self.fence(sid, fence):
            return False, revision
        if expected_revision is not None and expected_revision != revision:
            return False, revision
        own, fresh = (current.data if current else {}), empty_data()
        merged = dict(data)
        for key in ("created_at", "csrf"):
            merged.setdefault(key, own.get(key, fresh[key]))
        imported = (fence, revision + 1) if fence is not None else None
        self._sessions[sid] = Session(sid, revision + 1, merged, self._clock(), imported)
        return True, revision + 1

    def fenced(self, sid: str, fence: int) -> bool:
        """Whether an import with ``fence`` would be refused for a newer one."""
        seen = self._fences.get(sid)
        return seen is not None and fence < seen[0]

    def sweep(self) -> int:
        """Drop idle sessions; returns how many went."""
        now = self._clock()
        idle = [s.sid for s in self._sessions.values() if now - s.last_seen > self._idle_s]
        for sid in idle:
            del self._sessions[sid]
        old = [sid for sid, (_, at) in self._fences.items()
               if now - at > self._idle_s and sid not in self._sessions]
        for sid in old:
            del self._fences[sid]
        return len(idle)
