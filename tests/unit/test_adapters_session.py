"""adapters.session: the shared session schema, the legacy export, and the cart merge."""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import pytest

from adapters.session import (
    LegacyExport,
    SessionFormatError,
    SharedSession,
    User,
    from_legacy,
    merge,
    to_legacy,
)

ALICE = User(7, "alice")
BOB = User(8, "bob")


def s(cart: dict[int, int] | None = None, user: User | None = ALICE,
      legacy: dict[str, Any] | None = None) -> SharedSession:
    return SharedSession(user=user, cart=cart or {}, legacy=legacy or {})


# ---------------------------------------------------------------- JSON


def test_json_round_trip() -> None:
    session = s({12: 2, 3: 1}, legacy={"csrf": "tok", "visited": ["/", "/cart"]})
    again = SharedSession.from_json(session.to_json())
    assert again == session
    assert SharedSession.from_json(session.to_json().encode()) == session


def test_json_round_trip_of_an_anonymous_empty_session() -> None:
    assert SharedSession.from_json(SharedSession().to_json()) == SharedSession()


def test_json_shape_is_the_documented_one() -> None:
    doc = json.loads(s({12: 2, 3: 1}).to_json())
    assert doc == {"schema": 1, "user": {"id": 7, "username": "alice"},
                   "cart": {"3": 1, "12": 2}, "settled": [], "legacy": {}}


def test_json_is_deterministic() -> None:
    a = SharedSession(ALICE, {3: 1, 12: 2}, {"b": 1, "a": 2})
    b = SharedSession(ALICE, {12: 2, 3: 1}, {"a": 2, "b": 1})
    assert a.to_json() == b.to_json()


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        b"\xff\xfe",
        "[]",
        "{}",
        '{"schema": 2, "user": null, "cart": {}, "legacy": {}}',
        '{"schema": 1, "user": {"id": "7", "username": "alice"}}',
        '{"schema": 1, "user": {"id": 7}}',
        '{"schema": 1, "user": "alice"}',
        '{"schema": 1, "cart": {"x": 1}}',
        '{"schema": 1, "cart": {"3": 0}}',
        '{"schema": 1, "cart": {"3": -1}}',
        '{"schema": 1, "cart": {"3": "2"}}',
        '{"schema": 1, "cart": {"3": 1.5}}',
        '{"schema": 1, "cart": [[3, 1]]}',
        '{"schema": 1, "legacy": []}',
    ],
)
def test_malformed_shared_documents_are_refused(raw: str | bytes) -> None:
    with pytest.raises(SessionFormatError):
        SharedSession.from_json(raw)


# ---------------------------------------------------------------- legacy export

EXPORT: dict[str, Any] = {
    "session_id": "sid-" + "x" * 40,
    "revision": 4,
    "node": "a",
    "data": {
        "uid": 7,
        "uname": "alice",
        "basket": [{"sku": 12, "quantity": 2}, {"sku": 3, "quantity": 1}],
        "csrf": "tok",
        "created_at": 1_700_000_000,
        "last_page": "/cart",
    },
}


def test_from_legacy_translates_the_export() -> None:
    export = from_legacy(EXPORT)
    assert export == LegacyExport(
        EXPORT["session_id"], 4, "a",
        SharedSession(ALICE, {12: 2, 3: 1},
                      {"csrf": "tok", "created_at": 1_700_000_000, "last_page": "/cart"}),
    )


def test_legacy_round_trip_keeps_legacy_only_keys() -> None:
    session = from_legacy(EXPORT).session
    data = to_legacy(session)
    assert data["csrf"] == "tok"
    assert data["created_at"] == 1_700_000_000
    assert data["last_page"] == "/cart"
    assert data["uid"] == 7 and data["uname"] == "alice"
    assert data["basket"] == [{"sku": 3, "quantity": 1}, {"sku": 12, "quantity": 2}]
    again = from_legacy({**EXPORT, "data": data}).session
    assert again == session
    # and through the shared JSON as well (what Redis holds between the two)
    via_redis = SharedSession.from_json(session.to_json())
    assert to_legacy(via_redis) == data


def test_legacy_only_keys_survive_a_cart_change_on_new() -> None:
    session = from_legacy(EXPORT).session.with_item(5, 1).without_item(12)
    data = to_legacy(session)
    assert data["csrf"] == "tok" and data["last_page"] == "/cart"
    assert data["basket"] == [{"sku": 3, "quantity": 1}, {"sku": 5, "quantity": 1}]


def test_to_legacy_of_a_logged_out_session() -> None:
    assert to_legacy(SharedSession()) == {"uid": None, "uname": None, "basket": [],
                                          "settled_orders": []}


def test_anonymous_export_and_basket_lines() -> None:
    export = from_legacy({"session_id": "s", "revision": 1, "data": {
        "basket": [{"sku": 3, "quantity": 1}, {"sku": 3, "quantity": 2},
                   {"sku": 4, "quantity": 0}]}})
    assert export.session.user is None
    assert export.session.cart == {3: 3}  # repeated lines add up, empty lines vanish
    assert export.node == ""


def _broken(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    export = copy.deepcopy(EXPORT)
    target = export
    for part in path[:-1]:
        target = target[part]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return export


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("session_id",), _DELETE),
        (("revision",), _DELETE),
        (("data",), _DELETE),
        (("session_id",), 12),
        (("revision",), "4"),
        (("data",), ["uid", 7]),
        (("data", "uid"), "7"),
        (("data", "uname"), _DELETE),
        (("data", "uname"), 7),
        (("data", "basket"), {"12": 2}),
        (("data", "basket"), [[12, 2]]),
        (("data", "basket"), [{"sku": "12", "quantity": 2}]),
        (("data", "basket"), [{"sku": 12, "quantity": -1}]),
        (("data", "basket"), [{"sku": 12, "quantity": 1.5}]),
        (("data", "basket"), [{"sku": 12}]),
    ],
)
def test_from_legacy_rejects_malformed_exports(path: tuple[str, ...], value: Any) -> None:
    with pytest.raises(SessionFormatError):
        from_legacy(_broken(path, value))


@pytest.mark.parametrize("export", [None, [], "session", 42])
def test_from_legacy_rejects_non_objects(export: Any) -> None:
    with pytest.raises(SessionFormatError):
        from_legacy(export)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("revision",), True),
        (("data", "uid"), True),
        (("data", "basket"), [{"sku": True, "quantity": 2}]),
        (("data", "basket"), [{"sku": 12, "quantity": True}]),
    ],
)
def test_from_legacy_rejects_booleans_where_ints_are_expected(path: tuple[str, ...],
                                                               value: Any) -> None:
    with pytest.raises(SessionFormatError):
        from_legacy(_broken(path, value))


# ---------------------------------------------------------------- cart operations


def test_cart_operations_never_mutate_the_original() -> None:
    original = s({1: 2})
    original.with_item(1, 3)
    original.with_item(2, 1)
    original.without_item(1)
    original.minus({1: 2})
    assert original.cart == {1: 2}


def test_with_item_adds_and_removes_at_zero() -> None:
    session = s().with_item(1, 2).with_item(1, 3).with_item(2, 1)
    assert session.cart == {1: 5, 2: 1}
    assert session.with_item(1, -5).cart == {2: 1}
    assert session.with_item(1, -9).cart == {2: 1}


def test_logged_out_empties_everything() -> None:
    assert s({1: 1}, legacy={"csrf": "x"}).logged_out() == SharedSession()


def test_minus_keeps_items_added_concurrently() -> None:
    # the order took 2 x #1 and 1 x #2; meanwhile the user added 1 x #1 and 1 x #3
    cart_now = s({1: 3, 2: 1, 3: 1})
    after = cart_now.minus({1: 2, 2: 1})
    assert after.cart == {1: 1, 3: 1}
    assert after.user == ALICE


def test_minus_never_goes_negative() -> None:
    # the line was removed concurrently: nothing left to take
    assert s({1: 1}).minus({1: 5, 9: 1}).cart == {}


# ---------------------------------------------------------------- merge


def test_merge_sums_concurrent_adds() -> None:
    base = s({})
    legacy = s({1: 1})  # "add one" on legacy
    current = s({1: 1})  # "add one" on new
    assert merge(base, legacy, current).cart == {1: 2}
    assert merge(s({1: 1}), s({1: 3}), s({1: 2})).cart == {1: 4}


def test_merge_keeps_disjoint_edits_of_both_sides() -> None:
    base = s({1: 1, 2: 1})
    legacy = s({1: 1, 2: 1, 3: 2})  # legacy added #3
    current = s({1: 1, 4: 1})  # new removed #2, added #4
    assert merge(base, legacy, current).cart == {1: 1, 3: 2, 4: 1}


def test_merge_removal_on_legacy_against_a_raise_on_new_keeps_only_the_raise() -> None:
    base = s({1: 2})
    legacy = s({})  # removed the line
    current = s({1: 5})  # raised it by 3
    assert merge(base, legacy, current).cart == {1: 3}


def test_merge_removal_on_legacy_of_an_untouched_line_removes_it() -> None:
    assert merge(s({1: 2, 2: 1}), s({2: 1}), s({1: 2, 2: 1, 3: 1})).cart == {2: 1, 3: 1}


def test_merge_removal_on_both_sides_stays_removed() -> None:
    assert merge(s({1: 2}), s({}), s({})).cart == {}


def test_merge_logout_on_legacy_empties_the_session() -> None:
    base = s({1: 1}, legacy={"csrf": "old"})
    legacy = SharedSession(None, {}, {"csrf": "fresh"})
    current = s({1: 1, 2: 3})  # new added to the cart meanwhile
    merged = merge(base, legacy, current)
    assert merged.user is None
    assert merged.cart == {}
    assert merged.legacy == {"csrf": "fresh"}


def test_merge_user_follows_legacy_only_when_legacy_changed_it() -> None:
    # legacy changed the cart, not the user; new logged out meanwhile: stays logged out
    assert merge(s({}), s({1: 1}), s({}, user=None)).user is None
    # legacy changed only the cart; the user stands as new has it
    assert merge(s({}), s({1: 1}), s({}, user=ALICE)).user == ALICE
    # legacy logged someone in (base anonymous): the user follows legacy
    assert merge(s({}, user=None), s({}, user=BOB), s({}, user=None)).user == BOB
    # legacy switched user
    assert merge(s({}, user=ALICE), s({}, user=BOB), s({}, user=ALICE)).user == BOB


def test_merge_takes_legacy_only_keys_from_legacy() -> None:
    merged = merge(s({}, legacy={"csrf": "a"}), s({}, legacy={"csrf": "b", "page": "/"}),
                   s({}, legacy={"csrf": "a"}))
    assert merged.legacy == {"csrf": "b", "page": "/"}


def test_merge_without_a_legacy_change_is_the_current_document() -> None:
    base = s({1: 1}, legacy={"csrf": "t"})
    current = s({1: 4, 2: 1}, legacy={"csrf": "t"})
    assert merge(base, base, current) == current


def test_merge_without_a_change_on_new_is_legacy() -> None:
    base = s({1: 1}, legacy={"csrf": "t"})
    legacy = s({2: 2}, legacy={"csrf": "t"})
    assert merge(base, legacy, base) == legacy


def test_merge_property_delta_rule_over_random_carts() -> None:
    rng = random.Random(42)

    def cart() -> dict[int, int]:
        return {p: rng.randint(1, 5) for p in rng.sample(range(1, 8), rng.randint(0, 5))}

    for _ in range(2000):
        base, legacy, current = cart(), cart(), cart()
        merged = merge(s(base), s(legacy), s(current)).cart
        for pid in set(base) | set(legacy) | set(current):
            want = current.get(pid, 0) + legacy.get(pid, 0) - base.get(pid, 0)
            assert merged.get(pid, 0) == max(want, 0)
        assert all(q > 0 for q in merged.values())


# ---------------------------------------------------------------- settled orders


def test_an_order_leaves_the_cart_once_whichever_side_settles_it() -> None:
    cart = s({3: 2, 5: 1})
    once = cart.settle(41, {3: 2})
    assert once.cart == {5: 1} and once.settled == (41,)
    assert once.settle(41, {3: 2}) is once  # a replay after it was done changes nothing
    again = once.with_item(3, 1).settle(41, {3: 2})
    assert again.cart == {3: 1, 5: 1}, "an item added after the order stays"


def test_settled_orders_survive_the_legacy_round_trip_and_merge_as_a_union() -> None:
    session = s({5: 1}).settle(7, {}).settle(9, {})
    data = to_legacy(session)
    assert data["settled_orders"] == [7, 9]
    assert from_legacy({**EXPORT, "data": data}).session.settled == (7, 9)
    base = s({5: 1})
    legacy = base.settle(11, {5: 1})
    current = base.settle(12, {})
    merged = merge(base, legacy, current)
    assert merged.settled == (11, 12) and merged.cart == {}


def test_settled_keeps_the_newest_ids() -> None:
    session = s({})
    for order in range(1, 100):
        session = session.settle(order, {})
    assert len(session.settled) == 64 and session.settled[-1] == 99 and 1 not in session.settled


@pytest.mark.parametrize("bad", [["1"], [0], [True], "7", [1.5]])
def test_settled_must_be_order_ids(bad: object) -> None:
    with pytest.raises(SessionFormatError):
        SharedSession.from_json(json.dumps({"schema": 1, "user": None, "cart": {},
                                            "settled": bad}))
