"""``strangler rehearse`` and ``strangler drill rollback``, run as a user runs them.

The example plans in plans/ run here at a tenth of their length (``--scale
0.1``) against a stack each run starts itself (``--stack --free-ports``):
the cutover must pass, the fault plan must breach its gate and roll back by
itself (in report.json and in the migration ledger), the drill must time
its rollback. One run goes against a stack this test started, and the test
deletes an order behind the users' backs: the integrity checks must catch it.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from strangler.rehearse.plan import read
from tests.e2e.test_report_browser import CHARTS, Dom, assert_series, chromium, marker_x
from tests.support.net import await_until
from tests.support.stack import Stack

ROOT = Path(__file__).resolve().parents[2]
PLANS = ROOT / "plans"


def strangler(*args: str, config: Path = ROOT / "config.yaml",
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "strangler", "--config", str(config), *args],
                          cwd=ROOT, env={**os.environ, **(env or {})}, capture_output=True,
                          text=True, timeout=240, check=False)


def run(out: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    done = strangler(*args, "--out", str(out), "--no-live")
    log = f"exit {done.returncode}\nstdout:\n{done.stdout[-4000:]}\nstderr:\n{done.stderr[-4000:]}"
    report = json.loads((out / "report.json").read_text()) if (out / "report.json").exists() \
        else {}
    return done.returncode, report, log


def check(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in report["integrity"]["checks"] if c["name"] == name)


def test_the_cutover_plan_passes_and_nothing_is_lost(tmp_path: Path) -> None:
    code, report, log = run(tmp_path / "out", "rehearse",
                            str(PLANS / "cutover-catalog-then-cart.yaml"),
                            "--stack", "--free-ports", "--scale", "0.1", "--users", "12")
    assert code == 0, log
    assert report["kind"] == "rehearsal" and report["result"] == "passed"
    assert [s["outcome"] for s in report["stages"]] == ["held"] * 3
    assert {c["name"]: c["passed"] for c in report["integrity"]["checks"]} == {
        "session_continuity": True, "cart_integrity": True, "orders_integrity": True,
        "orders_table": True}
    last = report["stages"][2]
    assert {c["route"] for c in last["changes"]} == {"cart", "checkout"}  # one group
    assert {g["name"] for g in last["gates"]} >= {"error_rate", "p99_ms", "fallback_rate",
                                                  "session_continuity"}
    served = {}
    for second in report["timeline"]:
        for route, counts in second["by_route"].items():
            for backend, n in counts.items():
                served[(route, backend)] = served.get((route, backend), 0) + n
    assert served[("catalog", "new")] > 0 and served[("cart", "new")] > 0, served
    assert report["totals"]["requests"] > 200
    assert "orders placed by the users" in check(report, "orders_table")["detail"]
    assert (tmp_path / "out" / "report.html").exists()


def test_the_fault_plan_breaches_its_gate_and_rolls_back_by_itself(tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, report, log = run(out, "rehearse", str(PLANS / "fault-triggers-rollback.yaml"),
                            "--stack", "--free-ports", "--scale", "0.1")
    assert code == 1, log
    assert report["result"] == "failed"
    assert [s["outcome"] for s in report["stages"]] == ["held", "breached", "skipped"], log
    failed = [g for g in report["stages"][1]["gates"] if not g["passed"]]
    assert [(g["name"], g["route"]) for g in failed] == [("p99_ms", "cart")]
    kinds = [e["kind"] for e in report["events"]]
    assert kinds.index("fault") < kinds.index("breach") < kinds.index("rollback"), kinds
    assert "fault_end" in kinds
    rollback = next(e for e in report["events"] if e["kind"] == "rollback")
    assert "cart, checkout -> legacy" in rollback["detail"]
    # a gate failed, but nobody lost anything on the way
    assert all(c["passed"] for c in report["integrity"]["checks"]), report["integrity"]
    # the report this run wrote, opened in headless Chromium: the charts are drawn
    # from the real timeline, with the fault, the breach and the rollback marked
    page = out / "report.html"
    dom = Dom(chromium("--dump-dom", page.as_uri(), profile=tmp_path / "profile").stdout)
    assert dom.body.get("data-charts") == "drawn" and dom.render_error_hidden
    traffic = dom.charts["chart-traffic"]
    series = assert_series(traffic, len(traffic.all("path", "series")))  # each a real shape
    assert {("catalog", "new"), ("cart", "new"), ("cart", "legacy"), ("checkout", "new"),
            ("checkout", "legacy")} <= {(s["data-route"], s["data-backend"]) for s in series}
    for name in CHARTS:
        drawn_kinds = [k for k, _ in marker_x(dom.charts[name])]
        assert drawn_kinds == kinds, (name, drawn_kinds)
    history = strangler("flags", "history", "cart", config=out / "stack" / "config.yaml")
    assert history.returncode == 0, history.stderr
    newest = history.stdout.splitlines()[0]
    assert "new -> legacy" in newest and "rollback of stage 'cart and checkout on new'" in newest


def test_the_rollback_drill_is_timed_and_loses_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, report, log = run(out, "drill", "rollback", "--plan",
                            str(PLANS / "rollback-drill.yaml"), "--stack", "--free-ports",
                            "--scale", "0.1", "--users", "12")
    assert code == 0, log
    assert report["kind"] == "drill"
    drill = report["drill"]
    assert drill["rollback_s"] is not None and drill["rollback_s"] <= 3, drill
    assert drill["last_new_request_s"] is not None  # the --stack gateway sends the header
    assert (drill["users_logged_out"], drill["models_changed"], drill["rows_lost"],
            drill["rows_duplicated"]) == (0, 0, 0, 0)
    gate = next(g for g in report["stages"][1]["gates"] if g["name"] == "rollback_s")
    assert gate["passed"] and gate["observed"] == drill["rollback_s"]
    history = strangler("flags", "history", "--limit", "100",
                        config=out / "stack" / "config.yaml").stdout
    assert "kill switch" in history.lower() or "kill" in history, history
    for route in ("catalog", "auth", "cart", "checkout", "orders"):
        assert f"{route}: new -> legacy" in history, history


def test_bad_plans_and_faults_without_a_stack_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nstages:\n  - {name: a, duration_s: 5, routes: {kart: new}}\n"
                   "  - {name: b, duration_s: 5, gates: {p99_ms: {cart: 0}}}\n")
    done = strangler("rehearse", str(bad))
    assert done.returncode == 2
    assert "stages[1].gates.p99_ms.cart: must be > 0" in done.stderr
    done = strangler("rehearse", str(PLANS / "fault-triggers-rollback.yaml"))
    assert done.returncode == 2
    assert "--stack" in done.stderr


async def _delete_first_order(database_url: str) -> int:
    engine = create_async_engine(database_url)
    try:
        async def first() -> int | None:
            # Not while it is the only one: SQLite gives a deleted highest rowid to the
            # next insert, and the check would see that order changed, not missing.
            async with engine.connect() as conn:
                row = (await conn.execute(text("SELECT MIN(id), COUNT(*) FROM orders"))).one()
                return int(row[0]) if row[1] >= 2 else None

        oid = await await_until(first, timeout=60, interval=0.1, what="two orders placed")
        async with engine.begin() as conn:
            for sql in ("DELETE FROM order_items WHERE order_id = :id",
                        "DELETE FROM idempotency_keys WHERE order_id = :id",
                        "DELETE FROM orders WHERE id = :id"):
                await conn.execute(text(sql), {"id": oid})
        return oid
    finally:
        await engine.dispose()


async def test_an_order_deleted_behind_the_users_backs_is_caught(stack: Stack,
                                                                 tmp_path: Path) -> None:
    # the shop's declared login, journeys and checks, from the cutover plan; only adding
    # to carts, checking out and listing orders, by 8 quick users
    shop = read(PLANS / "cutover-catalog-then-cart.yaml")
    weights = {"add_to_cart": 2, "checkout": 2, "list_orders": 1}
    for name, journey in shop["journeys"].items():
        journey["weight"] = weights.get(name, 0)
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump({
        **{k: shop[k] for k in ("login", "model", "journeys", "checks")},
        "name": "integrity probe",
        "users": {**shop["users"], "count": 8, "think_ms": {"min": 20, "max": 80},
                  "ramp_s": 0},
        "stages": [{"name": "on legacy", "duration_s": 4},
                   {"name": "cart on new", "duration_s": 4, "routes": {"cart": "new"}}]}))
    out = tmp_path / "out"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "strangler", "--config", str(stack.config_path), "rehearse",
        str(plan), "--admin", stack.admin_url(), "--gateway", stack.url(),
        "--token-env", "STRANGLER_ADMIN_TOKEN", "--out", str(out), "--no-live",
        cwd=ROOT, env={**os.environ, **stack.env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        deleted = await _delete_first_order(stack.database_url)
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 120)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    log = f"stdout:\n{stdout.decode()[-3000:]}\nstderr:\n{stderr.decode()[-3000:]}"
    assert proc.returncode == 1, log
    report = json.loads((out / "report.json").read_text())
    table = check(report, "orders_table")
    assert not table["passed"]
    assert any(f"order #{deleted} " in f and "missing" in f for f in table["failures"]), table
    assert not check(report, "orders_integrity")["passed"]  # its user saw it gone, too
