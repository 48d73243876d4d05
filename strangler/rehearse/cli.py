"""``strangler rehearse PLAN.yaml`` and ``strangler drill rollback``.

    strangler rehearse PLAN.yaml [--stack [--stack-file F] [--free-ports]]
                       [--admin URL --gateway URL --token-env VAR]
                       [--out DIR] [--scale F] [--users N] [--no-live]
    strangler drill rollback [--stack [--stack-file F] [--free-ports]] [--admin URL --gateway URL
                       --token-env VAR] [--users N] [--duration S] [--use-current]
                       [--max-rollback-s S] --plan FILE [--out DIR] [--no-live]

Without ``--stack`` the run goes against a running gateway: by default the
one config.yaml describes (``make demo``), with the admin token config.yaml
names. ``--stack`` starts the app's whole stack for the run, as its stack file
says (``stack.yaml`` next to the config, or ``--stack-file``), and stops it
after (faults need it: they stop and slow its processes).

Exit status: 0 every gate held and every integrity check passed; 1 a gate
breached or an integrity check failed; 2 the run could not be made as asked
(bad plan or usage, gateway or database unreachable, accounts refused).

The plan says what the app is: its login, its journeys, its integrity checks
(plan.py, plan_steps.py); nothing here knows a particular app.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

from gateway.settings import Config


def add_parsers(sub: Any) -> None:
    """Register ``rehearse`` and ``drill`` on the ``strangler`` sub-command parser."""
    reh = sub.add_parser("rehearse", help="run a cutover plan under load, with SLO gates")
    reh.add_argument("plan", type=Path, help="the plan (YAML; see plans/)")
    _common(reh)
    drill = sub.add_parser("drill", help="drills: 'rollback' sends every route back to legacy "
                           "under load, timed, and checks nothing was lost")
    drill.add_argument("drill", choices=("rollback",))
    drill.add_argument("--duration", type=_positive, default=30.0,
                       help="seconds: half on new, half after the rollback (default: 30)")
    drill.add_argument("--use-current", action="store_true",
                       help="keep the routes as they are before the rollback "
                            "(default: every route to new first)")
    drill.add_argument("--max-rollback-s", type=_positive, default=5.0,
                       help="gate: seconds until nothing is served by new (default: 5)")
    drill.add_argument("--plan", type=Path, required=True,
                       help="a drill plan (with a rollback_all stage, e.g. "
                       "plans/rollback-drill.yaml), or any plan: its login, journeys and "
                       "checks in the built-in two stages")
    _common(drill)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stack", action="store_true",
                   help="start the app's whole stack for this run (needed for faults)")
    p.add_argument("--stack-file", type=Path,
                   help="with --stack: how to start the app's processes (default: stack.yaml "
                        "next to the config file)")
    p.add_argument("--free-ports", action="store_true",
                   help="with --stack: free ports instead of config.yaml's")
    p.add_argument("--admin", help="admin URL of a running gateway (default: from config)")
    p.add_argument("--gateway", help="app URL of that gateway (default: from config)")
    p.add_argument("--token-env", help="environment variable holding the admin token "
                   "(default: gateway.admin_token of the config)")
    p.add_argument("--out", type=Path, help="report directory (default: ./rehearsal-<time>/)")
    p.add_argument("--scale", type=_positive, default=1.0,
                   help="multiply every duration of the plan (0.1: a quick run)")
    p.add_argument("--users", type=int, help="number of virtual users (overrides the plan)")
    p.add_argument("--no-live", action="store_true",
                   help="no live panel: a progress line every few seconds and each event")


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def _fail(message: str) -> int:
    print(f"strangler: {message}", file=sys.stderr)
    return 2


def run_rehearse(cfg: Config, args: argparse.Namespace) -> int:
    from strangler.rehearse.plan import PlanError, load

    try:
        plan = load(args.plan, cfg)
    except PlanError as exc:
        return _fail(str(exc))
    return _run(cfg, args, plan, "rehearsal")


def run_drill(cfg: Config, args: argparse.Namespace) -> int:
    from strangler.rehearse.drill import default_plan
    from strangler.rehearse.plan import PlanError, load

    try:
        plan = load(args.plan, cfg)
    except PlanError as exc:
        return _fail(str(exc))
    if not plan.is_drill:
        plan = default_plan(cfg, plan, args.users or 20, args.duration, args.use_current,
                            args.max_rollback_s)
    return _run(cfg, args, plan, "drill")


def _run(cfg: Config, args: argparse.Namespace, plan: Any, kind: str) -> int:
    from strangler.rehearse import report
    from strangler.rehearse.plan import PlanError

    try:
        plan = _adjust(plan, args)
    except PlanError as exc:
        return _fail(str(exc))
    if plan.faults and not args.stack:
        return _fail(f"{args.plan}: this plan injects faults ({len(plan.faults)}), which stop "
                     "and slow processes of the stack: run it with --stack")
    if args.stack_file and not args.stack:
        return _fail("--stack-file goes with --stack (it says how to start the stack)")
    if args.stack and (args.admin or args.gateway or args.token_env):
        return _fail("--stack starts its own gateway: drop --admin/--gateway/--token-env")
    out = args.out or Path(f"rehearsal-{time.strftime('%Y%m%d-%H%M%S')}")
    live = not args.no_live
    try:
        result = asyncio.run(_execute(cfg, args, plan, kind, out, live))
    except _Refused as exc:
        return _fail(str(exc))
    written = report.write(result, out)
    print(report.summary(result))
    print("report: " + ", ".join(str(p) for p in written))
    return 0 if result["result"] == "passed" else 1


def _adjust(plan: Any, args: argparse.Namespace) -> Any:
    from strangler.rehearse.plan import PlanError

    if args.scale != 1.0:
        plan = plan.scaled(args.scale)
    if args.users is not None:
        if not 1 <= args.users <= 2000:
            raise PlanError("--users: must be within 1..2000")
        plan = plan.with_users(args.users)
    return plan


class _Refused(Exception):
    """The run could not start; exit 2."""


async def _execute(cfg: Config, args: argparse.Namespace, plan: Any, kind: str, out: Path,
                   live: bool) -> dict[str, Any]:
    from strangler.rehearse.runner import Rehearsal, RunError
    from strangler.rehearse.stack import StackError, start_stack
    from strangler.stackfile import StackFileError

    stack = None
    if args.stack:
        print(f"starting the stack in {out / 'stack'} ...", file=sys.stderr)
        try:
            stack = await start_stack(Path(args.config), out / "stack", args.free_ports,
                                      args.stack_file)
        except (StackError, StackFileError, OSError) as exc:
            raise _Refused(f"--stack: {exc}") from None
    try:
        target = _target(cfg, args, plan, stack)
        return await Rehearsal(plan, target, kind, live).run()
    except RunError as exc:
        raise _Refused(str(exc)) from None
    finally:
        if stack is not None:
            await stack.stop()


def _target(cfg: Config, args: argparse.Namespace, plan: Any, stack: Any) -> Any:
    from strangler.rehearse.plan import PlanError, password
    from strangler.rehearse.runner import Target
    from strangler.shadow_cli import admin_url

    try:
        secret = password(plan.users)
    except PlanError as exc:
        raise _Refused(str(exc)) from None
    databases = {"stack": stack.database_url if stack is not None else cfg.database.url}
    for name, db in plan.databases.items():
        url = db.url or os.environ.get(db.url_env or "")
        if not url:
            raise _Refused(f"databases.{name}.url_env: ${db.url_env} is not set")
        databases[name] = url
    if stack is not None:
        return Target(stack.gateway_url, stack.admin_url, stack.admin_token, stack.config,
                      databases, secret, stack)
    if args.token_env:
        token = os.environ.get(args.token_env)
        if not token:
            raise _Refused(f"--token-env: ${args.token_env} is not set")
    else:
        token = cfg.gateway.admin_token.read()
        if not token:
            raise _Refused("no admin token: give --token-env VAR or set gateway.admin_token")
    listen = cfg.gateway.listen
    host = "127.0.0.1" if listen.host in ("", "0.0.0.0") else listen.host  # noqa: S104
    gateway = args.gateway or f"http://{host}:{listen.port}"
    return Target(gateway, args.admin or admin_url(cfg), token, cfg, databases, secret)
