"""Entry point: ``python -m bench.run`` (``make bench``).

Starts a real stack (one legacy node, one new instance, one gateway), then for
two scenarios -- A: ``GET /api/cart`` routed to legacy, B: the same routed to
new -- measures the direct upstream, a plain aiohttp proxy and the gateway
(log level info, then warning); S: the same legacy-served GET with the route
at stage ``legacy`` and then at ``shadow``, under the same closed-loop load and
under an open-loop fixed rate below capacity; H: the hot path, nginx standing in
for both backends so the proxy is the bottleneck (``bench.hotpath``: direct,
nginx proxy, plain proxy, gateway; ``--workers``; added latency at half load; a
py-spy profile). Prints the tables and writes ``bench/out/latest.{json,md}``
(``--write-results``: also scenario H's section of ``bench/RESULTS.md``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import redis

from bench import hotpath, loadgen, nginx, report, sysstat
from bench.measure import Meter, Row, Settings, Target
from bench.redisstats import CommandCounter
from bench.rig import APPS, NOTES, Cores, Login, Rig, pid, wait_for_stage
from testkit.redis_proc import PrivateRedis

REDIS_URL = os.environ.get("STRANGLER_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
GATEWAY_LOG_LEVELS = ("info", "warning")
PATH = "/api/cart"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds per row")
    p.add_argument("--warmup", type=float, default=3.0, help="discarded seconds before each row")
    p.add_argument("--connections", type=int, default=32, help="concurrent connections")
    p.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto",
                   help="auto: wrk when installed, else the Python generator")
    p.add_argument("--redis-url", default=None,
                   help="a shared Redis to use (default: a private redis-server the bench "
                        f"starts, so commandstats count only the stack's commands; "
                        f"without redis-server on PATH: {REDIS_URL})")
    p.add_argument("--keep", action="store_true", help="keep the stack's directory and logs")
    p.add_argument("--scenarios", default=None,
                   help="which scenarios, comma-separated (default: A,B,S,H; H with --app "
                        "notes)")
    p.add_argument("--shadow-rate", type=float,
                   help="open-loop rate of scenario S (default: 10%% of the closed-loop rate "
                        "measured with the route at legacy, so that legacy's and new's work "
                        "together leave the shared upstream core idle most of the time)")
    p.add_argument("--half-rate", type=float,
                   help="open-loop rate of scenario H (default: half the gateway's saturating "
                        "rate, legacy route with a session, measured in the same run)")
    p.add_argument("--workers", type=int, default=2,
                   help="scenario H: gateway --workers N against one worker (default: 2)")
    p.add_argument("--idle-connections", type=_steps, default=(1000, 5000),
                   help="scenario H's memory rows: RSS of each proxy with this many idle "
                        "keep-alive connections open, cumulative steps (default: 1000,5000; "
                        "0: no memory rows)")
    p.add_argument("--profile-seconds", type=float, default=10.0,
                   help="scenario H: py-spy on the gateway for this long (0: no profile)")
    p.add_argument("--rounds", type=int, default=1,
                   help="run scenario H this many times, interleaved, and keep each row's "
                        "median round (this machine's run-to-run spread is +-30 %%)")
    p.add_argument("--app", choices=sorted(APPS), default="shop",
                   help="the monolith behind the gateway: the demo shop, or the second "
                        "monolith (tests/apps/notes: its own cookie, string user ids, another "
                        "session profile; scenario H only)")
    p.add_argument("--write-results", action="store_true",
                   help="also rewrite scenario H's section of bench/RESULTS.md from this run")
    return p.parse_args(argv)


def _steps(text: str) -> tuple[int, ...]:
    """``1000,5000`` -> (1000, 5000); ``0`` -> (): ascending positive counts."""
    steps = tuple(int(x) for x in text.split(",") if int(x))
    if list(steps) != sorted(set(steps)) or any(n < 0 for n in steps):
        raise argparse.ArgumentTypeError("ascending positive counts, e.g. 1000,5000 (or 0)")
    return steps


def choose_cores() -> Cores:
    available = sysstat.cores()
    if len(available) < 2:
        return Cores(proxy=None, other=None)
    return Cores(proxy=available[0], other=available[1])


def pinning_text(cores: Cores, private_redis: bool) -> str:
    if cores.proxy is None:
        return "none (fewer than 2 cores available)"
    redis_text = ("private to the bench (started by it, no other client)" if private_redis
                  else "shared, not started by the bench")
    return (f"proxy process (gateway or plain proxy) on core {cores.proxy}; load generator, "
            f"legacy node and new instance on core {cores.other}; redis-server ({redis_text}) "
            "unpinned")


# ---------------------------------------------------------------- scenarios
def scenario_a(rig: Rig, meter: Meter, login: Login) -> Iterator[Row]:
    """Legacy-routed GET with a logged-in session."""
    node_id, node = rig.legacy_node
    upstream = pid(node)
    headers = {"Cookie": login.cookie}
    yield meter.measure(Target("A legacy", f"direct (legacy {node_id})", "direct",
                               rig.legacy_url() + PATH, headers, upstream, upstream))
    with rig.plain_proxy(rig.legacy_url()) as (url, proc):
        yield meter.measure(Target("A legacy", "plain proxy", "plain", url + PATH, headers,
                                   pid(proc), upstream))
    yield from _gateways(rig, meter, "A legacy", headers, upstream, "legacy")


def scenario_b(rig: Rig, meter: Meter, login: Login) -> Iterator[Row]:
    """New-routed GET with a logged-in session (identity JWT toward new)."""
    rig.set_stage("cart", "new")
    wait_for_stage(rig.stack.admin_url(), "cart", "new")
    inst_id, inst = rig.new_instance
    upstream = pid(inst)
    direct_headers = rig.identity_headers(login)
    yield meter.measure(Target("B new", f"direct (new {inst_id})", "direct",
                               rig.new_url() + PATH, direct_headers, upstream, upstream))
    with rig.plain_proxy(rig.new_url()) as (url, proc):
        yield meter.measure(Target("B new", "plain proxy", "plain", url + PATH, direct_headers,
                                   pid(proc), upstream))
    yield from _gateways(rig, meter, "B new", {"Cookie": login.cookie}, upstream, "new")


def _gateways(rig: Rig, meter: Meter, scenario: str, headers: dict[str, str],
              upstream: int, backend: str) -> Iterator[Row]:
    for level in GATEWAY_LOG_LEVELS:
        with rig.gateway(level) as (url, admin, proc):
            wait_for_stage(admin, "cart", backend)
            yield meter.measure(Target(scenario, f"gateway (log {level})", "gateway",
                                       url + PATH, headers, pid(proc), upstream,
                                       admin_url=admin, expect_backend=backend))


def scenario_s(rig: Rig, meter: Meter, login: Login, rate: float | None) -> Iterator[Row]:
    """The same legacy-served GET with route ``cart`` at stage legacy, then at shadow.

    Both loads measure both stages back to back: the closed loop of the other
    rows (saturating, so p50 follows throughput) and an open loop at a fixed
    rate well below capacity (latency without queueing). The new instance's
    CPU is reported too: at shadow it answers every copy.
    """
    node = pid(rig.legacy_node[1])
    new = pid(rig.new_instance[1])
    gateway = pid(rig.stack.gateways[0])
    admin = rig.stack.admin_url()
    headers = {"Cookie": login.cookie}
    closed: Row | None = None
    for load in ("closed", "open"):
        if load == "open":
            rate = rate or (round(0.1 * closed.rps) if closed else None)
            if not rate:
                break
        for stage in ("legacy", "shadow"):
            rig.set_stage("cart", stage)
            wait_for_stage(admin, "cart", stage)
            name = f"cart at {stage}" + (f", {rate:g}/s" if load == "open" else "")
            row = meter.measure(Target(report.SHADOW_SCENARIO, name, "gateway",
                                       rig.stack.url() + PATH, headers, gateway, node,
                                       admin_url=admin, expect_backend="legacy",
                                       rate=rate if load == "open" else None, side_pid=new))
            if load == "closed" and stage == "legacy":
                closed = row
            yield row
    rig.set_stage("cart", "legacy")
    wait_for_stage(admin, "cart", "legacy")


# ---------------------------------------------------------------- context
def background(counter: CommandCounter, seconds: float = 3.0) -> tuple[float, list[float]]:
    """With the stack idle: Redis commands per second (flag polls, other users of the
    server) and how busy each core is (anyone else running on the machine)."""
    before, cores = counter.snapshot(), sysstat.core_times()
    time.sleep(seconds)
    busy = sysstat.core_times().busy_pct_since(cores)
    return round(sum(counter.delta(before).values()) / seconds, 1), busy


def machine() -> dict[str, Any]:
    model = next((line.split(":", 1)[1].strip()
                  for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "unknown")
    return {"cpu_model": model, "cores": os.cpu_count(), "kernel": platform.release(),
            "python": platform.python_version(), "aiohttp": aiohttp.__version__,
            "loadavg_before": Path("/proc/loadavg").read_text().split()[:3]}


def git_describe() -> str:
    out = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True,
                         text=True, check=False, cwd=Path(__file__).resolve().parents[1])
    return out.stdout.strip() or "unknown"


def meta(args: argparse.Namespace, cores: Cores, settings: Settings) -> dict[str, Any]:
    """Taken before the stack starts (load average, time), completed after the run."""
    return {
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench.run", *sys.argv[1:]]),
        "git": git_describe(), "machine": machine(),
        "pinning": pinning_text(cores, args.private_redis),
        "load": {"tool": settings.tool, "version": loadgen.describe(settings.tool),
                 "connections": settings.connections, "duration_s": settings.duration_s,
                 "warmup_s": settings.warmup_s, "threads": 1},
        "redis_url": args.redis_url, "redis_background_cmds_per_s": None,
        "idle_busy_pct": None,
        "app": args.app,
        "request": (f"GET {PATH}, logged-in session (alice, 2 cart lines)" if args.app == "shop"
                    else f"GET {NOTES.path}, logged-in session (ann: prefs, tags, visits, "
                         "draft), notes session profile"),
        "pinning_h": hotpath.PINNING.format(proxy=cores.proxy, other=cores.other),
        "nginx": nginx.version() if nginx.available() else None,
    }


def headline(info: dict[str, Any]) -> str:
    load = info["load"]
    return (f"load generator: {load['version']}; {load['connections']} connections, "
            f"{load['duration_s']:g} s measured after {load['warmup_s']:g} s warm-up per row\n"
            f"pinning: {info['pinning']}")


@contextmanager
def running(rig: Rig, workdir: Path, keep: bool, redis_url: str) -> Iterator[Rig]:
    ok = False
    try:
        yield rig.start()
        ok = True
    finally:
        rig.stop()
        drop_keys(redis_url, rig.stack.prefix)
        if ok and not keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"stack directory and logs kept in {workdir}", file=sys.stderr)


def drop_keys(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        for key in client.scan_iter(match=f"{prefix}*", count=500):
            client.delete(key)
    finally:
        client.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.scenarios = args.scenarios or ("A,B,S,H" if args.app == "shop" else "H")
    others = {x.strip().upper() for x in args.scenarios.split(",")} - {"H"}
    if args.app != "shop" and others:
        raise SystemExit(f"--app {args.app} measures scenario H only (--scenarios H); "
                         f"{', '.join(sorted(others))} are the shop's")
    workdir = Path(tempfile.mkdtemp(prefix="strangler-bench-"))
    server: PrivateRedis | None = None
    args.private_redis = args.redis_url is None and shutil.which("redis-server") is not None
    if args.private_redis:
        server = PrivateRedis(workdir / "redis").start()
        args.redis_url = server.url
    args.redis_url = args.redis_url or REDIS_URL
    try:
        return bench(args, workdir)
    finally:
        if server is not None:
            server.stop()


def bench(args: argparse.Namespace, workdir: Path) -> int:
    cores = choose_cores()
    tool = loadgen.available() if args.loadgen == "auto" else args.loadgen
    settings = Settings(args.duration, args.warmup, args.connections, cores.other, tool)
    counter = CommandCounter(args.redis_url)
    info = meta(args, cores, settings)
    print(headline(info), file=sys.stderr)
    rows: list[Row] = []
    extras = hotpath.Extras()
    with running(Rig(workdir / "stack", args.redis_url, cores, APPS[args.app]), workdir,
                 args.keep,
                 args.redis_url) as rig:
        login = rig.login()
        info["redis_background_cmds_per_s"], info["idle_busy_pct"] = background(counter)
        if max(info["idle_busy_pct"]) > report.NOISY_PCT:
            print(f"WARNING: the machine is busy before the run ({info['idle_busy_pct']}% per "
                  "core with the stack idle): results will be disturbed", file=sys.stderr)
        meter = Meter(counter, settings)
        wanted = {x.strip().upper() for x in args.scenarios.split(",")}
        scenarios: list[Callable[[], Iterator[Row]]] = []
        if "A" in wanted:
            scenarios.append(lambda: scenario_a(rig, meter, login))
        if "S" in wanted:  # before B, which leaves the route at new
            scenarios.append(lambda: scenario_s(rig, meter, login, args.shadow_rate))
        if "H" in wanted:  # before B too: needs the route at legacy
            if not nginx.available():
                raise SystemExit("scenario H needs nginx (apt-get install -y nginx)")
            for round_ in range(args.rounds):  # profile and memory in the last round only
                last = round_ == args.rounds - 1
                opts = hotpath.Options(args.half_rate, args.profile_seconds if last else 0,
                                       args.workers, args.idle_connections if last else ())
                scenarios.append(lambda opts=opts, round_=round_: hotpath.run(  # type: ignore[misc]
                    rig, meter, login, opts, extras, workdir / f"hot-{round_}"))
        if "B" in wanted:
            scenarios.append(lambda: scenario_b(rig, meter, login))
        for row in itertools.chain.from_iterable(gen() for gen in scenarios):
            rows.append(row)
            print(f"  {row.scenario:11} {row.target:28} {row.rps:8.0f} req/s  "
                  f"p50 {row.p50_ms:.2f} ms  CPU {row.cpu_us_per_req:.0f} us/req",
                  file=sys.stderr)
    counter.close()
    extras.rounds = report.split_rounds(rows) if args.rounds > 1 else []
    rows = report.median_rounds(rows)
    items = report.ratios(rows)
    print(headline(info) + "\n\n" + report.results_table(rows) + "\n\n"
          + report.ratio_table(items))
    pairs = report.shadow_pairs(rows)
    if pairs:
        print("\nshadow stage: the same route at legacy, then at shadow\n"
              + report.shadow_table(pairs))
    hot = report.hot_section(info, rows, items, extras) if report.hot_rows(rows) else None
    if hot is not None:
        print("\n" + hot)
    for line in report.notes(rows):
        print(f"NOTE {line}")
    out = report.write(info, rows, items, extras, hot)
    print(f"\nwritten: {out / 'latest.json'}, {out / 'latest.md'}")
    if args.write_results:
        if hot is None:
            print("--write-results: no scenario H rows in this run; RESULTS.md unchanged",
                  file=sys.stderr)
        else:
            print(f"written: {report.write_results(hot)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
