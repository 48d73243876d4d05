"""The public shop API's JSON shapes, exactly as the monolith renders them.

The monolith is the reference: a client must not be able to tell which side
answered. New services build their answers with these functions, and an
end-to-end test compares both sides' answers to the same requests.

Money is integer cents inside, a two-decimal string outside (``"12.50"``).
Timestamps are UTC ISO 8601 with a ``Z`` (``"2026-11-26T06:47:42Z"``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


def money(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}{cents // 100}.{cents % 100:02d}"


def timestamp(when: datetime) -> str:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def error(code: str, detail: str) -> dict[str, Any]:
    return {"error": code, "detail": detail}


def user(user_id: int, username: str) -> dict[str, Any]:
    return {"user": {"id": user_id, "username": username}}


def product(product_id: int, name: str, description: str, price_cents: int) -> dict[str, Any]:
    return {"id": product_id, "name": name, "description": description, "price": money(price_cents)}


@dataclass(frozen=True, slots=True)
class Line:
    product_id: int
    name: str
    qty: int
    unit_price_cents: int


def _lines(lines: Iterable[Line]) -> tuple[list[dict[str, Any]], int, int]:
    items, total, count = [], 0, 0
    for line in sorted(lines, key=lambda ln: ln.product_id):
        line_total = line.qty * line.unit_price_cents
        items.append(
            {
                "product_id": line.product_id,
                "name": line.name,
                "qty": line.qty,
                "unit_price": money(line.unit_price_cents),
                "line_total": money(line_total),
            }
        )
        total += line_total
        count += line.qty
    return items, total, count


def cart(lines: Iterable[Line]) -> dict[str, Any]:
    items, total, count = _lines(lines)
    return {"items": items, "count": count, "total": money(total)}


def order(order_id: int, created_at: datetime, lines: Iterable[Line]) -> dict[str, Any]:
    items, total, _ = _lines(lines)
    return {
        "id": order_id,
        "status": "placed",
        "created_at": timestamp(created_at),
        "items": items,
        "total": money(total),
    }


ERRORS: dict[str, tuple[int, str]] = {
    "bad_request": (400, "the request body is not valid JSON of the expected shape"),
    "invalid_credentials": (401, "unknown user or wrong password"),
    "not_logged_in": (401, "log in first"),
    "not_found": (404, "no such resource"),
    "product_not_found": (404, "no such product"),
    "cart_empty": (400, "the cart is empty"),
    "idempotency_key_reused": (422, "this Idempotency-Key was used with a different request"),
    "invalid_idempotency_key": (400, "Idempotency-Key must be 1-255 printable ASCII characters"),
}
"""Every error the shop API returns: code -> (HTTP status, detail). Same on both sides."""


def error_for(code: str) -> tuple[int, dict[str, Any]]:
    status, detail = ERRORS[code]
    return status, error(code, detail)
