"""The migration ledger: every stage change, who made it, when, from what, to what, why.

One SQL table (``strangler_ledger``) in the configured database, written by
whatever made the change (the admin API, the CLI) right after the flag
store accepted it, and read by ``strangler flags history``, the admin API
and ``explain``. A route's current stage can always be traced to its entry.

Its free text is shown only through ``Entry.to_dict`` and ``Entry.describe``,
which render it inert (``flags.text``): a row written before reasons were
checked, or straight into the table, still reads as one plain line.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    event,
    insert,
    select,
)
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from flags.model import RouteFlag
from flags.store import Change
from flags.text import REASON_MAX, fit, inert

KILL_SWITCH = "*kill-switch*"
metadata = MetaData()
ledger = Table(
    "strangler_ledger", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=False), nullable=False),
    Column("actor", String(120), nullable=False),
    Column("source", String(32), nullable=False),
    Column("route", String(64), nullable=False),
    Column("from_stage", String(16), nullable=False),
    Column("from_percent", Integer, nullable=False),
    Column("to_stage", String(16), nullable=False),
    Column("to_percent", Integer, nullable=False),
    Column("reason", Text, nullable=False),
    Column("flag_version", Integer, nullable=False),
    Column("moved_with", String(400), nullable=False),
)
Index("strangler_ledger_route_id", ledger.c.route, ledger.c.id)


@dataclass(frozen=True, slots=True)
class Entry:
    id: int
    at: datetime
    actor: str
    source: str
    route: str
    from_stage: str
    from_percent: int
    to_stage: str
    to_percent: int
    reason: str
    flag_version: int
    moved_with: str

    def to_dict(self) -> dict[str, Any]:
        """As the admin API serves it: every text field inert (``flags.text``)."""
        out = {k: getattr(self, k) for k in self.__slots__}
        out.update({k: inert(v) for k, v in out.items() if isinstance(v, str)})
        out["at"] = self.at.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")
        return out

    def describe(self) -> str:
        """One line of plain text, whatever the row holds (``flags history``, ``explain``)."""
        def fmt(stage: str, pct: int) -> str:
            return f"{stage} {pct}%" if stage == "canary" else stage
        what = (f"kill switch {self.to_stage}" if self.route == KILL_SWITCH
                else f"{self.route}: {fmt(self.from_stage, self.from_percent)} -> "
                     f"{fmt(self.to_stage, self.to_percent)}")
        also = f" (with {self.moved_with})" if self.moved_with else ""
        why = f" -- {_clip(self.reason)}" if self.reason else ""
        when = self.at.strftime("%Y-%m-%d %H:%M:%S")
        return inert(f"#{self.id} {when}Z {self.actor} via {self.source}: {what}{also}{why}")


def _clip(reason: str) -> str:
    """An old row's reason may be any length; a line shows at most the limit of a new one."""
    more = len(reason) - REASON_MAX
    return reason if more <= 0 else f"{reason[:REASON_MAX]}... (+{more} characters)"


def _engine(url: str) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_async_engine(url, pool_pre_ping=True)
    engine = create_async_engine(url)

    @event.listens_for(engine.sync_engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    return engine


class Ledger:
    def __init__(self, url: str) -> None:
        self._engine = _engine(url)
        self._ready = False

    async def _ensure(self) -> None:
        if not self._ready:
            async with self._engine.begin() as conn:
                await conn.run_sync(metadata.create_all, checkfirst=True)
            self._ready = True

    async def record(self, change: Change, *, actor: str, source: str) -> list[int]:
        """One row per route the change moved (a group moves several)."""
        await self._ensure()
        now = datetime.now(UTC).replace(tzinfo=None)
        rows = []
        if change.route is None:
            rows.append(self._row(now, actor, source, KILL_SWITCH, change,
                                  ("on" if change.before else "off", 0),
                                  ("on" if change.after else "off", 0), ""))
        else:
            before, after = change.before, change.after
            assert isinstance(before, RouteFlag) and isinstance(after, RouteFlag)
            for route in change.moved or (change.route,):
                others = ",".join(r for r in change.moved if r != route)
                rows.append(self._row(now, actor, source, route, change,
                                      (before.stage.value, before.percent),
                                      (after.stage.value, after.percent), others))
        async with self._engine.begin() as conn:
            ids = []
            for row in rows:
                result = await conn.execute(insert(ledger).values(**row))
                key = result.inserted_primary_key
                ids.append(int(key[0]) if key else 0)
        return ids

    @staticmethod
    def _row(now: datetime, actor: str, source: str, route: str, change: Change,
             before: tuple[str, int], after: tuple[str, int], others: str) -> dict[str, Any]:
        reason = change.reason
        # the actor is a token's name or cli:<login>, not typed with the change: made to fit
        return {"at": now, "actor": fit(actor, 120), "source": source, "route": route,
                "from_stage": before[0], "from_percent": before[1], "to_stage": after[0],
                "to_percent": after[1], "reason": reason, "flag_version": change.version,
                "moved_with": others[:400]}

    async def history(self, route: str | None = None, limit: int = 50) -> list[Entry]:
        """Newest first; ``route`` also matches the kill switch, which moves every route."""
        await self._ensure()
        query = select(ledger).order_by(ledger.c.id.desc()).limit(limit)
        if route is not None:
            query = query.where(ledger.c.route.in_((route, KILL_SWITCH)))
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [Entry(**row._mapping) for row in rows]

    async def last_for(self, route: str) -> Entry | None:
        """The entry that set ``route``'s current stage (the kill switch aside)."""
        await self._ensure()
        query = (select(ledger).where(ledger.c.route == route)
                 .order_by(ledger.c.id.desc()).limit(1))
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return Entry(**row._mapping) if row else None

    async def close(self) -> None:
        await self._engine.dispose()

