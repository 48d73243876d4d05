"""The public API's JSON shapes, as the monolith has always rendered them.

This is the reference the new services copy (through ``adapters.contracts``);
a unit test holds the two equal. Money is integer cents inside and a
two-decimal string outside; timestamps are UTC with a ``Z``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Line:
    """One cart or order line."""

    product_id: int
    name: str
    qty: int
    unit_price_cents: int


def money(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}{cents // 100}.{cents % 100:02d}"


def timestamp(when: datetime) -> str:
    # The database hands back naive datetimes that are UTC by convention.
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def user(user_id: int, username: str) -> dict[str, Any]:
    return {"user": {"id": user_id, "username": username}}


def product(product_id: int, name: str, description: str, price_cents: int) -> dict[str, Any]:
    return {"id": product_id, "name": name, "description": description, "price": money(price_cents)}


def _lines(lines: Iterable[Line]) -> tuple[list[dict[str, Any]], int, int]:
    items: list[dict[str, Any]] = []
    total = count = 0
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
