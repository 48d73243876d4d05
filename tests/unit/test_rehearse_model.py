"""A virtual user's model: unknown outcomes are resolved honestly, real losses are caught;
and the orders-table comparison."""

from __future__ import annotations

from strangler.rehearse.integrity import Placed, TableOrder, TableView, compare_table, money
from strangler.rehearse.model import CartModel, CartOp, PlacedOrder, cart_lines, orders_problems


def test_a_confirmed_change_is_applied() -> None:
    cart = CartModel()
    op = CartOp("add", 3, 2)
    cart.unknown(op)
    cart.confirm(op)
    assert (cart.lines, cart.certain) == ({3: 2}, True)
    assert cart.reconcile({3: 2})


def test_an_unanswered_add_may_or_may_not_have_happened() -> None:
    for observed in ({3: 2}, {3: 2, 5: 1}):
        cart = CartModel({3: 2})
        cart.unknown(CartOp("add", 5, 1))
        assert not cart.certain
        assert cart.reconcile(observed), observed
        assert (cart.lines, cart.certain) == (observed, True)


def test_anything_else_is_a_loss_or_an_invention() -> None:
    cart = CartModel({3: 2})
    cart.unknown(CartOp("add", 5, 1))
    assert not cart.reconcile({3: 2, 5: 2})  # added twice
    cart = CartModel({3: 2, 7: 1})
    assert not cart.reconcile({3: 2})  # an item lost
    assert cart.lines == {3: 2}  # the shop's state is adopted: one loss is reported once


def test_pending_operations_apply_in_order() -> None:
    cart = CartModel({1: 1})
    for op in (CartOp("add", 2, 1), CartOp("remove", 2), CartOp("add", 2, 3)):
        cart.unknown(op)
    outcomes = cart.outcomes()
    assert {2: 3, 1: 1} in outcomes and {1: 1} in outcomes and {1: 1, 2: 4} in outcomes
    assert {1: 1, 2: 2} not in outcomes  # remove then nothing cannot leave 2


def test_an_unanswered_checkout_takes_the_cart_or_nothing() -> None:
    cart = CartModel({3: 2, 4: 1})
    op = CartOp("checkout", took=((3, 2), (4, 1)))
    cart.unknown(op)
    assert cart.outcomes() == [{3: 2, 4: 1}, {}]
    cart.confirm(op, CartOp("checkout", took=((3, 2),)))  # the order took less
    assert cart.lines == {4: 1}


def test_cart_and_orders_from_the_api() -> None:
    body = {"items": [{"product_id": 3, "qty": 2}, {"product_id": 9, "qty": 1}]}
    assert cart_lines(body) == {3: 2, 9: 1}
    assert cart_lines({"error": "x"}) is None
    mine = [PlacedOrder(7, "k1", {3: 2}, "25.00", "s"), PlacedOrder(8, "k2", {1: 1}, "5.00", "s")]
    listed = {"orders": [{"id": 7, "total": "25.00", "items": [{"product_id": 3, "qty": 2}]},
                         {"id": 99, "total": "1.00", "items": []}]}
    assert orders_problems(mine, listed) == ["order #8 (key k2) missing from /api/orders"]
    listed["orders"][0]["total"] = "26.00"
    assert "expected {3: 2} total 25.00" in orders_problems(mine[:1], listed)[0]


def _view(*orders: TableOrder, keys: dict[str, int] | None = None) -> TableView:
    return TableView({o.id: o for o in orders}, keys or {})


def test_the_table_holds_exactly_what_was_placed() -> None:
    placed = [Placed(0, "alice", PlacedOrder(5, "k5", {3: 2}, "10.00", "s"))]
    ok = compare_table(placed, [], _view(TableOrder(5, "alice", "10.00", {3: 2}),
                                         keys={"k5": 5}))
    assert (ok.failures, ok.lost, ok.duplicated) == ([], 0, 0)


def test_a_missing_and_a_doubled_order_are_caught() -> None:
    placed = [Placed(0, "alice", PlacedOrder(5, "k5", {3: 2}, "10.00", "s")),
              Placed(1, "bob", PlacedOrder(6, "k6", {1: 1}, "5.00", "s"))]
    view = _view(TableOrder(6, "bob", "5.00", {1: 1}), TableOrder(7, "bob", "5.00", {1: 1}),
                 keys={"k6": 6})
    result = compare_table(placed, [], view)
    assert (result.lost, result.duplicated) == (1, 1)
    assert any("#5" in f and "missing" in f for f in result.failures)
    assert any("#7" in f and "no user placed it" in f for f in result.failures)


def test_an_unanswered_checkout_is_found_by_its_key() -> None:
    view = _view(TableOrder(9, "carol", "3.00", {2: 1}), keys={"k9": 9})
    result = compare_table([], [(2, "carol", "k9"), (2, "carol", "never-sent")], view)
    assert (result.failures, result.learned) == ([], 1)


def test_money() -> None:
    assert (money(1250), money(5), money(-120)) == ("12.50", "0.05", "-1.20")
