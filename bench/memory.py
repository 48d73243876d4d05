"""Scenario H's memory rows: a proxy's RSS at rest, and what an idle connection adds.

A proxy in front of a monolith's users holds many more connections than it
has requests in flight: browsers keep theirs open between clicks. So besides
CPU per request, what one idle keep-alive connection costs in memory decides
how many a process can hold. Right after the proxy's measured rows (warm, no
load), its RSS is read, then ``bench.idle_clients`` opens idle connections in
steps (each made one request and sits idle) and the RSS is read again at each:

    KiB per idle connection = (RSS with N open - RSS at rest) / N

RSS is ``VmRSS`` from /proc, summed over the process tree (nginx's master and
worker; the Python proxies are one process each).
"""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from bench import sysstat

STEP_TIMEOUT_S = 180.0
"""The most one step may take: 5,000 connections at a few hundred a second, on a
machine someone else may be using."""


@dataclass(frozen=True)
class Step:
    wanted: int
    """Idle connections this step asked for (cumulative)."""
    connections: int
    """Idle connections open (answered 200, not closed by the proxy) when RSS was read."""
    rss_kib: int


@dataclass(frozen=True)
class Memory:
    """One proxy's memory figures."""

    target: str
    rest_kib: int
    steps: tuple[Step, ...]
    notes: tuple[str, ...] = ()
    """Connections that failed or that the proxy closed: the figures count only those
    open, and say so here."""

    def per_connection_kib(self, step: Step) -> float | None:
        if not step.connections:
            return None
        return round((step.rss_kib - self.rest_kib) / step.connections, 2)

    def as_dict(self) -> dict[str, Any]:
        return {"target": self.target, "rest_kib": self.rest_kib, "notes": list(self.notes),
                "steps": [{"wanted": s.wanted, "connections": s.connections,
                           "rss_kib": s.rss_kib,
                           "kib_per_connection": self.per_connection_kib(s)}
                          for s in self.steps]}

    def summary(self) -> str:
        """One line for the terminal while the run goes on."""
        steps = ", ".join(f"{s.connections} idle {s.rss_kib / 1024:.1f} MiB "
                          f"({_per(self.per_connection_kib(s))} KiB/conn)" for s in self.steps)
        return f"rest {self.rest_kib / 1024:.1f} MiB, {steps}"


def _per(kib: float | None) -> str:
    return "-" if kib is None else f"{kib:+.2f}"


def measure(target: str, pid: int, url: str, headers: dict[str, str], steps: Sequence[int],
            core: int | None, log: Path) -> Memory:
    """RSS of ``pid``'s tree at rest, then with each step's idle connections to ``url``."""
    rest = sysstat.tree_rss_kib(pid)
    argv = [sys.executable, "-m", "bench.idle_clients", "--url", url,
            *[arg for k, v in headers.items() for arg in ("-H", f"{k}: {v}")],
            "--steps", ",".join(str(n) for n in steps)]
    if core is not None and shutil.which("taskset"):
        argv = ["taskset", "-c", str(core), *argv]
    measured: list[Step] = []
    with log.open("ab") as err:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=err, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    lines = _lines(proc.stdout)
    try:
        for wanted in steps:
            status = _status(lines, proc, log)
            measured.append(Step(wanted, status["open"], sysstat.tree_rss_kib(pid)))
            proc.stdin.write("\n")
            proc.stdin.flush()
        final = _status(lines, proc, log)  # after the last reading: closed meanwhile?
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return Memory(target, rest, tuple(measured), tuple(_problems(final)))


def _lines(stream: IO[str]) -> queue.Queue[str]:
    """The helper's stdout, line by line, readable with a deadline."""
    out: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:
            out.put(line)
        out.put("")

    threading.Thread(target=pump, daemon=True).start()
    return out


def _status(lines: queue.Queue[str], proc: subprocess.Popen[str], log: Path) -> dict[str, Any]:
    """The helper's next IDLE_JSON line: its step is complete, every connection answered."""
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        if not line:
            raise RuntimeError(f"idle clients exited ({proc.wait()}); see {log}")
        if line.startswith("IDLE_JSON "):
            status: dict[str, Any] = json.loads(line.removeprefix("IDLE_JSON "))
            return status
    raise TimeoutError(f"idle clients: no step completed in {STEP_TIMEOUT_S:g} s; see {log}")


def _problems(final: dict[str, Any]) -> list[str]:
    out = []
    if final["failed"]:
        out.append(f"connections that failed, not counted: {final['failed']}")
    if final["closed"]:
        out.append(f"{final['closed']} idle connections closed by the proxy while held "
                   "(each step counts those still open when its RSS was read)")
    return out
