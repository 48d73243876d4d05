"""One child process of a local stack: started with its log file, waited on until it
answers, stopped, killed, paused and resumed -- the same for an app's nodes, its new
services, Redis and the gateway (``strangler demo``, ``rehearse --stack``, the tests).

Each child leads its own process group, so a signal reaches whatever it spawned too
(gunicorn's workers, npm's node).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


class ProcessError(RuntimeError):
    """A child exited or did not answer in time; the message ends with its log's tail."""


def http_ok(url: str) -> bool:
    """``url`` answers 2xx within half a second."""
    try:
        with urllib.request.urlopen(url, timeout=0.5) as resp:  # noqa: S310 (loopback only)
            return bool(200 <= resp.status < 300)
    except OSError:
        return False


@dataclass
class Process:
    """``ready_url`` (a 2xx answer) or ``probe`` says the child is ready; neither: at once."""

    name: str
    argv: list[str]
    log_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    ready_url: str | None = None
    cwd: Path | None = None
    probe: Callable[[], bool] | None = None
    popen: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(self.argv, cwd=self.cwd, env=env, stdout=log,
                                          stderr=subprocess.STDOUT, start_new_session=True)

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def ready(self) -> bool:
        if self.probe is not None:
            return self.probe()
        return self.ready_url is None or http_ok(self.ready_url)

    def _not_ready(self, started: float, timeout: float) -> None:
        if not self.alive():
            code = self.popen.returncode if self.popen is not None else "never started"
            raise ProcessError(f"{self.name} exited ({code}); last log lines:\n{self.tail()}")
        if time.monotonic() - started > timeout:
            where = f" at {self.ready_url}" if self.ready_url else ""
            raise ProcessError(f"{self.name} not ready{where} after {timeout:g} s; "
                               f"last log lines:\n{self.tail()}")

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until ready; ``ProcessError`` at once if it exits, or after ``timeout`` s."""
        started = time.monotonic()
        while not self.ready():
            self._not_ready(started, timeout)
            time.sleep(0.05)

    async def until_ready(self, within_s: float = 30.0) -> None:
        """``wait_ready`` for an event loop (the probe runs in a thread)."""
        started = time.monotonic()
        while not await asyncio.to_thread(self.ready):
            self._not_ready(started, within_s)
            await asyncio.sleep(0.05)

    def tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def signal(self, sig: signal.Signals) -> None:
        if self.alive() and self.popen is not None:
            os.killpg(self.popen.pid, sig)

    def kill(self) -> None:
        """SIGKILL: everything in the process's memory is gone, as in a crash."""
        self.signal(signal.SIGKILL)
        if self.popen is not None:
            self.popen.wait()

    def pause(self) -> None:
        """SIGSTOP: it keeps its sockets and answers nothing (a hung server)."""
        self.signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.signal(signal.SIGCONT)

    def terminate(self) -> None:
        """SIGTERM without waiting (``wait`` collects it); a paused child is woken to exit."""
        self.signal(signal.SIGTERM)
        self.signal(signal.SIGCONT)

    def wait(self, timeout: float = 10.0) -> None:
        """Until it has exited; SIGKILL if that takes longer than ``timeout``."""
        if self.popen is None:
            return
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it does not exit in time."""
        self.terminate()
        self.wait(timeout)
