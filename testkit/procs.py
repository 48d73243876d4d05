"""Real processes for end-to-end tests: started, waited on, killed, restarted.

``Proc`` is the product's ``strangler.procs.Process`` (what ``strangler demo`` and
``rehearse --stack`` run their children with) with the tests' habits: run from the
repository root, and ``start`` waits until the process answers its ready URL.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from strangler.procs import Process, http_ok

ROOT = Path(__file__).resolve().parents[1]

__all__ = ["ROOT", "Proc", "http_ok", "python_module"]


@dataclass
class Proc(Process):
    """One child process with its log file; ``start``/``kill``/``restart`` are explicit."""

    def __post_init__(self) -> None:
        if self.cwd is None:
            self.cwd = ROOT

    def start(self, timeout: float = 20.0) -> Proc:  # type: ignore[override]
        super().start()
        if self.ready_url:
            self.wait_ready(timeout)
        return self

    def restart(self, timeout: float = 20.0) -> Proc:
        self.kill()
        return self.start(timeout)


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]
