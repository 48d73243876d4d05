"""Where the gateway's CPU goes: py-spy on the gateway under the benchmark's load.

    .venv/bin/pip install py-spy      # a tool, not a project dependency
    python -m bench.profile --scenario A --seconds 10
    python -m bench.profile --scenario H --seconds 10   # the hot path (nginx upstream)

Starts the same stack as ``bench.run``, drives one scenario through the
gateway with the load generator, records the gateway with ``py-spy record
--format raw`` (collapsed stacks, idle frames excluded) and prints the
functions with the most self time (leaf samples). Scenario H profiles the
gateway of ``bench.hotpath`` (both backends played by nginx), route ``cart``
at legacy with the user's session: the proxy's own work, not the upstream's.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import tempfile
from pathlib import Path

from bench import hotpath, loadgen, spy
from bench.rig import Login, Rig, pid, wait_for_stage
from bench.run import PATH, REDIS_URL, choose_cores, drop_keys


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.splitlines()[0])
    p.add_argument("--scenario", choices=("A", "B", "S", "H"), default="A",
                   help="A: cart routed to legacy, B: cart routed to new, S: cart at shadow, "
                        "H: cart at legacy with nginx as the upstream (the hot path)")
    p.add_argument("--log-level", default="info", help="the profiled gateway's log level "
                   "(A, B, S; H uses the stack's)")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    p.add_argument("--native", action="store_true", help="include C frames (py-spy --native)")
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--output", type=Path, default=None, help="raw collapsed stacks file")
    p.add_argument("--redis-url", default=REDIS_URL)
    return p.parse_args(argv)


def _record(rig: Rig, url: str, headers: dict[str, str], gateway_pid: int,
            args: argparse.Namespace, output: Path) -> spy.Profile:
    spec = loadgen.LoadSpec(url, headers, args.connections, 3.0, rig.cores.other,
                            loadgen.available())
    loadgen.run(spec)  # warm-up
    spec = dataclasses.replace(spec, duration_s=args.seconds + 2)
    return spy.record(gateway_pid, loadgen.command(spec), spec.duration_s, args.seconds,
                      output, rate=args.rate, native=args.native, core=rig.cores.other)


def _profile(rig: Rig, login: Login, args: argparse.Namespace, workdir: Path,
             output: Path) -> spy.Profile:
    headers = {"Cookie": login.cookie}
    if args.scenario == "H":
        hot = hotpath.HotPath(rig, login, workdir / "hot")
        with hot.running(), hot.gateway() as (url, admin, gw, _):
            wait_for_stage(admin, "cart", "legacy")
            return _record(rig, url + hotpath.CART, headers, gw, args, output)
    stage = {"A": "legacy", "B": "new", "S": "shadow"}[args.scenario]
    if stage != "legacy":
        rig.set_stage("cart", stage)
    with rig.gateway(args.log_level) as (url, admin, proc):
        wait_for_stage(admin, "cart", stage)
        return _record(rig, url + PATH, headers, pid(proc), args, output)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if spy.py_spy() is None:
        raise SystemExit("py-spy not found: .venv/bin/pip install py-spy")
    cores = choose_cores()
    workdir = Path(tempfile.mkdtemp(prefix="strangler-profile-"))
    output = args.output or workdir.with_suffix(".collapsed.txt")
    rig = Rig(workdir / "stack", args.redis_url, cores).start()
    try:
        profile = _profile(rig, rig.login(), args, workdir, output)
    finally:
        rig.stop()
        drop_keys(args.redis_url, rig.stack.prefix)
        shutil.rmtree(workdir, ignore_errors=True)
    level = "the stack's" if args.scenario == "H" else args.log_level
    print(f"scenario {args.scenario}, gateway log {level}: {profile.total} non-idle samples "
          f"in {args.seconds:g} s at {args.rate}/s; raw stacks in {output}")
    for pct, count, name in profile.top(args.top):
        print(f"{pct:6.2f}%  {count:6d}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
