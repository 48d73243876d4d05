"""py-spy on a running process while a load runs: collapsed stacks and self time.

    .venv/bin/pip install py-spy      # a tool, not a project dependency
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Profile:
    leaves: Counter[str]
    """Leaf frame (function and file) -> samples: self time."""
    total: int
    seconds: float
    rate: int
    output: Path

    def top(self, n: int) -> list[tuple[float, int, str]]:
        """(percent of non-idle samples, samples, function) for the ``n`` largest."""
        return [(round(100 * count / max(self.total, 1), 2), count, name)
                for name, count in self.leaves.most_common(n)]


def py_spy() -> str | None:
    local = Path(sys.executable).with_name("py-spy")
    return str(local) if local.exists() else shutil.which("py-spy")


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


def record(pid: int, load: list[str], load_seconds: float, seconds: float, output: Path,
           *, rate: int = 250, native: bool = False, core: int | None = None) -> Profile:
    """Start ``load`` (argv, runs ``load_seconds``), record ``pid`` for ``seconds`` with
    ``py-spy record --format raw`` (idle frames excluded), wait for the load to end."""
    tool = py_spy()
    if tool is None:
        raise RuntimeError("py-spy not found: .venv/bin/pip install py-spy")
    argv = [tool, "record", "--pid", str(pid), "--format", "raw", "--rate", str(rate),
            "--duration", str(round(seconds)), "--output", str(output),
            *(["--native"] if native else [])]
    if core is not None and shutil.which("taskset"):
        argv = ["taskset", "-c", str(core), *argv]  # not on the profiled process's core
    running = subprocess.Popen(load, stdout=subprocess.DEVNULL)
    try:
        subprocess.run(argv, check=True, capture_output=True)
    finally:
        running.wait(timeout=load_seconds + 30)
    leaves, total = self_time(output.read_text())
    return Profile(leaves, total, seconds, rate, output)
