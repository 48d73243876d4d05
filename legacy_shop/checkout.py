"""Placing an order, with the idempotency algorithm both backends share.

docs/protocol.md section 2, in one transaction: look up ``(user, key)``; the
same request hash replays the stored order, another hash is 422; otherwise
insert the order, its lines (name and price copied from ``products`` now) and
the key. A unique violation on the key means a concurrent request with the
same key committed first: roll back and replay its order. The caller takes
the ordered quantities out of the session after the commit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from legacy_shop import render
from legacy_shop.db import INT32_MAX, idempotency_keys, order_items, orders, write_transaction
from legacy_shop.errors import ApiError
from legacy_shop.queries import cart_lines, load_order, products_by_id

log = structlog.get_logger(__name__)

PLACED_BY = "legacy"
SETTLE_ON_REPLAY = timedelta(minutes=15)
"""A replay this soon after the order may still owe the basket its lines (a first
answer lost with its node); an older one is another session's business."""


def order_lines(order: Mapping[str, Any]) -> dict[int, int]:
    """product id -> qty of an order as the API shows it."""
    return {int(i["product_id"]): int(i["qty"]) for i in order["items"]}


@dataclass(frozen=True, slots=True)
class Placed:
    """The order to answer with; ``ordered`` is what to take out of the basket."""

    order: dict[str, Any]
    replayed: bool
    ordered: Mapping[int, int] = field(default_factory=dict)
    settle_on_replay: bool = False
    """A replay of a recent order: its lines leave the basket if they have not yet."""


class _KeyTaken(Exception):
    """The idempotency row exists already: a concurrent request won."""


async def place_order(
    engine: AsyncEngine,
    user_id: int,
    basket: Mapping[int, int],
    key: str | None,
    request_hash: str,
) -> Placed:
    """Place an order for ``basket`` or replay the one ``key`` already placed.

    Raises ``ApiError`` for ``idempotency_key_reused`` and ``cart_empty``.
    """
    try:
        async with write_transaction(engine) as conn:
            placed = await _replay(conn, user_id, key, request_hash) if key is not None else None
            if placed is None:
                placed = await _insert(conn, user_id, basket, key, request_hash)
    except _KeyTaken:
        # The winner has committed (our insert waited for it), so a fresh
        # read sees its row.
        log.info("idempotency_race_lost", user_id=user_id)
        async with engine.connect() as conn:
            placed = await _replay(conn, user_id, key or "", request_hash)
        if placed is None:  # pragma: no cover - the row cannot vanish
            raise RuntimeError("idempotency row disappeared after a unique violation") from None
    if not placed.replayed:
        log.info("order_placed", user_id=user_id, order_id=placed.order["id"],
                 total=placed.order["total"], lines=len(placed.ordered),
                 idempotency_key=key is not None)
    return placed


async def _replay(conn: AsyncConnection, user_id: int, key: str, request_hash: str
                  ) -> Placed | None:
    query = select(idempotency_keys.c.request_hash, idempotency_keys.c.order_id,
                   idempotency_keys.c.created_at).where(
        idempotency_keys.c.user_id == user_id, idempotency_keys.c.key == key
    )
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    if row.request_hash != request_hash:
        log.info("idempotency_key_reused", user_id=user_id, order_id=row.order_id)
        raise ApiError("idempotency_key_reused")
    log.info("checkout_replayed", user_id=user_id, order_id=row.order_id)
    recent = row.created_at is not None and \
        datetime.now(UTC).replace(tzinfo=None) - row.created_at < SETTLE_ON_REPLAY
    return Placed(await load_order(conn, row.order_id), replayed=True, settle_on_replay=recent)


async def _insert(conn: AsyncConnection, user_id: int, basket: Mapping[int, int],
                  key: str | None, request_hash: str) -> Placed:
    lines = cart_lines(basket, await products_by_id(conn, basket))
    if not lines:
        raise ApiError("cart_empty")
    total = sum(ln.qty * ln.unit_price_cents for ln in lines)
    if total > INT32_MAX or any(ln.qty > INT32_MAX for ln in lines):
        raise ApiError("bad_request")  # more than the schema's INTEGER columns can record
    now = datetime.now(UTC).replace(tzinfo=None)
    result = await conn.execute(
        insert(orders).values(user_id=user_id, total_cents=total, created_at=now,
                              placed_by=PLACED_BY)
    )
    (order_id,) = result.inserted_primary_key or (None,)
    if order_id is None:  # pragma: no cover - every supported backend reports it
        raise RuntimeError("the database did not report the new order's id")
    if key is not None:
        try:
            await conn.execute(insert(idempotency_keys).values(
                user_id=user_id, key=key, request_hash=request_hash, order_id=order_id,
                created_at=now,
            ))
        except IntegrityError as exc:
            raise _KeyTaken from exc
    await conn.execute(insert(order_items), [
        {"order_id": order_id, "product_id": ln.product_id, "name": ln.name, "qty": ln.qty,
         "unit_price_cents": ln.unit_price_cents}
        for ln in lines
    ])
    return Placed(render.order(order_id, now, lines), replayed=False,
                  ordered={ln.product_id: ln.qty for ln in lines})
