"""Where the gateway's CPU goes: py-spy on the gateway under the benchmark's load.

    .venv/bin/pip install py-spy      # a tool, not a project dependency
    python -m bench.profile --scenario A --seconds 10

Starts the same stack as ``bench.run``, drives one scenario through the
gateway with the load generator, records the gateway with ``py-spy record
--format raw`` (collapsed stacks, idle frames excluded) and prints the
functions with the most self time (leaf samples).
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from bench import loadgen
from bench.rig import Rig, pid, wait_for_stage
from bench.run import PATH, REDIS_URL, choose_cores, drop_keys


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.splitlines()[0])
    p.add_argument("--scenario", choices=("A", "B", "S"), default="A",
                   help="A: cart routed to legacy, B: cart routed to new, S: cart at shadow")
    p.add_argument("--log-level", default="info", help="the profiled gateway's log level")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    p.add_argument("--native", action="store_true", help="include C frames (py-spy --native)")
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--output", type=Path, default=None, help="raw collapsed stacks file")
    p.add_argument("--redis-url", default=REDIS_URL)
    return p.parse_args(argv)


def py_spy() -> str:
    local = Path(sys.executable).with_name("py-spy")
    found = str(local) if local.exists() else shutil.which("py-spy")
    if not found:
        raise SystemExit("py-spy not found: .venv/bin/pip install py-spy")
    return found


def self_time(raw: str) -> tuple[Counter[str], int]:
    """Leaf frame -> samples, from py-spy's collapsed ``a;b;c count`` lines."""
    leaves: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        leaf = stack.rsplit(";", 1)[-1]
        name, _, where = leaf.partition(" (")
        leaves[f"{name} ({where.rsplit(':', 1)[0]})" if where else name] += int(count)
        total += int(count)
    return leaves, total


def record(gateway_pid: int, spec: loadgen.LoadSpec, args: argparse.Namespace,
           output: Path) -> str:
    argv = [py_spy(), "record", "--pid", str(gateway_pid), "--format", "raw",
            "--rate", str(args.rate), "--duration", str(round(args.seconds)),
            "--output", str(output), *(["--native"] if args.native else [])]
    load = subprocess.Popen(loadgen.command(spec), stdout=subprocess.DEVNULL)
    try:
        subprocess.run(argv, check=True, capture_output=True)
    finally:
        load.wait(timeout=spec.duration_s + 30)
    return output.read_text()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cores = choose_cores()
    workdir = Path(tempfile.mkdtemp(prefix="strangler-profile-"))
    output = args.output or workdir.with_suffix(".collapsed.txt")
    rig = Rig(workdir / "stack", args.redis_url, cores).start()
    try:
        login = rig.login()
        stage = {"A": "legacy", "B": "new", "S": "shadow"}[args.scenario]
        if stage != "legacy":
            rig.set_stage("cart", stage)
        with rig.gateway(args.log_level) as (url, admin, proc):
            wait_for_stage(admin, "cart", stage)
            spec = loadgen.LoadSpec(url + PATH, {"Cookie": login.cookie}, args.connections,
                                    3.0, cores.other, loadgen.available())
            loadgen.run(spec)  # warm-up
            spec = dataclasses.replace(spec, duration_s=args.seconds + 2)
            raw = record(pid(proc), spec, args, output)
    finally:
        rig.stop()
        drop_keys(args.redis_url, rig.stack.prefix)
        shutil.rmtree(workdir, ignore_errors=True)
    leaves, total = self_time(raw)
    print(f"scenario {args.scenario}, gateway log {args.log_level}: {total} non-idle samples "
          f"in {args.seconds:g} s at {args.rate}/s; raw stacks in {output}")
    for name, count in leaves.most_common(args.top):
        print(f"{100 * count / max(total, 1):6.2f}%  {count:6d}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
