"""The shop's view of the shared session document: its user, its cart, its settled orders.

The document in Redis (``adapters.document.Document``) knows no shop; config.yaml's
``session:`` profile says where the shop's values sit in it. This module is the only
place in new_services that knows them (tests/unit/test_new_shop_session.py holds it to
the profile):

- ``user``: ``{"id": <int user id>, "name": <username>}``; a token's ``sub`` is that
  id as text (``"7"``);
- ``fields.cart``: a counter, ``{"<product id>": qty > 0}``;
- ``fields.settled``: the orders whose lines already left the cart, a sorted list of
  integer ids. An order takes its lines out of the cart only if its id is not settled
  yet, so a checkout replayed after a lost answer finishes the job once and a later
  replay changes nothing; the newest ``SETTLED_KEPT`` are kept.

Everything else in the document -- other fields, ``extra`` (the monolith's own keys),
the user's further claims -- is written back exactly as it was read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

from adapters.document import Document, Principal, SessionFormatError

CART: Final = "cart"
SETTLED: Final = "settled"
SETTLED_KEPT: Final = 64

_INT_KEY: Final = re.compile(r"0|-?[1-9][0-9]{0,17}")
_USER_ID: Final = re.compile(r"0|[1-9][0-9]{0,17}")


@dataclass(frozen=True, slots=True)
class ShopUser:
    id: int
    username: str


def user_id(sub: str) -> int | None:
    """The shop's user id a token's ``sub`` names; ``None`` if it names none (``"alice"``,
    ``"-1"``, ``"07"``, an Arabic-Indic seven): such a token is not logged in here."""
    return int(sub) if _USER_ID.fullmatch(sub) else None


@dataclass(frozen=True, slots=True)
class ShopSession:
    """One session as the shop sees it. Treat ``cart`` as read-only; every operation
    returns a new session."""

    user: ShopUser | None = None
    cart: Mapping[int, int] = field(default_factory=dict)
    """Product id -> quantity (always > 0)."""
    settled: tuple[int, ...] = ()
    """Orders whose lines have left this cart, oldest first (at most ``SETTLED_KEPT``)."""
    doc: Document = field(default_factory=Document, repr=False)
    """The document this view was read from: what the shop does not model comes from it."""

    # -- cart operations --
    def with_item(self, product_id: int, qty: int) -> ShopSession:
        """Add ``qty`` (may be negative) of a product; a line that reaches 0 goes away."""
        return self.minus({product_id: -qty})

    def without_item(self, product_id: int) -> ShopSession:
        cart = dict(self.cart)
        cart.pop(product_id, None)
        return replace(self, cart=cart)

    def minus(self, lines: Mapping[int, int]) -> ShopSession:
        """Remove exactly ``lines`` (what an order took), keeping anything added since."""
        cart = dict(self.cart)
        for pid, qty in lines.items():
            left = cart.get(pid, 0) - qty
            if left > 0:
                cart[pid] = left
            else:
                cart.pop(pid, None)
        return replace(self, cart=cart)

    def settle(self, order_id: int, lines: Mapping[int, int]) -> ShopSession:
        """Take an order's lines out of the cart, once per order."""
        if order_id in self.settled:
            return self
        settled = tuple(sorted({*self.settled, order_id})[-SETTLED_KEPT:])
        return replace(self.minus(lines), settled=settled)

    def logged_out(self) -> ShopSession:
        """Nothing left: no user, no fields, no ``extra``."""
        return ShopSession()

    # -- the shared document --
    @classmethod
    def from_document(cls, doc: Document) -> ShopSession:
        """The shop's view of ``doc``; ``SessionFormatError`` if it does not fit the shop."""
        return cls(_user(doc.user), _cart(doc.fields.get(CART, {})),
                   _settled(doc.fields.get(SETTLED, [])), doc)

    def to_document(self) -> Document:
        """The document with the shop's values in it and everything else as it was read.
        A cart or settled list that is empty and was absent stays absent."""
        fields = dict(self.doc.fields)
        for name, value in ((CART, {str(p): q for p, q in sorted(self.cart.items())}),
                            (SETTLED, list(self.settled))):
            if value or name in fields:
                fields[name] = value
        return Document(self._principal(), fields, self.doc.extra)

    def _principal(self) -> Principal | None:
        if self.user is None:
            return None
        kept = self.doc.user
        if kept is not None and type(kept.id) is int and kept.id == self.user.id \
                and kept.name == self.user.username:
            return kept  # with its further claims
        return Principal(self.user.id, self.user.username)


def _user(principal: Principal | None) -> ShopUser | None:
    if principal is None:
        return None
    if type(principal.id) is not int or not isinstance(principal.name, str):
        raise SessionFormatError("shop session: user.id must be an integer, user.name a string")
    return ShopUser(principal.id, principal.name)


def _cart(value: Any) -> dict[int, int]:
    if not isinstance(value, dict):
        raise SessionFormatError("shop session: fields.cart must be an object of counts")
    cart: dict[int, int] = {}
    for key, qty in value.items():
        if not _INT_KEY.fullmatch(key):
            raise SessionFormatError(f"shop session: fields.cart key {key!r} is not a product id")
        if type(qty) is not int or qty <= 0:
            raise SessionFormatError(f"shop session: fields.cart[{key}] must be a positive int")
        cart[int(key)] = qty
    return cart


def _settled(value: Any) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(type(i) is int and i > 0 for i in value):
        raise SessionFormatError("shop session: fields.settled must be a list of order ids")
    return tuple(sorted(set(value))[-SETTLED_KEPT:])
