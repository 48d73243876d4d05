"""One measured window: warm up, snapshot, load, snapshot, divide by requests."""

from __future__ import annotations

import resource
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench import loadgen, rig, sysstat
from bench.redisstats import CommandCounter

REDIS_SLACK = 0.25
"""Commands per request tolerated above a row's expectation during the warm-up check:
commandstats is server-wide (flag polls, anyone else using the server)."""


@dataclass(frozen=True)
class Target:
    scenario: str
    name: str
    kind: str
    """``direct``, ``plain``, ``lean`` (the lean proxy), ``nginx`` (nginx as reverse proxy)
    or ``gateway``."""
    url: str
    headers: dict[str, str]
    measured_pid: int
    """The proxy process; for ``direct`` the upstream itself. CPU is counted over its
    process tree (nginx's worker, the gateway's workers)."""
    upstream_pid: int
    admin_url: str | None = None
    expect_backend: str | None = None
    rate: float | None = None
    """Open loop at this many requests per second; None: closed loop (the bench's load)."""
    side_pid: int | None = None
    """Another process whose CPU per request is reported (the new instance receiving
    shadow copies)."""
    worker_admin_urls: tuple[str, ...] = ()
    """Per-worker admin listeners (``--workers N``): served counts are their sum."""
    expect_route: str = "cart"
    expect_body: bytes | None = None
    """The exact answer expected (scenario H's fixed upstream); None: the user's cart."""
    max_redis_per_req: float | None = None
    """Checked over the warm-up: more Redis commands per request than this (plus
    ``REDIS_SLACK``) means the setup is wrong (a session push or pull per request) and
    stops the run."""


@dataclass(frozen=True)
class Settings:
    duration_s: float
    warmup_s: float
    connections: int
    load_core: int | None
    tool: str


@dataclass
class Row:
    scenario: str
    target: str
    kind: str
    requests: int
    window_s: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: dict[str, int]
    cpu_us_per_req: float
    """The measured process: proxy (gateway or plain proxy), or the upstream for direct."""
    upstream_cpu_us_per_req: float
    redis_cpu_us_per_req: float
    loadgen_cpu_us_per_req: float
    redis_cmds_per_req: float
    redis_cmds: dict[str, float]
    core_busy_pct: list[float]
    unattributed_cpu_pct: float
    """Busy CPU in the window not charged to any process above (softirq, other processes)."""
    load_command: str
    served: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    rate: float | None = None
    side_cpu_us_per_req: float | None = None
    shadow: dict[str, float] = field(default_factory=dict)
    """Shadow comparisons (and noise comparisons) the gateway counted in the window."""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class _Snap:
    measured: float
    side: float
    upstream: float
    redis: float
    children: float
    cores: sysstat.CoreTimes
    commands: Counter[str]


class Meter:
    def __init__(self, counter: CommandCounter, settings: Settings) -> None:
        self.counter = counter
        self.settings = settings
        self.redis_pid = counter.server_pid()

    def measure(self, target: Target) -> Row:
        check_response(target)
        self._warm_up(target)
        served_before = _served_now(target)
        shadow_before = _shadow_now(target)
        before = self._snapshot(target)
        result = loadgen.run(self._spec(target, self.settings.duration_s))
        commands = self.counter.delta(before.commands)
        after = self._snapshot(target)
        row = _row(target, result, before, after, commands)
        if target.side_pid:
            row.side_cpu_us_per_req = round((after.side - before.side)
                                            / max(result.requests, 1) * 1e6, 1)
        row.rate = target.rate
        row.served = _served(served_before, _served_now(target))
        row.shadow = _delta(shadow_before, _shadow_now(target))
        row.notes = _served_notes(target, row)
        return row

    def _warm_up(self, target: Target) -> None:
        """The warm-up doubles as the setup check: a gateway row whose requests are not all
        served by the expected route and backend, or that costs more Redis commands than
        expected, stops the run before any number is taken."""
        served_before = _served_now(target)
        commands_before = self.counter.snapshot()
        warm = loadgen.run(self._spec(target, self.settings.warmup_s))
        commands = self.counter.delta(commands_before)
        if warm.error_count or not warm.requests:
            raise RuntimeError(f"{target.scenario}/{target.name}: warm-up errors {warm.errors}")
        problems = _setup_problems(target, warm.requests, _served(served_before,
                                                                   _served_now(target)))
        per_req = sum(commands.values()) / warm.requests
        if target.max_redis_per_req is not None \
                and per_req > target.max_redis_per_req + REDIS_SLACK:
            problems.append(f"{per_req:.2f} Redis commands per request (expected at most "
                            f"{target.max_redis_per_req:g}): {dict(commands.most_common(6))}")
        if problems:
            raise RuntimeError(f"{target.scenario}/{target.name}: wrong setup, not measured: "
                               + "; ".join(problems))

    def _spec(self, target: Target, duration: float) -> loadgen.LoadSpec:
        return loadgen.LoadSpec(target.url, target.headers, self.settings.connections,
                                duration, self.settings.load_core, self.settings.tool,
                                target.rate)

    def _snapshot(self, target: Target) -> _Snap:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return _Snap(
            measured=sysstat.tree_cpu_s(target.measured_pid),
            side=sysstat.tree_cpu_s(target.side_pid) if target.side_pid else 0.0,
            upstream=sysstat.tree_cpu_s(target.upstream_pid),
            redis=sysstat.process_cpu_s(self.redis_pid),
            children=children.ru_utime + children.ru_stime,
            cores=sysstat.core_times(),
            commands=self.counter.snapshot(),
        )


def check_response(target: Target) -> None:
    """One request before any load: the logged-in user's cart (or the exact fixed answer),
    or the setup is wrong."""
    if target.expect_body is not None:
        status, raw = rig.get_bytes(target.url, target.headers)
        if status != 200 or raw != target.expect_body:
            raise RuntimeError(f"{target.scenario}/{target.name}: expected the fixed answer "
                               f"({len(target.expect_body)} bytes), got {status} {raw!r:.300}")
        return
    status, body = rig.get_json(target.url, target.headers)
    items = body.get("items") if isinstance(body, dict) else None
    lines = {i["product_id"]: i["qty"] for i in items or []}
    if status != 200 or lines != rig.CART_ITEMS:
        raise RuntimeError(f"{target.scenario}/{target.name}: expected the user's cart, "
                           f"got {status} {body!r:.300}")


def _served_now(target: Target) -> dict[tuple[str, str, str], float] | None:
    if target.worker_admin_urls:
        total: Counter[tuple[str, str, str]] = Counter()
        for url in target.worker_admin_urls:
            total.update(rig.served_counts(url))
        return dict(total)
    return rig.served_counts(target.admin_url) if target.admin_url else None


def _shadow_now(target: Target) -> dict[str, float] | None:
    return rig.shadow_counts(target.admin_url) if target.admin_url else None


def _delta(before: dict[str, float] | None, after: dict[str, float] | None
           ) -> dict[str, float]:
    if before is None or after is None:
        return {}
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0)}


def _served_notes(target: Target, row: Row) -> list[str]:
    """For gateway rows: did the gateway serve every request from the expected backend?"""
    return _setup_problems(target, row.requests, row.served)


def _setup_problems(target: Target, requests: int, served: dict[str, float]) -> list[str]:
    if target.expect_backend is None or not (target.admin_url or target.worker_admin_urls):
        return []
    expected = f"{target.expect_route}/{target.expect_backend}/200"
    notes = [f"gateway served {k} x{v:g} in the window" for k, v in served.items()
             if k != expected]
    if served.get(expected, 0) < requests:
        notes.append(f"gateway counted {served.get(expected, 0):g} {expected} "
                     f"for {requests} completed requests")
    return notes


def _row(target: Target, result: loadgen.LoadResult, before: _Snap, after: _Snap,
         commands: Counter[str]) -> Row:
    n = max(result.requests, 1)
    measured = after.measured - before.measured
    upstream = after.upstream - before.upstream
    redis_cpu = after.redis - before.redis
    loadgen_cpu = after.children - before.children
    charged = (measured + redis_cpu + loadgen_cpu + (after.side - before.side)
               + (0.0 if target.kind == "direct" else upstream))
    busy = after.cores.busy_s_since(before.cores)
    window = result.duration_s
    ncores = len(after.cores.busy)
    return Row(
        scenario=target.scenario, target=target.name, kind=target.kind,
        requests=result.requests, window_s=round(window, 3), rps=round(result.rps, 1),
        p50_ms=round(result.p50_ms, 3), p90_ms=round(result.p90_ms, 3),
        p99_ms=round(result.p99_ms, 3), max_ms=round(result.max_ms, 3), errors=result.errors,
        cpu_us_per_req=round(measured / n * 1e6, 1),
        upstream_cpu_us_per_req=round(upstream / n * 1e6, 1),
        redis_cpu_us_per_req=round(redis_cpu / n * 1e6, 1),
        loadgen_cpu_us_per_req=round(loadgen_cpu / n * 1e6, 1),
        redis_cmds_per_req=round(sum(commands.values()) / n, 3),
        redis_cmds={k: round(v / n, 3) for k, v in commands.most_common()},
        core_busy_pct=after.cores.busy_pct_since(before.cores),
        unattributed_cpu_pct=round(100 * max(busy - charged, 0.0) / (window * ncores), 1)
        if window else 0.0,
        load_command=result.command,
    )


def _served(before: dict[tuple[str, str, str], float] | None,
            after: dict[tuple[str, str, str], float] | None) -> dict[str, float]:
    if before is None or after is None:
        return {}
    out = {}
    for key, value in after.items():
        delta = value - before.get(key, 0.0)
        if delta:
            out["/".join(key)] = delta
    return out
