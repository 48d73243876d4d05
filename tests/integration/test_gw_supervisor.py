"""gateway.runtime.workers.Supervisor with real child processes standing in for gateway workers.

A stand-in worker is a few lines of Python that follow the worker's side of the
protocol: write "ready" to the inherited pipe, then wait for SIGTERM.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from gateway.runtime.workers import Supervisor

WORKER = """
import os, signal, sys, time
index = int(sys.argv[1])
if index in {fail}:
    sys.exit(2)
os.write(int(os.environ["STRANGLER_WORKER_READY_FD"]), b"ready\\n")
open(sys.argv[2], "a").write(f"{{index}} {{os.getpid()}}\\n")
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while True:
    time.sleep(1)
"""


def _argv(tmp: Path, fail: set[int]) -> tuple[list[str], Path]:
    script, started = tmp / "worker.py", tmp / "started.txt"
    script.write_text(WORKER.format(fail=fail or "set()"))
    return [sys.executable, str(script)], started


def _running(pid: int) -> bool:
    try:
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


async def test_a_worker_that_cannot_start_stops_the_others_and_fails_the_start(
        tmp_path: Path) -> None:
    base, started = _argv(tmp_path, {1})  # worker 1 exits 2 at once, as on a bad config
    supervisor = Supervisor(2, lambda i: [*base, str(i), str(started)], stop_grace_s=10)
    assert await supervisor.run() == 2, "the worker's own exit code for a config error"
    pids = [int(line.split()[1]) for line in started.read_text().splitlines()]
    assert len(pids) == 1
    assert not any(_running(pid) for pid in pids), "the worker that started was stopped"


async def test_a_worker_that_never_says_ready_is_killed_and_fails_the_start(
        tmp_path: Path) -> None:
    script = tmp_path / "hang.py"
    script.write_text("import time\nwhile True:\n    time.sleep(1)\n")
    supervisor = Supervisor(1, lambda i: [sys.executable, str(script)], stop_grace_s=5,
                            start_timeout_s=1.0)
    assert await supervisor.run() == 1
    assert os.environ.get("STRANGLER_WORKER_READY_FD") is None, "nothing leaked to us"
