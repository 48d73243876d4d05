"""Flag changes as operators make them: validated, applied, pinned state undone, recorded.

Both doors -- the admin API and the CLI -- go through ``FlagService``, so a
change is never applied without its ledger entry being attempted, a route
sent back to legacy always loses its pins, and a reason the ledger would not
take (``flags.text``) is refused before anything moves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import structlog

from flags.ledger import Ledger
from flags.model import Stage
from flags.pins import Pins
from flags.store import Change
from flags.text import check

log = structlog.get_logger("flags")


class FlagWriter(Protocol):
    async def set_route(self, route: str, stage: Stage, percent: int | None, *, actor: str,
                        reason: str = "") -> Change: ...

    async def set_kill(self, on: bool, *, actor: str, reason: str = "") -> Change: ...


@dataclass(frozen=True, slots=True)
class Outcome:
    change: Change
    ledger_ids: list[int] = field(default_factory=list)
    ledger_error: str | None = None
    pins_cleared: dict[str, int] = field(default_factory=dict)


class FlagService:
    def __init__(self, writer: FlagWriter, ledger: Ledger | None, pins: Pins | None) -> None:
        self.writer = writer
        self.ledger = ledger
        self.pins = pins

    async def flip(self, route: str, stage: Stage, percent: int | None, *, actor: str,
                   source: str, reason: str = "") -> Outcome:
        check("reason", reason)
        change = await self.writer.set_route(route, stage, percent, actor=actor, reason=reason)
        cleared: dict[str, int] = {}
        if stage is Stage.LEGACY and self.pins is not None:
            for moved in change.moved or (route,):
                cleared[moved] = await self.pins.clear(moved)
        ids, error = await self._record(change, actor, source)
        log.info("flag_flipped", route=route, moved=list(change.moved), stage=stage.value,
                 percent=percent, actor=actor, source=source, reason=reason,
                 version=change.version, pins_cleared=cleared)
        return Outcome(change, ids, error, cleared)

    async def kill(self, on: bool, *, actor: str, source: str, reason: str = "") -> Outcome:
        check("reason", reason)
        change = await self.writer.set_kill(on, actor=actor, reason=reason)
        ids, error = await self._record(change, actor, source)
        log.warning("kill_switch_set", on=on, actor=actor, source=source, reason=reason,
                    version=change.version)
        return Outcome(change, ids, error)

    async def unpin(self, route: str, *, actor: str, source: str) -> int:
        if self.pins is None:
            return 0
        count = await self.pins.clear(route)
        log.info("pins_cleared", route=route, count=count, actor=actor, source=source)
        return count

    async def _record(self, change: Change, actor: str,
                      source: str) -> tuple[list[int], str | None]:
        if self.ledger is None:
            return [], None
        try:
            return await self.ledger.record(change, actor=actor, source=source), None
        except Exception as exc:  # the change is applied; say loudly it is not recorded
            log.error("ledger_write_failed", error=f"{type(exc).__name__}: {exc}",
                      version=change.version)
            return [], f"{type(exc).__name__}: {exc}"
