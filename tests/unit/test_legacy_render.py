"""The monolith renders the API exactly as ``adapters.contracts`` says it does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from adapters import contracts
from legacy_shop import render
from legacy_shop.errors import ERRORS, ApiError

LINES = [(3, "Kettle", 2, 5900), (1, "Tea \"Darjeeling\" <b>", 1, 1250), (12, "Card", 100, 1)]


@pytest.mark.parametrize("cents", [0, 1, 9, 10, 99, 100, 1250, 123456789, -1, -1050])
def test_money(cents: int) -> None:
    assert render.money(cents) == contracts.money(cents)


@pytest.mark.parametrize("when", [
    datetime(2026, 11, 26, 6, 47, 42, 999999),
    datetime(2026, 11, 26, 6, 47, 42, tzinfo=UTC),
    datetime(2026, 11, 26, 8, 47, 42, tzinfo=timezone(timedelta(hours=2))),
])
def test_timestamp(when: datetime) -> None:
    assert render.timestamp(when) == contracts.timestamp(when) == "2026-11-26T06:47:42Z"


def test_user_and_product() -> None:
    assert render.user(7, "alice") == contracts.user(7, "alice")
    assert render.product(1, "Tea", "Nice", 1250) == contracts.product(1, "Tea", "Nice", 1250)


def test_cart_and_order() -> None:
    mine = [render.Line(*ln) for ln in LINES]
    theirs = [contracts.Line(*ln) for ln in LINES]
    assert render.cart(mine) == contracts.cart(theirs)
    assert [i["product_id"] for i in render.cart(mine)["items"]] == [1, 3, 12]
    assert render.cart([]) == contracts.cart([]) == {"items": [], "count": 0, "total": "0.00"}
    when = datetime(2026, 11, 26, 6, 47, 42)
    assert render.order(5, when, mine) == contracts.order(5, when, theirs)


def test_errors_are_the_contract() -> None:
    assert ERRORS == contracts.ERRORS
    for code in ERRORS:
        status, body = contracts.error_for(code)
        exc = ApiError(code)
        assert (exc.status, exc.body()) == (status, body)


def test_unknown_error_code_is_a_bug() -> None:
    with pytest.raises(ValueError, match="unknown error code"):
        ApiError("nope")
