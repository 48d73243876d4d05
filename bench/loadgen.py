"""Drives the load generator: ``wrk`` when installed, else ``bench.pyload``.

Either runs as its own process, pinned with ``taskset`` to the load core, and
reports one ``BENCH_JSON`` line: completed requests, errors, latency
percentiles (closed loop, so no coordinated-omission correction).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LUA = Path(__file__).with_name("wrk_report.lua")


@dataclass(frozen=True)
class LoadSpec:
    url: str
    headers: dict[str, str]
    connections: int
    duration_s: float
    core: int | None
    tool: str = "wrk"
    """``wrk`` or ``python`` (bench.pyload)."""
    rate: float | None = None
    """Open loop at this many requests per second (always ``bench.pyload``: wrk cannot)."""


@dataclass(frozen=True)
class LoadResult:
    requests: int
    duration_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: dict[str, int]
    command: str

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def available() -> str:
    return "wrk" if shutil.which("wrk") else "python"


def describe(tool: str) -> str:
    if tool != "wrk":
        return f"python load generator (bench.pyload, aiohttp) on Python {sys.version.split()[0]}"
    out = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    return (out.stdout or out.stderr).splitlines()[0].strip()


def command(spec: LoadSpec) -> list[str]:
    headers = [arg for k, v in spec.headers.items() for arg in ("-H", f"{k}: {v}")]
    duration = max(1, round(spec.duration_s))
    if spec.rate:
        argv = [sys.executable, "-m", "bench.pyload", "--url", spec.url, *headers,
                "-c", str(spec.connections), "-d", str(duration), "--rate", f"{spec.rate:g}"]
    elif spec.tool == "wrk":
        argv = ["wrk", "-t1", f"-c{spec.connections}", f"-d{duration}s", "--latency",
                "-s", str(LUA), *headers, spec.url]
    else:
        argv = [sys.executable, "-m", "bench.pyload", "--url", spec.url, *headers,
                "-c", str(spec.connections), "-d", str(duration)]
    if spec.core is not None and shutil.which("taskset"):
        argv = ["taskset", "-c", str(spec.core), *argv]
    return argv


def run(spec: LoadSpec) -> LoadResult:
    argv = command(spec)
    out = subprocess.run(argv, capture_output=True, text=True, check=False,
                         timeout=spec.duration_s + 60)
    data = _parse(out.stdout)
    if out.returncode != 0 or data is None:
        raise RuntimeError(f"load generator failed ({out.returncode}): {out.stderr or out.stdout}")
    return LoadResult(
        requests=int(data["requests"]), duration_s=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000, p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000, max_ms=data["max_us"] / 1000,
        errors={k: int(v) for k, v in data["errors"].items()},
        command=_redacted(argv))


def _parse(stdout: str) -> dict[str, Any] | None:
    for line in stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            parsed: dict[str, Any] = json.loads(line.removeprefix("BENCH_JSON "))
            return parsed
    return None


def _redacted(argv: list[str]) -> str:
    """The command as run, with session cookies and tokens elided."""
    shown = []
    for arg in argv:
        name, sep, _ = arg.partition(": ")
        shown.append(f"'{name}: …'" if sep and name.lower() in
                     ("cookie", "x-strangler-identity") else arg)
    return " ".join(shown)
