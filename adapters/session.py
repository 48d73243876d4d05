"""The shared session schema, the monolith's export format, and the cart merge.

Shared document (JSON, what new services read and write in Redis)::

    {"schema": 1,
     "user": {"id": 7, "username": "alice"} | null,
     "cart": {"12": 2, "3": 1},          # product id -> quantity > 0
     "settled": [41, 57],                 # orders whose lines already left the cart
     "legacy": {...}}                      # legacy-only keys, carried opaquely

Legacy export (what ``GET /_internal/sessions/{sid}`` on a monolith node
returns; its own in-memory shape, which we translate but do not change)::

    {"session_id": "...", "revision": 7, "node": "a",
     "data": {"uid": 7, "uname": "alice",
              "basket": [{"sku": 12, "quantity": 2}],
              "settled_orders": [41, 57],
              ...anything else the monolith keeps...}}

Keys of ``data`` that the shared schema does not model (a CSRF token, the
time the session was created, the last page visited) are kept in ``legacy``
so a round trip through the new side never drops them.

Merge rule for carts (documented in README, "The session bridge"): when the
monolith changed a session while the new side also wrote it, legacy's change
is applied to the current document as a *delta against the common base*:

    merged[p] = current[p] + (legacy[p] - base[p]),  dropped when <= 0

so two concurrent "add one" operations give two, an item removed on legacy
is removed unless the new side raised its quantity meanwhile (then only the
raise survives), and neither side's change is ever overwritten wholesale.
The user follows legacy only when legacy changed it (log in / log out on the
monolith); otherwise the current document's user stands.

``settled`` makes a checkout's cart change happen exactly once, whichever
side places or replays the order: an order takes its lines out of the cart
only if its id is not settled yet (a replay after the first answer was lost --
a node that died before its change was pulled, a Redis that did not answer --
finishes the job; a replay after it was done changes nothing). Merged as a
union, the newest ``SETTLED_KEPT`` ids kept.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeGuard

SCHEMA_VERSION = 1
SETTLED_KEPT = 64


class SessionFormatError(ValueError):
    """A session document or legacy export that does not have the agreed shape."""


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "username": self.username}


@dataclass(frozen=True, slots=True)
class SharedSession:
    """One user's session as both sides see it. Treat ``cart`` as read-only."""

    user: User | None = None
    cart: Mapping[int, int] = field(default_factory=dict)
    legacy: Mapping[str, Any] = field(default_factory=dict)
    settled: tuple[int, ...] = ()
    """Orders whose lines have left this cart, oldest first (at most ``SETTLED_KEPT``)."""

    # -- cart operations return new sessions; nothing mutates in place --
    def with_item(self, product_id: int, qty: int) -> SharedSession:
        """Add ``qty`` (may be negative) of a product; a line that reaches 0 goes away."""
        cart = dict(self.cart)
        total = cart.get(product_id, 0) + qty
        if total > 0:
            cart[product_id] = total
        else:
            cart.pop(product_id, None)
        return replace(self, cart=cart)

    def without_item(self, product_id: int) -> SharedSession:
        cart = dict(self.cart)
        cart.pop(product_id, None)
        return replace(self, cart=cart)

    def minus(self, lines: Mapping[int, int]) -> SharedSession:
        """Remove exactly ``lines`` (what an order took), keeping anything added since."""
        cart = dict(self.cart)
        for pid, qty in lines.items():
            left = cart.get(pid, 0) - qty
            if left > 0:
                cart[pid] = left
            else:
                cart.pop(pid, None)
        return replace(self, cart=cart)

    def settle(self, order_id: int, lines: Mapping[int, int]) -> SharedSession:
        """Take an order's lines out of the cart, once per order (see module docstring)."""
        if order_id in self.settled:
            return self
        return replace(self.minus(lines), settled=_settled(self.settled, (order_id,)))

    def logged_out(self) -> SharedSession:
        return SharedSession()

    # -- serialisation --
    def to_json(self) -> str:
        return json.dumps(
            {
                "schema": SCHEMA_VERSION,
                "user": self.user.to_dict() if self.user else None,
                "cart": {str(p): q for p, q in sorted(self.cart.items())},
                "settled": list(self.settled),
                "legacy": dict(self.legacy),
            },
            separators=(",", ":"),
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> SharedSession:
        try:
            obj = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise SessionFormatError(f"shared session is not JSON: {exc}") from exc
        if not isinstance(obj, dict) or obj.get("schema") != SCHEMA_VERSION:
            raise SessionFormatError("shared session: missing or unknown 'schema'")
        user = _user(obj.get("user"), "user")
        cart = _cart({k: v for k, v in _mapping(obj.get("cart", {}), "cart").items()}, "cart")
        legacy = _mapping(obj.get("legacy", {}), "legacy")
        settled = _order_ids(obj.get("settled", []), "settled")
        return cls(user=user, cart=cart, legacy=legacy, settled=settled)


# ---------------------------------------------------------------- legacy side
_LEGACY_MODELLED = frozenset({"uid", "uname", "basket", "settled_orders"})


@dataclass(frozen=True, slots=True)
class LegacyExport:
    session_id: str
    revision: int
    node: str
    session: SharedSession


def from_legacy(export: Mapping[str, Any]) -> LegacyExport:
    """Translate a monolith session export into the shared schema."""
    try:
        sid = export["session_id"]
        rev = export["revision"]
        data = export["data"]
    except (KeyError, TypeError) as exc:
        raise SessionFormatError(f"legacy export: missing {exc}") from exc
    if not isinstance(sid, str) or not _is_int(rev) or not isinstance(data, dict):
        raise SessionFormatError("legacy export: bad session_id, revision or data")
    uid, uname = data.get("uid"), data.get("uname")
    if uid is None:
        user = None
    elif _is_int(uid) and isinstance(uname, str):
        user = User(uid, uname)
    else:
        raise SessionFormatError("legacy export: data.uid / data.uname malformed")
    basket = data.get("basket", [])
    if not isinstance(basket, list):
        raise SessionFormatError("legacy export: data.basket must be a list")
    cart: dict[int, int] = {}
    for i, line in enumerate(basket):
        if not isinstance(line, dict):
            raise SessionFormatError(f"legacy export: data.basket[{i}] must be an object")
        sku, qty = line.get("sku"), line.get("quantity")
        if not _is_int(sku) or not _is_int(qty) or qty < 0:
            raise SessionFormatError(f"legacy export: data.basket[{i}] malformed")
        if qty:
            cart[sku] = cart.get(sku, 0) + qty
    settled = _order_ids(data.get("settled_orders", []), "legacy export: data.settled_orders")
    extra = {k: v for k, v in data.items() if k not in _LEGACY_MODELLED}
    return LegacyExport(sid, rev, str(export.get("node", "")),
                        SharedSession(user, cart, extra, settled))


def to_legacy(session: SharedSession) -> dict[str, Any]:
    """The ``data`` object a monolith node imports for this session."""
    data: dict[str, Any] = dict(session.legacy)
    data["uid"] = session.user.id if session.user else None
    data["uname"] = session.user.username if session.user else None
    data["basket"] = [{"sku": p, "quantity": q} for p, q in sorted(session.cart.items())]
    data["settled_orders"] = list(session.settled)
    return data


# ---------------------------------------------------------------- merge
def merge(base: SharedSession, legacy: SharedSession, current: SharedSession) -> SharedSession:
    """Apply legacy's change (``base`` -> ``legacy``) to ``current``; see module docstring."""
    if legacy.user != base.user and legacy.user is None:
        return SharedSession(legacy=dict(legacy.legacy))  # logged out on legacy: nothing survives
    settled = _settled(current.settled, legacy.settled)
    user = legacy.user if legacy.user != base.user else current.user
    cart: dict[int, int] = {}
    for pid in set(base.cart) | set(legacy.cart) | set(current.cart):
        qty = current.cart.get(pid, 0) + legacy.cart.get(pid, 0) - base.cart.get(pid, 0)
        if qty > 0:
            cart[pid] = qty
    return SharedSession(user=user, cart=cart, legacy=dict(legacy.legacy), settled=settled)


def _settled(ours: tuple[int, ...], theirs: tuple[int, ...] | list[int]) -> tuple[int, ...]:
    """A union of settled order ids, the newest ``SETTLED_KEPT`` kept, in order."""
    merged = sorted(set(ours) | set(theirs))
    return tuple(merged[-SETTLED_KEPT:])


# ---------------------------------------------------------------- validation helpers
def _is_int(value: Any) -> TypeGuard[int]:
    """An int that is not a bool (JSON ``true`` must not become user id 1)."""
    return type(value) is int


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SessionFormatError(f"shared session: {where} must be an object")
    return value


def _user(value: Any, where: str) -> User | None:
    if value is None:
        return None
    if (
        isinstance(value, dict)
        and _is_int(value.get("id"))
        and isinstance(value.get("username"), str)
    ):
        return User(value["id"], value["username"])
    raise SessionFormatError(f"shared session: {where} malformed")


def _order_ids(value: Any, where: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(_is_int(i) and i > 0 for i in value):
        raise SessionFormatError(f"{where} must be a list of order ids")
    return _settled((), value)


def _cart(value: dict[str, Any], where: str) -> dict[int, int]:
    cart: dict[int, int] = {}
    for key, qty in value.items():
        try:
            pid = int(key)
        except ValueError as exc:
            raise SessionFormatError(f"shared session: {where} key {key!r} is not an id") from exc
        if not _is_int(qty) or qty <= 0:
            raise SessionFormatError(f"shared session: {where}[{key}] must be a positive int")
        cart[pid] = qty
    return cart
