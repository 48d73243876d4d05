"""Checkout service: ``POST /api/checkout`` with the shared idempotency store.

docs/protocol.md section 2, step by step: validate the key and hash the
canonical body; in one transaction replay (same hash), refuse (other hash,
422) or place the order with its items and the key row; a unique violation on
the key row means a concurrent request with the same key won, so we roll back
and replay its order (``strangler_sdk.idempotency.run_once`` over the shop's own
key table, ``ShopKeys``). After commit, exactly the ordered quantities leave the
session cart, once per order (``ShopSession.settle``), so items added
meanwhile survive and a replay finishes what a lost first answer did not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from aiohttp import web
from redis.exceptions import RedisError
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters import contracts
from strangler_sdk.errors import OutcomeUnknown, SessionBusy
from strangler_sdk.idempotency import Found, run_once

from .appkeys import ENGINE
from .catalog import fetch_products, priced_lines
from .db import MAX_DB_ID, idempotency_keys, order_items, orders, write_transaction
from .errors import ApiError
from .identity import LoggedIn, require_login, update
from .orders import one_order
from .validation import idempotency_key, request_hash

log = structlog.get_logger("new_services.checkout")
SERVICE = "checkout"
"""This service's name: the ``aud`` its tokens must carry (config: routes[].service)."""


IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
PLACED_BY = "new"


SETTLE_ON_REPLAY = timedelta(minutes=15)
"""A replay this soon after the order may still owe the cart its lines (the first
answer was lost with a node, or the session store did not answer)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    order: dict[str, Any]
    replayed: bool
    taken: Mapping[int, int] = field(default_factory=dict)
    """Product id -> quantity the order took from the cart."""
    settle: bool = True
    """The order's lines leave the cart if they have not yet (false: an old replay)."""
    placed_at: datetime | None = None


class ShopKeys:
    """The shop's ``idempotency_keys(user_id, key, request_hash, order_id, created_at)`` as
    the SDK's key table: a row points at an order, which a replay reads back."""

    async def find(self, conn: AsyncConnection, scope: Any, key: str) -> Found[Outcome] | None:
        query = select(idempotency_keys.c.request_hash, idempotency_keys.c.order_id,
                       idempotency_keys.c.created_at).where(
            idempotency_keys.c.user_id == scope, idempotency_keys.c.key == key)
        row = (await conn.execute(query)).first()
        if row is None:
            return None
        order = await one_order(conn, row.order_id)
        recent = row.created_at is not None and \
            datetime.now(UTC).replace(tzinfo=None) - row.created_at < SETTLE_ON_REPLAY
        taken = {int(i["product_id"]): int(i["qty"]) for i in order["items"]}
        return Found(row.request_hash, Outcome(order, replayed=True, taken=taken, settle=recent),
                     row.created_at)

    async def record(self, conn: AsyncConnection, scope: Any, key: str, digest: str,
                     result: Outcome) -> None:
        await conn.execute(insert(idempotency_keys).values(
            user_id=scope, key=key, request_hash=digest, order_id=int(result.order["id"]),
            created_at=result.placed_at))


async def checkout(request: web.Request) -> web.Response:
    login = await require_login(request, SERVICE)
    key = idempotency_key(request.headers.get(IDEMPOTENCY_HEADER))
    digest = request_hash(await request.read())
    outcome = await place_order(request.app[ENGINE], login, key, digest)
    log.info("checkout", order_id=outcome.order["id"], replayed=outcome.replayed,
             user_id=login.user_id, keyed=key is not None)
    if outcome.settle:
        await _settle(request, login, outcome, keyed=key is not None)
    if outcome.replayed:
        return web.json_response({"order": outcome.order}, headers={REPLAYED_HEADER: "true"})
    return web.json_response({"order": outcome.order}, status=201)


async def place_order(engine: AsyncEngine, login: LoggedIn, key: str | None,
                      digest: str) -> Outcome:
    """Place the order of the session's cart, or replay the one this key placed."""
    user_id = login.user_id

    async def place(conn: AsyncConnection) -> Outcome:
        return await _insert_order(conn, user_id, login.session.cart)
    done = await run_once(engine, ShopKeys(), user_id, key, digest, place,
                          transaction=lambda: write_transaction(engine))
    return done.result


async def _insert_order(conn: AsyncConnection, user_id: int,
                        cart: Mapping[int, int]) -> Outcome:
    lines = priced_lines(cart, await fetch_products(conn, cart))
    if not lines:
        raise ApiError("cart_empty")
    # Naive UTC, as the monolith stores it in a TIMESTAMP column.
    now = datetime.now(UTC).replace(tzinfo=None)
    total = sum(ln.qty * ln.unit_price_cents for ln in lines)
    if total > MAX_DB_ID or any(ln.qty > MAX_DB_ID for ln in lines):
        raise ApiError("bad_request")  # more than the schema's INTEGER columns can record
    order_id = (await conn.execute(
        insert(orders).values(user_id=user_id, total_cents=total, created_at=now,
                              placed_by=PLACED_BY).returning(orders.c.id))).scalar_one()
    await conn.execute(insert(order_items), [
        {"order_id": order_id, "product_id": ln.product_id, "name": ln.name, "qty": ln.qty,
         "unit_price_cents": ln.unit_price_cents} for ln in lines])
    taken = {ln.product_id: ln.qty for ln in lines}
    return Outcome(contracts.order(order_id, now, lines), replayed=False, taken=taken,
                   placed_at=now)


async def _settle(request: web.Request, login: LoggedIn, outcome: Outcome, *,
                  keyed: bool) -> None:
    """Take the order's lines out of the cart, once per order (``ShopSession.settle``).

    The order is committed whatever happens here. With an idempotency key, a
    cart that could not be settled is a 500: the client's retry with the same
    key replays the order and settles the cart then. Without one a retry would
    place a second order, so the order is answered and the failure logged.
    """
    order_id = int(outcome.order["id"])
    try:
        await update(request, login, lambda s: s.settle(order_id, outcome.taken),
                     op=f"settle-{order_id}")
    except ApiError:
        return  # the session ended meanwhile: nothing to settle
    except (SessionBusy, OutcomeUnknown, RedisError, OSError) as exc:
        log.warning("checkout_cart_not_settled", reason=type(exc).__name__,
                    order_id=order_id, user_id=login.user_id, keyed=keyed)
        if keyed:
            raise OutcomeUnknown() from exc


def register(app: web.Application) -> None:
    app.router.add_post("/api/checkout", checkout)
