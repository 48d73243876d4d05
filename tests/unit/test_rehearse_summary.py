"""The rehearsal's closing summary says when a gate passed only because it was not judged.

A latency gate judges a window only once it holds ``min_requests`` requests
(strangler/rehearse/gates.py); at ``--scale 0.1`` a quiet route may never get
there, and its figure, far over the limit, used to print as a plain ``ok``.
"""

from __future__ import annotations

from typing import Any

from strangler.rehearse.gates import GateResult
from strangler.rehearse.report import summary


def report(*gates: GateResult) -> dict[str, Any]:
    return {"kind": "rehearsal", "plan": {"name": "p"}, "result": "passed", "duration_s": 6.0,
            "totals": {"requests": 100, "errors": 0, "error_rate": 0.0, "p50_ms": 10.0,
                       "p99_ms": 900.0, "fallbacks": 0},
            "stages": [{"name": "s", "outcome": "held", "gates": [g.to_dict() for g in gates]}],
            "integrity": {"checks": []}, "drill": None}


def test_a_gate_over_its_limit_that_passed_is_said_not_judged() -> None:
    lines = summary(report(GateResult("p99_ms", "saved", 400, 1290.0, True, 18),
                           GateResult("p99_ms", "all", 3000, 900.0, True, 100),
                           GateResult("p99_ms", "views", 400, 1200.0, False, 30))).splitlines()
    assert "    ok   p99_ms.saved: 1290 (limit 400; not judged: 18 requests, fewer than " \
           "gates.min_requests)" in lines
    assert "    ok   p99_ms.all: 900 (limit 3000)" in lines
    assert "    FAIL p99_ms.views: 1200 (limit 400)" in lines
