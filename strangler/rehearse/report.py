"""report.json, report.html and the closing summary.

The document (``build``) is what report_html.py draws and what a CI job
reads; its keys are a contract: kind, plan, started_at, finished_at,
duration_s, result, stages, events, timeline, integrity, totals, drill.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from flags.text import inert
from strangler.rehearse.report_html import write_html
from strangler.rehearse.stats import Recorder, summarize


def build(kind: str, plan: dict[str, Any], started: datetime, finished: datetime,
          duration_s: float, stages: list[dict[str, Any]], events: list[dict[str, Any]],
          timeline: list[dict[str, Any]], users: int, checks: list[dict[str, Any]],
          totals: dict[str, Any], drill: dict[str, Any] | None) -> dict[str, Any]:
    """The report document. Passed: every stage held and every integrity check passed."""
    passed = all(s["outcome"] == "held" for s in stages) and all(c["passed"] for c in checks)
    return {
        "kind": kind, "plan": plan, "started_at": _iso(started),
        "finished_at": _iso(finished), "duration_s": round(duration_s, 3),
        "result": "passed" if passed else "failed",
        "stages": [{k: v for k, v in s.items() if not k.startswith("_")} for s in stages],
        "events": events, "timeline": timeline,
        "integrity": {"users": users, "checks": checks},
        "totals": totals, "drill": drill,
    }


def _iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def timeline(recorder: Recorder, metric_seconds: dict[int, dict[str, Any]],
             end_s: float) -> list[dict[str, Any]]:
    """One entry per second: the users' view (requests, errors, latency) and the
    gateway's (/metrics deltas: fallbacks, requests by route and backend)."""
    users = recorder.per_second()
    out = []
    for t in range(int(end_s) + 1):
        s = users.get(t)
        m = metric_seconds.get(t, {})
        out.append({
            "t": t,
            "requests": s.requests if s else 0,
            "errors": s.errors if s else 0,
            "p50_ms": round(s.p50_ms, 2) if s else 0.0,
            "p99_ms": round(s.p99_ms, 2) if s else 0.0,
            "fallbacks": int(m.get("fallbacks", 0)),
            "by_route": m.get("by_route", {}),
        })
    return out


def totals(recorder: Recorder, fallbacks: float) -> dict[str, Any]:
    s = summarize(recorder.samples)
    return {"requests": s.requests, "errors": s.errors, "error_rate": round(s.error_rate, 5),
            "p50_ms": round(s.p50_ms, 2), "p99_ms": round(s.p99_ms, 2),
            "fallbacks": int(fallbacks)}


def write(report: dict[str, Any], out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "report.json"
    path.write_text(json.dumps(report, indent=2))
    written = [path]
    html = out_dir / "report.html"
    try:
        write_html(report, html)
        written.append(html)
    except Exception as exc:  # the report is written; a drawing problem must not hide it
        print(f"strangler: report.html not written: {exc}", file=sys.stderr)
    return written


def summary(report: dict[str, Any]) -> str:
    t = report["totals"]
    lines = [f"{report['kind']} '{report['plan']['name']}': {report['result'].upper()} "
             f"in {report['duration_s']:.1f} s -- {t['requests']} requests, "
             f"{t['errors']} errors ({t['error_rate']:.2%}), p50 {t['p50_ms']:.1f} ms, "
             f"p99 {t['p99_ms']:.1f} ms, {t['fallbacks']} fallbacks"]
    for st in report["stages"]:
        lines.append(f"  stage '{st['name']}': {st['outcome']}")
        for g in st["gates"]:
            label = f"{g['name']}.{g['route']}" if g["route"] else g["name"]
            seen = "n/a" if g["observed"] is None else f"{g['observed']:.4g}"
            unjudged = g["passed"] and g["observed"] is not None and g["observed"] > g["limit"]
            note = (f"; not judged: {g['samples']} requests, fewer than gates.min_requests"
                    if unjudged else "")
            lines.append(f"    {'ok  ' if g['passed'] else 'FAIL'} {label}: {seen} "
                         f"(limit {g['limit']:g}{note})")
    for c in report["integrity"]["checks"]:
        lines.append(f"  {'ok  ' if c['passed'] else 'FAIL'} {c['name']}: {c['detail']}")
        lines += [f"       {f}" for f in c["failures"][:5]]
    if report.get("drill"):
        d = report["drill"]
        lines.append(f"  drill: rollback {d['rollback_s']} s (gateway /metrics), last request "
                     f"served by new {d['last_new_request_s']} s after the call (users); "
                     f"{d['users_logged_out']} logged out, {d['models_changed']} models "
                     f"changed, {d['rows_lost']} rows lost, {d['rows_duplicated']} duplicated")
    return "\n".join(inert(line) for line in lines)  # a name from the plan stays on its line
