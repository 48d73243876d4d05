"""The shop's view of the shared session document, held to config.yaml's session profile."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from adapters.document import EMPTY, Document, Principal, SessionFormatError
from adapters.profile import ProfileSpec, build
from new_services.shop_session import (
    CART,
    SETTLED,
    SETTLED_KEPT,
    ShopSession,
    ShopUser,
    user_id,
)

ROOT = Path(__file__).resolve().parents[2]
SPEC = ProfileSpec.model_validate(yaml.safe_load((ROOT / "config.yaml").read_text())["session"])
SHOP = build(SPEC)
ALICE = ShopUser(7, "alice")

# What the monolith exports for a logged-in shopper (legacy_shop/sessions.py).
EXPORT: dict[str, Any] = {
    "uid": 7, "uname": "alice",
    "basket": [{"sku": 3, "quantity": 1}, {"sku": 12, "quantity": 2}],
    "settled_orders": [41, 57],
    "created_at": "2026-01-02T03:04:05Z", "csrf": "t0k", "last_viewed_product": 3,
}


# ---------------------------------------------------------------- the profile agrees
def test_the_profile_declares_the_shop_fields_this_module_reads() -> None:
    assert SPEC.identity.user_id.type == "integer"
    assert SPEC.identity.name is not None  # the username /api/me shows
    assert set(SPEC.fields) == {CART, SETTLED}
    cart, settled = SPEC.fields[CART], SPEC.fields[SETTLED]
    assert cart.rule == "counter"
    assert cart.entries is not None and cart.entries.key_type == "integer"
    assert (settled.rule, settled.items) == ("set", "integer")


def test_a_monolith_session_reads_as_the_shop_session_it_is() -> None:
    session = ShopSession.from_document(SHOP.from_export(EXPORT))
    assert session.user == ALICE
    assert dict(session.cart) == {3: 1, 12: 2}
    assert session.settled == (41, 57)


def test_what_new_writes_goes_back_to_the_monolith_with_its_own_keys() -> None:
    read = ShopSession.from_document(SHOP.from_export(EXPORT))
    written = read.with_item(5, 2).without_item(12).settle(60, {3: 1}).to_document()
    SHOP.check(written)  # the gateway refuses to import a document that breaks the profile
    assert SHOP.to_import(written) == {
        **EXPORT, "basket": [{"sku": 5, "quantity": 2}], "settled_orders": [41, 57, 60]}


def test_a_session_born_on_new_fits_the_profile() -> None:
    doc = ShopSession(ALICE).with_item(3, 1).to_document()
    SHOP.check(doc)
    assert SHOP.to_import(doc) == {"uid": 7, "uname": "alice",
                                   "basket": [{"sku": 3, "quantity": 1}]}


# ---------------------------------------------------------------- the document
def test_login_document_is_just_the_user() -> None:
    assert ShopSession(ALICE).to_document().to_obj() == {
        "schema": 2, "user": {"id": 7, "name": "alice", "claims": {}}, "fields": {},
        "extra": {}}


def test_unknown_fields_extra_and_claims_survive_a_write() -> None:
    doc = Document(Principal(7, "alice", {"tier": "gold"}),
                   {CART: {"3": 1}, "wishlist": ["kettle"]}, {"csrf": "t0k"})
    written = ShopSession.from_document(doc).with_item(3, 1).to_document()
    assert written == Document(Principal(7, "alice", {"tier": "gold"}),
                               {CART: {"3": 2}, "wishlist": ["kettle"]}, {"csrf": "t0k"})


def test_an_emptied_cart_is_written_empty_and_an_absent_one_stays_absent() -> None:
    doc = Document(Principal(7, "alice"), {CART: {"3": 1}})
    assert ShopSession.from_document(doc).without_item(3).to_document().fields == {CART: {}}
    assert ShopSession.from_document(Document(Principal(7, "alice"))).to_document().fields == {}


def test_logged_out_leaves_nothing() -> None:
    doc = Document(Principal(7, "alice", {"tier": "gold"}), {CART: {"3": 1}, "x": 1},
                   {"csrf": "t0k"})
    assert ShopSession.from_document(doc).logged_out().to_document() == EMPTY


def test_a_guest_document_reads_as_no_user() -> None:
    session = ShopSession.from_document(Document(None, {CART: {"3": 1}}, {"uid": None}))
    assert session.user is None and dict(session.cart) == {3: 1}


def test_a_no_op_change_is_equal_to_what_was_read() -> None:
    """The store skips the write when a change changes nothing."""
    read = ShopSession.from_document(Document(Principal(7, "alice"), {CART: {"3": 1}}))
    assert read.without_item(99) == read
    assert read.with_item(3, 1) != read


@pytest.mark.parametrize("doc", [
    Document(Principal("7", "alice")),                 # the shop's user ids are integers
    Document(Principal(7, None)),                      # a shopper always has a name
    Document(Principal(7, "alice"), {CART: [[3, 1]]}),
    Document(Principal(7, "alice"), {CART: {"x": 1}}),
    Document(Principal(7, "alice"), {CART: {"03": 1}}),
    Document(Principal(7, "alice"), {CART: {"-0": 1}}),
    Document(Principal(7, "alice"), {CART: {"3": 0}}),
    Document(Principal(7, "alice"), {CART: {"3": "2"}}),
    Document(Principal(7, "alice"), {CART: {"3": True}}),
    Document(Principal(7, "alice"), {CART: {"3": 1.0}}),
    Document(Principal(7, "alice"), {SETTLED: {"41": 1}}),
    Document(Principal(7, "alice"), {SETTLED: [41, "57"]}),
    Document(Principal(7, "alice"), {SETTLED: [0]}),
    Document(Principal(7, "alice"), {SETTLED: [True]}),
])
def test_a_document_that_does_not_fit_the_shop_is_refused(doc: Document) -> None:
    with pytest.raises(SessionFormatError):
        ShopSession.from_document(doc)


# ---------------------------------------------------------------- cart operations
def test_with_item_adds_up_and_a_line_at_zero_goes_away() -> None:
    s = ShopSession(ALICE).with_item(3, 2).with_item(3, 1).with_item(5, 1)
    assert dict(s.cart) == {3: 3, 5: 1}
    assert dict(s.with_item(5, -1).cart) == {3: 3}


def test_minus_keeps_what_was_added_since_the_order() -> None:
    s = ShopSession(ALICE, {1: 5, 2: 1})
    assert dict(s.minus({1: 2, 2: 1, 9: 4}).cart) == {1: 3}


def test_an_order_settles_the_cart_once() -> None:
    s = ShopSession(ALICE, {1: 2, 2: 1}).settle(41, {1: 2})
    assert dict(s.cart) == {2: 1} and s.settled == (41,)
    assert s.with_item(1, 2).settle(41, {1: 2}).cart == {1: 2, 2: 1}  # a replay: no change


def test_only_the_newest_settled_orders_are_kept() -> None:
    s = ShopSession(ALICE)
    for order in range(1, SETTLED_KEPT + 11):
        s = s.settle(order, {})
    assert s.settled == tuple(range(11, SETTLED_KEPT + 11))
    many = Document(Principal(7, "alice"), {SETTLED: list(range(1, 100))})
    assert ShopSession.from_document(many).settled == tuple(range(100 - SETTLED_KEPT, 100))


# ---------------------------------------------------------------- the token's sub
@pytest.mark.parametrize("sub,expected", [("7", 7), ("0", 0), ("2147483647", 2147483647)])
def test_a_sub_of_digits_is_a_user_id(sub: str, expected: int) -> None:
    assert user_id(sub) == expected


@pytest.mark.parametrize("sub", ["", "alice", "-1", "+7", "07", "7.0", " 7", "7\n",
                                 "\u0667", "1" * 19, "u-1001"])
def test_anything_else_names_no_user(sub: str) -> None:
    assert user_id(sub) is None
