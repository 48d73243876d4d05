"""The once-a-second /metrics sampler, the drill's counts and the report's verdict."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from strangler.rehearse import drill, report
from strangler.rehearse.integrity import SqlResult
from strangler.rehearse.promtext import Scrape
from strangler.rehearse.sampler import MetricsSampler
from strangler.rehearse.users import Finding


async def _none() -> Scrape | None:
    return None


def _scrape(legacy: float, new: float, fallbacks: float = 0) -> Scrape:
    return Scrape({("cart", "legacy"): legacy, ("cart", "new"): new}, {"cart": fallbacks})


def test_each_second_gets_the_difference_to_the_previous_scrape() -> None:
    s = MetricsSampler(_none, lambda: 0.0)
    s.first = s.last = _scrape(10, 0)
    s.sample(_scrape(15, 2, 1), 0)
    s.sample(None, 1)  # an unreadable scrape books nothing; the next one catches up
    s.sample(_scrape(16, 9, 1), 2)
    assert s.seconds == {0: {"fallbacks": 1, "by_route": {"cart": {"legacy": 5, "new": 2}}},
                         2: {"fallbacks": 0, "by_route": {"cart": {"legacy": 1, "new": 7}}}}
    assert s.by_backend_since(1) == {"legacy": 1, "new": 7}
    overall = s.overall()
    assert overall is not None and overall.total_requests == 15 and overall.total_fallbacks == 1


def test_a_restarted_gateway_counts_from_zero() -> None:
    s = MetricsSampler(_none, lambda: 0.0)
    s.first = s.last = _scrape(100, 50)
    s.sample(_scrape(3, 4), 0)
    assert s.seconds[0]["by_route"]["cart"] == {"legacy": 3, "new": 4}


def _finding(check: str, user: int, got: str = "x") -> Finding:
    return Finding(check, user, "alice", "rollback", 1.0, "y", got)


def test_drill_counts_users_not_findings_and_rows_of_every_sql_check() -> None:
    findings = [_finding("session_continuity", 1), _finding("session_continuity", 1),
                _finding("cart_integrity", 2), _finding("cart_integrity", 3),
                _finding("orders_integrity", 3, "order #7 missing from /api/orders")]
    sql = [SqlResult(lost=1, duplicated=2), SqlResult(lost=1)]
    assert drill.counts(findings, sql) == {
        "users_logged_out": 1, "models_changed": 2, "rows_lost": 2, "rows_duplicated": 2}


def test_the_report_fails_on_a_breached_stage_or_a_failed_check() -> None:
    t = datetime(2025, 1, 1, tzinfo=UTC)

    def build(outcome: str, check_passed: bool) -> dict[str, Any]:
        stage = {"name": "a", "start_s": 0, "end_s": 1, "changes": [], "gates": [],
                 "outcome": outcome, "_before": {}, "_checked": True}
        check = {"name": "orders_table", "passed": check_passed, "detail": "", "failures": []}
        return report.build("rehearsal", {"name": "p"}, t, t, 1.23456, [stage], [], [], 3,
                            [check], {}, None)

    ok = build("held", True)
    assert ok["result"] == "passed" and ok["duration_s"] == 1.235
    assert ok["started_at"] == "2025-01-01T00:00:00.000Z"
    assert list(ok["stages"][0]) == ["name", "start_s", "end_s", "changes", "gates", "outcome"]
    assert build("breached", True)["result"] == "failed"
    assert build("held", False)["result"] == "failed"
