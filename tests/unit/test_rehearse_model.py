"""A virtual user's model: unknown outcomes are resolved honestly, real losses are caught;
and the rows of an SQL check against what the users captured."""

from __future__ import annotations

import pytest

from strangler.rehearse.integrity import Capture, compare_rows
from strangler.rehearse.model import Change, Model, ModelError, contains, split
from strangler.rehearse.plan_steps import Captured


def add(path: str, value: object) -> Change:
    return Change("add", split(path), value)


def test_the_four_operations() -> None:
    doc = {"cart": {"3": 1}, "ids": [1, 2, 1]}
    assert add("cart.3", 2).apply(doc)["cart"] == {"3": 3}
    assert add("cart.5", 1).apply(doc)["cart"] == {"3": 1, "5": 1}  # missing counts as 0
    assert add("ids", 9).apply(doc)["ids"] == [1, 2, 1, 9]  # a list: appended
    assert Change("remove", split("cart.3"), None, False).apply(doc)["cart"] == {}
    assert Change("remove", split("ids"), 1).apply(doc)["ids"] == [2]
    assert Change("merge", split("cart"), {"7": 2}).apply(doc)["cart"] == {"3": 1, "7": 2}
    assert Change("set", split("a.b"), "x").apply(doc)["a"] == {"b": "x"}
    assert doc == {"cart": {"3": 1}, "ids": [1, 2, 1]}  # copies: the model is not touched
    with pytest.raises(ModelError):
        add("cart", "text").apply({"cart": "abc"})
    with pytest.raises(ModelError):
        Change("merge", split("ids"), {"a": 1}).apply(doc)


def test_a_confirmed_change_is_applied_and_read_back() -> None:
    model = Model({"cart": {}})
    model.apply(add("cart.3", 2))
    assert model.doc == {"cart": {"3": 2}} and not model.uncertain
    assert model.reconcile(("cart",), {"3": 2})
    assert not model.reconcile(("cart",), {"3": 1})  # an item lost: caught
    assert model.doc == {"cart": {"3": 1}}  # the app's state is adopted: reported once


def test_an_unanswered_change_may_or_may_not_have_happened() -> None:
    for observed in ({"3": 2}, {"3": 2, "5": 1}):
        model = Model({"cart": {"3": 2}})
        model.unknown([add("cart.5", 1)])
        assert model.uncertain == {"cart"}
        assert model.reconcile(("cart",), observed), observed
        assert model.doc["cart"] == observed and not model.uncertain
    model = Model({"cart": {"3": 2}})
    model.unknown([add("cart.5", 1)])
    assert not model.reconcile(("cart",), {"3": 2, "5": 2})  # added twice


def test_unknown_changes_apply_in_order_and_a_confirmed_one_applies_to_each_outcome() -> None:
    model = Model({"cart": {"1": 1}})
    model.unknown([add("cart.2", 1)])
    model.unknown([Change("remove", split("cart.2"), None, False)])
    model.apply(add("cart.1", 1))
    options = model.options("cart")
    assert options is not None
    assert {"1": 2, "2": 1} in options and {"1": 2} in options
    assert {"1": 1} not in options  # the confirmed add happened in every outcome
    assert "or" in model.expected_text(("cart",))


def test_too_many_outcomes_accept_anything_once() -> None:
    model = Model({"n": 0})
    for i in range(8):
        model.unknown([add("n", 2 ** i)])
    assert model.options("n") is None and model.expected_text(("n",)) == "anything"
    assert model.reconcile(("n",), 12345)
    assert model.options("n") == [12345]


def test_a_new_session_resets_its_keys_only() -> None:
    model = Model({"cart": {}, "orders": []})
    model.apply(add("cart.1", 1))
    model.apply(add("orders", {"id": 4}))
    model.unknown([add("cart.2", 1)])
    model.reset(("cart",))
    assert model.doc == {"cart": {}, "orders": [{"id": 4}]} and not model.uncertain


def test_contains() -> None:
    listed = [{"id": 1, "total": "2.00"}, {"id": 2, "total": "3.00"}]
    assert contains(listed, [{"id": 2, "total": "3.00"}])
    assert not contains(listed, [{"id": 2, "total": "9.00"}])
    assert not contains(listed, [{"id": 3, "total": "3.00"}])
    assert contains({"a": 1, "b": 2}, {"a": 1}) and not contains({"a": 1}, {"b": 2})


ORDERS = Captured(captured="placed", label="order")


def test_the_rows_hold_exactly_what_was_captured() -> None:
    placed = [Capture(0, "alice", {"id": 5, "owner": "alice"}), Capture(1, "bob", 6)]
    rows = [{"id": 5, "owner": "alice"}, {"id": 6, "owner": "bob"}]
    ok = compare_rows(ORDERS, placed, rows, [])
    assert (ok.failures, ok.lost, ok.duplicated) == ([], 0, 0)


def test_a_missing_a_doubled_and_a_changed_row_are_caught() -> None:
    placed = [Capture(0, "alice", {"id": 5, "owner": "alice"}),
              Capture(1, "bob", {"id": 6, "owner": "bob"}),
              Capture(2, "carol", {"id": 8, "owner": "carol"})]
    rows = [{"id": 6, "owner": "bob"}, {"id": 7, "owner": "bob"}, {"id": 8, "owner": "dave"}]
    result = compare_rows(ORDERS, placed, rows, [])
    assert (result.lost, result.duplicated) == (1, 1)
    assert any("order #5 " in f and "missing" in f for f in result.failures), result.failures
    assert any("#7" in f and "no user placed it" in f for f in result.failures)
    assert any("#8" in f and "dave" in f for f in result.failures)
    twice = compare_rows(ORDERS, placed[1:2], [{"id": 6}, {"id": 6}], [])
    assert twice.duplicated == 1 and "2 rows" in twice.failures[0]


def test_an_unanswered_request_is_found_by_its_key() -> None:
    rows = [{"id": 9, "owner": "carol"}]
    assert compare_rows(ORDERS, [], rows, []).duplicated == 1  # unknown without its key
    found = compare_rows(ORDERS, [], rows, [9])
    assert (found.failures, found.learned) == ([], 1)
    ignored = Captured(captured="placed", others="ignore")
    assert compare_rows(ignored, [], rows, []).failures == []
