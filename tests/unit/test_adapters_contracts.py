"""adapters.contracts: the shop API's shapes, identical whichever side answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from adapters.contracts import ERRORS, Line, cart, error_for, money, order, product, timestamp


@pytest.mark.parametrize(
    ("cents", "text"),
    [
        (0, "0.00"),
        (5, "0.05"),
        (10, "0.10"),
        (99, "0.99"),
        (100, "1.00"),
        (1250, "12.50"),
        (123456, "1234.56"),
        (-5, "-0.05"),
        (-100, "-1.00"),
        (-123456, "-1234.56"),
        (10**12 + 1, "10000000000.01"),
    ],
)
def test_money(cents: int, text: str) -> None:
    assert money(cents) == text


def test_timestamp_of_a_naive_datetime_is_taken_as_utc() -> None:
    assert timestamp(datetime(2026, 11, 26, 6, 47, 42)) == "2026-11-26T06:47:42Z"


def test_timestamp_of_an_aware_datetime_is_converted_to_utc() -> None:
    cet = timezone(timedelta(hours=1))
    assert timestamp(datetime(2026, 11, 26, 7, 47, 42, tzinfo=cet)) == "2026-11-26T06:47:42Z"
    behind = timezone(timedelta(hours=-5, minutes=-30))
    assert timestamp(datetime(2026, 12, 31, 20, 0, 0, tzinfo=behind)) == "2027-01-01T01:30:00Z"
    assert timestamp(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05Z"


def test_timestamp_drops_fractions_of_a_second() -> None:
    assert timestamp(datetime(2026, 1, 2, 3, 4, 5, 999_999)) == "2026-01-02T03:04:05Z"


def test_product_shape() -> None:
    assert product(3, "Tea", "Green", 450) == {"id": 3, "name": "Tea", "description": "Green",
                                               "price": "4.50"}


def test_cart_lines_are_ordered_by_product_and_totalled() -> None:
    body = cart([Line(12, "Mug", 1, 1000), Line(3, "Tea", 2, 450)])
    assert body == {
        "items": [
            {"product_id": 3, "name": "Tea", "qty": 2, "unit_price": "4.50",
             "line_total": "9.00"},
            {"product_id": 12, "name": "Mug", "qty": 1, "unit_price": "10.00",
             "line_total": "10.00"},
        ],
        "count": 3,
        "total": "19.00",
    }


def test_empty_cart() -> None:
    assert cart([]) == {"items": [], "count": 0, "total": "0.00"}


def test_order_shape() -> None:
    body = order(41, datetime(2026, 11, 26, 6, 47, 42), [Line(3, "Tea", 2, 450)])
    assert body == {
        "id": 41, "status": "placed", "created_at": "2026-11-26T06:47:42Z",
        "items": [{"product_id": 3, "name": "Tea", "qty": 2, "unit_price": "4.50",
                   "line_total": "9.00"}],
        "total": "9.00",
    }


def test_errors_are_client_errors_with_the_documented_statuses() -> None:
    assert {code: status for code, (status, _) in ERRORS.items()} == {
        "bad_request": 400, "invalid_credentials": 401, "not_logged_in": 401,
        "not_found": 404, "product_not_found": 404, "cart_empty": 400,
        "idempotency_key_reused": 422, "invalid_idempotency_key": 400,
    }
    status, body = error_for("cart_empty")
    assert status == 400
    assert body == {"error": "cart_empty", "detail": ERRORS["cart_empty"][1]}
