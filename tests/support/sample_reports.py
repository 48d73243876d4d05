"""Report documents in the engine's report.json schema, for the HTML report's tests.

Deterministic (seeded) so a test can count what the page must draw: routes with
traffic, events, stages. ``HOSTILE`` strings go into every free-text field of
``hostile()``.
"""

from __future__ import annotations

import random
from typing import Any

HOSTILE = '</script><script>document.title="PWNED"</script><img src=x onerror="alert(1)"><!--'


def _stage(name: str, start: float, end: float, changes: list[tuple[str, str, int | None]],
           outcome: str = "held", error_observed: float | None = 0.002,
           p99_observed: float | None = 180.0) -> dict[str, Any]:
    return {
        "name": name, "start_s": start, "end_s": end,
        "changes": [{"route": r, "stage": s, "percent": p} for r, s, p in changes],
        "gates": [
            {"name": "error_rate", "route": None, "limit": 0.01, "observed": error_observed,
             "passed": error_observed is None or error_observed <= 0.01, "samples": 240},
            {"name": "p99_ms", "route": "catalog", "limit": 400.0, "observed": p99_observed,
             "passed": p99_observed is None or p99_observed <= 400.0, "samples": 120},
            {"name": "fallback_rate", "route": None, "limit": 0.05, "observed": 0.0,
             "passed": True, "samples": 240},
            {"name": "session_continuity", "route": None, "limit": 0, "observed": 0,
             "passed": True, "samples": 240},
        ],
        "outcome": outcome,
    }


def _timeline(seconds: int, share_new: Any, *, routes: tuple[str, ...] = ("catalog", "cart"),
              errors_at: Any = None, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for t in range(seconds):
        by_route = {}
        for route in routes:
            n = rng.randint(8, 14)
            new = round(n * share_new(route, t))
            by_route[route] = {"legacy": n - new, "new": new}
        requests = sum(v["legacy"] + v["new"] for v in by_route.values())
        errors = errors_at(t) if errors_at else (1 if rng.random() < 0.05 else 0)
        out.append({"t": t, "requests": requests, "errors": errors,
                    "p50_ms": 20 + rng.random() * 6, "p99_ms": 120 + rng.random() * 60,
                    "fallbacks": 1 if rng.random() < 0.03 else 0, "by_route": by_route})
    return out


def _totals(timeline: list[dict[str, Any]]) -> dict[str, Any]:
    requests = sum(p["requests"] for p in timeline)
    errors = sum(p["errors"] for p in timeline)
    return {"requests": requests, "errors": errors,
            "error_rate": errors / requests if requests else 0.0, "p50_ms": 22.5,
            "p99_ms": 171.0, "fallbacks": sum(p["fallbacks"] for p in timeline)}


def _integrity(failures: list[str] | None = None) -> dict[str, Any]:
    return {"users": 20, "checks": [
        {"name": "session continuity", "passed": True, "detail": "20 users stayed logged in",
         "failures": []},
        {"name": "carts match", "passed": not failures, "detail": "each user's model vs the shop",
         "failures": failures or []},
        {"name": "orders: none missing, none twice", "passed": True,
         "detail": "41 placed, 41 in the orders table", "failures": []},
    ]}


def _report(kind: str, name: str, duration: float, result: str, stages: list[dict[str, Any]],
            events: list[dict[str, Any]], timeline: list[dict[str, Any]],
            integrity: dict[str, Any], drill: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"kind": kind, "plan": {"name": name, "users": 20},
            "started_at": "2025-05-01T10:00:00Z", "finished_at": "2025-05-01T10:01:00Z",
            "duration_s": duration, "result": result, "stages": stages, "events": events,
            "timeline": timeline, "integrity": integrity, "totals": _totals(timeline),
            "drill": drill}


def passing() -> dict[str, Any]:
    """Three stages over 60 s; ``orders`` is named by a stage but never gets traffic."""
    def share(route: str, t: int) -> float:
        if route == "catalog":
            return 0.0 if t < 20 else 0.5 if t < 40 else 1.0
        return 0.0 if t < 40 else 0.25

    stages = [_stage("baseline", 0, 20, []),
              _stage("catalog canary", 20, 40, [("catalog", "canary", 50)]),
              _stage("catalog new, cart canary", 40, 60,
                     [("catalog", "new", None), ("cart", "canary", 25),
                      ("orders", "canary", 25)])]
    events = [{"t": 0.0, "kind": "stage", "detail": "baseline"},
              {"t": 20.0, "kind": "stage", "detail": "catalog canary"},
              {"t": 40.0, "kind": "stage", "detail": "catalog new, cart canary"},
              {"t": 45.0, "kind": "fault", "detail": "slow new instance n1 by 200 ms"},
              {"t": 50.0, "kind": "fault_end", "detail": "n1 back to normal"}]
    return _report("rehearsal", "cutover catalog then cart", 60.0, "passed", stages, events,
                   _timeline(60, share), _integrity())


def failing_with_rollback() -> dict[str, Any]:
    """The second stage breaches its error gate at 33 s and rolls back to the first."""
    def share(route: str, t: int) -> float:
        return 0.5 if route == "cart" and 20 <= t < 34 else 0.0

    stages = [_stage("baseline", 0, 20, []),
              _stage("cart canary", 20, 34, [("cart", "canary", 50)], outcome="breached",
                     error_observed=0.084),
              _stage("final", 34, 40, [], outcome="skipped", error_observed=None,
                     p99_observed=None)]
    events = [{"t": 0.0, "kind": "stage", "detail": "baseline"},
              {"t": 20.0, "kind": "stage", "detail": "cart canary"},
              {"t": 28.0, "kind": "fault", "detail": "stop new instance n1"},
              {"t": 33.0, "kind": "breach", "detail": "error_rate 8.4% > 1%"},
              {"t": 33.5, "kind": "rollback", "detail": "cart back to legacy"}]
    timeline = _timeline(40, share, errors_at=lambda t: 3 if 28 <= t < 34 else 0)
    return _report("rehearsal", "cart canary with a fault", 40.0, "failed", stages, events,
                   timeline, _integrity(["user u7: cart had 2 items, shop shows 1"]))


def drill() -> dict[str, Any]:
    """Everything on new, then the rollback at 20 s."""
    def share(route: str, t: int) -> float:
        return 1.0 if t < 20 else 0.0

    events = [{"t": 0.0, "kind": "stage", "detail": "all routes on new"},
              {"t": 20.0, "kind": "drill", "detail": "every route back to legacy"},
              {"t": 20.0, "kind": "kill_switch", "detail": "on"}]
    stages = [_stage("on new", 0, 20, [("catalog", "new", None), ("cart", "new", None)]),
              _stage("rolled back", 20, 30, [("catalog", "legacy", None),
                                             ("cart", "legacy", None)])]
    stages[1]["gates"].append({"name": "rollback_s", "route": None, "limit": 2.0,
                               "observed": 0.84, "passed": True, "samples": 1})
    return _report("drill", "rollback drill", 30.0, "passed", stages, events,
                   _timeline(30, share), _integrity(),
                   drill={"rollback_s": 0.84, "last_new_request_s": 20.7, "users_logged_out": 0,
                          "models_changed": 0, "rows_lost": 0, "rows_duplicated": 0})


def empty() -> dict[str, Any]:
    """A run that recorded nothing, with optional fields missing altogether."""
    return {"kind": "rehearsal", "plan": {}, "started_at": "2025-05-01T10:00:00Z",
            "duration_s": 0.0, "result": "failed", "stages": [], "events": [], "timeline": [],
            "totals": {"requests": 0, "errors": 0, "error_rate": float("nan")}}


def long_run(seconds: int = 5000) -> dict[str, Any]:
    """Thousands of seconds: the page must bucket them to draw."""
    def share(route: str, t: int) -> float:
        return min(1.0, t / seconds * 2) if route == "catalog" else 0.0

    stages = [_stage("ramp", 0, seconds / 2, [("catalog", "canary", 50)]),
              _stage("hold", seconds / 2, seconds, [("catalog", "new", None)])]
    events = [{"t": 0.0, "kind": "stage", "detail": "ramp"},
              {"t": seconds / 2, "kind": "stage", "detail": "hold"},
              {"t": seconds * 0.7, "kind": "fault", "detail": "stop Redis"},
              {"t": seconds * 0.72, "kind": "fault_end", "detail": "Redis back"}]
    return _report("rehearsal", "long soak", float(seconds), "passed", stages, events,
                   _timeline(seconds, share), _integrity())


def hostile() -> dict[str, Any]:
    """Markup in every free-text field: it must come out as text, never as markup."""
    report = passing()
    report["plan"]["name"] = HOSTILE
    report["events"].append({"t": 30.0, "kind": "fault", "detail": HOSTILE})
    report["stages"][1]["name"] = HOSTILE
    report["integrity"]["checks"][1]["failures"] = [HOSTILE]
    for point in report["timeline"]:
        point["by_route"][HOSTILE] = {"legacy": 1, "new": 1}
    return report
