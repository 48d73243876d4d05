"""What the kernel says: per-process CPU time, per-core busy time, CPU pinning."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    """utime + stime of a whole process (all threads), in seconds, from /proc/<pid>/stat."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2:].split()  # the command name may contain spaces
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / CLK_TCK


@dataclass(frozen=True)
class CoreTimes:
    """Busy and total jiffies of each core (``cpu0``, ``cpu1``...) from /proc/stat."""

    busy: tuple[int, ...]
    total: tuple[int, ...]

    def busy_pct_since(self, before: CoreTimes) -> list[float]:
        out = []
        for b1, t1, b0, t0 in zip(self.busy, self.total, before.busy, before.total, strict=True):
            out.append(round(100.0 * (b1 - b0) / (t1 - t0), 1) if t1 > t0 else 0.0)
        return out

    def busy_s_since(self, before: CoreTimes) -> float:
        return (sum(self.busy) - sum(before.busy)) / CLK_TCK


def core_times() -> CoreTimes:
    busy, total = [], []
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if not name.startswith("cpu") or name == "cpu":
            continue
        nums = [int(v) for v in values[:8]]  # user nice system idle iowait irq softirq steal
        idle = nums[3] + nums[4]
        busy.append(sum(nums) - idle)
        total.append(sum(nums))
    return CoreTimes(tuple(busy), tuple(total))


def cores() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def pin(pid: int, cpus: set[int]) -> None:
    """Pin every thread of ``pid`` (threads started later inherit the mask)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            os.sched_setaffinity(int(task.name), cpus)
        except ProcessLookupError:
            continue


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its live descendants (nginx's workers, the gateway's workers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(raw[raw.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(children.get(current, ()))
    return out


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of ``pid`` and its live descendants (a child that exits in the window
    takes its time with it: the bench's processes keep theirs for the whole run)."""
    total = 0.0
    for member in process_tree(pid):
        try:
            total += process_cpu_s(member)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def rss_kib(pid: int) -> int:
    """Resident memory of a process (``VmRSS`` of /proc/<pid>/status), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid} (a zombie?)")


def tree_rss_kib(pid: int) -> int:
    """RSS of ``pid`` and its live descendants, summed (nginx: master and worker; pages
    they share are counted twice, a constant that cancels out in differences)."""
    total = 0
    for member in process_tree(pid):
        try:
            total += rss_kib(member)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total
