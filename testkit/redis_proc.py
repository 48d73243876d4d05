"""A private redis-server on a free port, for tests that stop and restart Redis."""

from __future__ import annotations

import shutil
from pathlib import Path

from .net import free_port, port_open, wait_until
from .procs import Proc


class PrivateRedis:
    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not on PATH; make prereqs installs it")
        self.port = free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        self.proc = Proc("redis", [binary, "--port", str(self.port), "--bind", "127.0.0.1",
                                   "--save", "", "--appendonly", "no", "--dir", str(workdir)],
                         workdir)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        self.proc.start()
        wait_until(lambda: port_open(self.port), timeout=10, what="private redis up")
        return self

    def stop(self) -> None:
        """Kill it: with no persistence, it comes back empty."""
        self.proc.kill()

    def pause(self) -> None:
        """Hang it (SIGSTOP): unreachable, but its data survives ``resume``."""
        self.proc.pause()

    def resume(self) -> None:
        self.proc.resume()
