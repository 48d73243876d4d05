"""The rollback drill: every route back to legacy at once, under load, timed.

Measured two ways:

- gateway side (``rollback_s``): from the admin call until the gateway's
  ``/metrics`` show no request served by new for one second. /metrics is
  polled every 100 ms, so the figure is the poll that last saw the new
  counter rise -- an upper bound, 0.1 s coarse.
- users' side (``last_new_request_s``): the latest request a user *sent*
  after the admin call that was still served by new, from the debug header
  ``X-Strangler-Backend`` (``None`` when the gateway does not send it).

``strangler drill rollback --plan FILE`` runs FILE if it is a drill (a
``rollback_all`` stage); else FILE's login, journeys and checks in a
two-stage plan: ``forward`` (every movable route to new, or the current
state with ``--use-current``), then ``rollback`` (a ``rollback_all`` stage).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.settings import Config
from strangler.rehearse.integrity import SqlResult
from strangler.rehearse.plan import Plan, StageSpec
from strangler.rehearse.promtext import Scrape
from strangler.rehearse.users import SESSION, Finding

POLL_S = 0.1
QUIET_S = 1.0


async def watch_new(scrape: Callable[[], Awaitable[Scrape | None]],
                    clock: Callable[[], float], since: float, baseline: float,
                    give_up_s: float) -> float | None:
    """Seconds from ``since`` to the last poll that saw new serve a request, once
    it has been quiet for ``QUIET_S``; None if it never went quiet in ``give_up_s``."""
    last_rise: float | None = None
    seen = baseline
    while clock() - since < give_up_s:
        await asyncio.sleep(POLL_S)
        now = await scrape()
        t = clock()
        if now is None:
            continue
        total = now.backend_total("new")
        if total > seen or total < seen:  # rose, or the gateway restarted
            last_rise, seen = t, total
        if t - (last_rise if last_rise is not None else since) >= QUIET_S:
            return round(last_rise - since, 3) if last_rise is not None else 0.0
    return None


def counts(findings: list[Finding], sql: list[SqlResult]) -> dict[str, int]:
    """The drill's verdict in numbers: users who lost their session, users whose model
    differed from the app, rows the SQL checks found missing or not placed by anyone."""
    def users(same: bool) -> int:
        return len({f.user for f in findings if (f.check == SESSION) == same})

    return {"users_logged_out": users(True), "models_changed": users(False),
            "rows_lost": sum(r.lost for r in sql),
            "rows_duplicated": sum(r.duplicated for r in sql)}


def default_plan(cfg: Config, base: Plan, users: int, duration_s: float,
                 use_current: bool, max_rollback_s: float) -> Plan:
    """The drill ``strangler drill rollback`` runs with ``base``'s login, journeys and
    checks: half the time forward (every movable route to new), half rolled back."""
    movable = [r for r in cfg.routes if not r.legacy_only]
    forward: dict[str, Any] = {"name": "forward" if not use_current else "current state",
                               "duration_s": duration_s / 2,
                               "routes": {} if use_current else {r.name: "new" for r in movable}}
    stages = (StageSpec.model_validate(forward), StageSpec.model_validate(
        {"name": "rollback", "duration_s": duration_s / 2, "rollback_all": True,
         "gates": {"rollback_s": max_rollback_s}}))
    return base.model_copy(update={
        "name": f"rollback drill ({base.name})",
        "description": "Every route on new under load, then every route back to legacy at "
                       "once (kill switch, then each route); nothing may be lost.",
        "users": base.users.model_copy(update={"count": users,
                                               "ramp_s": min(2.0, duration_s / 10)}),
        "gates": base.gates.model_copy(update={"error_rate": 0.02}),
        "stages": stages, "faults": ()})
