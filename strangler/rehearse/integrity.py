"""The orders table against the orders the users placed: none missing, none twice.

Read straight from the shop's database (``database.url``) with SQLAlchemy,
after the load has stopped. Only rows newer than the run's start (by id)
and of the accounts the users logged in as are compared, so run it where
nobody else shops with those accounts.

A checkout that never got an answer is looked up by its Idempotency-Key:
if the table has it, the order was placed (the user just never heard);
if not, it never happened. Neither is a failure. An order a user was told
about that the table lacks is *lost*; a row no user placed is a *duplicate*.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import create_async_engine

from strangler.rehearse.model import Lines, PlacedOrder, show
from strangler.rehearse.users import CHECKS, Finding

MAX_LISTED = 50


class DatabaseError(Exception):
    """The shop database could not be read."""


@dataclass(frozen=True, slots=True)
class TableOrder:
    id: int
    username: str
    total: str
    items: Lines


@dataclass
class TableView:
    orders: dict[int, TableOrder] = field(default_factory=dict)
    keys: dict[str, int] = field(default_factory=dict)
    """Idempotency-Key of this run -> order id."""


def money(cents: int) -> str:
    return f"{'-' if cents < 0 else ''}{abs(cents) // 100}.{abs(cents) % 100:02d}"


async def last_order_id(url: str) -> int:
    """The newest order id before the run: rows after it are the run's."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            value = (await conn.execute(text("SELECT MAX(id) FROM orders"))).scalar()
            return int(value or 0)
    except Exception as exc:
        raise DatabaseError(f"database.url: cannot read the orders table: {exc}") from exc
    finally:
        await engine.dispose()


async def read_table(url: str, usernames: list[str], after_id: int, key_prefix: str) -> TableView:
    engine = create_async_engine(url)
    view = TableView()
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(text(
                "SELECT o.id, u.username, o.total_cents FROM orders o "
                "JOIN users u ON u.id = o.user_id WHERE o.id > :after "
                "AND u.username IN :names").bindparams(bindparam("names", expanding=True)),
                {"after": after_id, "names": usernames})
            for oid, name, cents in rows:
                view.orders[int(oid)] = TableOrder(int(oid), str(name), money(int(cents)), {})
            items = await conn.execute(text(
                "SELECT order_id, product_id, qty FROM order_items WHERE order_id > :after"),
                {"after": after_id})
            for oid, pid, qty in items:
                if int(oid) in view.orders:
                    lines = view.orders[int(oid)].items
                    lines[int(pid)] = lines.get(int(pid), 0) + int(qty)
            keys = await conn.execute(text(
                "SELECT key, order_id FROM idempotency_keys WHERE key LIKE :prefix"),
                {"prefix": key_prefix + "%"})
            view.keys = {str(k): int(o) for k, o in keys}
    except Exception as exc:
        raise DatabaseError(f"database.url: cannot read the orders table: {exc}") from exc
    finally:
        await engine.dispose()
    return view


@dataclass(frozen=True, slots=True)
class Placed:
    user: int
    username: str
    order: PlacedOrder


@dataclass
class TableCheck:
    failures: list[str] = field(default_factory=list)
    lost: int = 0
    duplicated: int = 0
    learned: int = 0
    """Unanswered checkouts the table shows were placed."""
    compared: int = 0


def compare_table(placed: list[Placed], unanswered: list[tuple[int, str, str]],
                  view: TableView) -> TableCheck:
    """``unanswered``: (user, username, key) of checkouts that never got an answer."""
    out = TableCheck(compared=len(view.orders))
    known: set[int] = set()
    for p in placed:
        o, who = p.order, f"user {p.user} ({p.username})"
        known.add(o.id)
        row = view.orders.get(o.id)
        if row is None or row.username != p.username:
            out.lost += 1
            out.failures.append(f"order #{o.id} of {who}, key {o.key}: missing from the "
                                "orders table")
        elif row.items != o.items or row.total != o.total:
            out.failures.append(f"order #{o.id} of {who}: the table has {show(row.items)} "
                                f"total {row.total}, the user was told {show(o.items)} "
                                f"total {o.total}")
        if view.keys.get(o.key, o.id) != o.id:
            out.failures.append(f"key {o.key} of {who}: the table points at order "
                                f"#{view.keys[o.key]}, the user was told #{o.id}")
    for _user, _name, key in unanswered:
        if key in view.keys:
            out.learned += 1
            known.add(view.keys[key])
    for oid, row in sorted(view.orders.items()):
        if oid not in known:
            out.duplicated += 1
            out.failures.append(f"order #{oid} of {row.username} ({show(row.items)}) is in "
                                "the table, but no user placed it: a duplicate?")
    return out


def check(name: str, failures: list[str], detail: str) -> dict[str, Any]:
    return {"name": name, "passed": not failures, "detail": detail,
            "failures": failures[:MAX_LISTED]}


def user_checks(findings: list[Finding], unverified: list[tuple[str, str]], users: int,
                stages_checked: int) -> list[dict[str, Any]]:
    """The three checks the users made against their models, as report entries.

    A check that got no answer mid-run (during a fault) proves nothing either
    way and is only counted; one that got none at the end fails the run."""
    out = []
    final = [what for stage, what in unverified if stage == "final"]
    for name in CHECKS:
        failures = [f.text() for f in findings if f.check == name]
        detail = (f"{users} users checked at the end of {stages_checked} stage(s) and of the "
                  f"run: {len(failures)} difference(s)")
        if name == "session_continuity":
            failures += final  # a final check never made proves nothing
            if len(unverified) > len(final):
                detail += (f"; {len(unverified) - len(final)} mid-run check(s) got no answer "
                           "and were made at the next stage")
        out.append(check(name, failures, detail))
    return out


def table_check(result: TableCheck, placed: int) -> dict[str, Any]:
    detail = (f"{placed} orders placed by the users, {result.compared} new rows in the table; "
              f"{result.lost} missing, {result.duplicated} not placed by anyone; "
              f"{result.learned} unanswered checkout(s) found placed by their key")
    return check("orders_table", result.failures, detail)
