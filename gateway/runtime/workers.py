"""``strangler gateway --workers N``: N gateway processes sharing one port.

The supervisor binds nothing and serves nothing. The caller first checks
what would make every worker fail -- the config, its secrets and signing key,
free ports (``check_ports``) -- and refuses to start, naming the key. Then the
supervisor starts N workers (``python -m strangler ... gateway --worker-index
i``); each binds the proxy and the admin port with SO_REUSEPORT, and the
kernel spreads new connections across them.

    start    every worker must report "ready" (through an inherited pipe)
             within ``start_timeout_s``; if one exits first, the others are
             stopped and the supervisor exits non-zero
    run      a worker that dies is restarted after a backoff (0.5 s, doubling
             to 30 s; back to 0.5 s once a worker has stayed up 30 s)
    SIGHUP   passed on to every worker: each re-reads config.yaml
    SIGTERM  passed on to every worker: each drains gracefully; the supervisor
    SIGINT   waits for them (SIGKILL after ``stop_grace_s``) and exits 0

The admin listener is shared too: ``/readyz``, ``/healthz``, the API and the
dashboard are answered by whichever worker the kernel picks (flags live in
Redis, so every worker answers alike). ``/metrics`` there is one worker's
view; ``--worker-admin-ports BASE`` gives worker i its own admin port BASE+i
for a per-worker scrape.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from gateway.observe import log
from gateway.settings import ConfigError, Listen

_log = log.get("workers")

READY_FD_ENV = "STRANGLER_WORKER_READY_FD"
LIFELINE_FD_ENV = "STRANGLER_WORKER_LIFELINE_FD"
SUPERVISOR_ENV = "STRANGLER_SUPERVISOR_PID"
_BACKOFF_FIRST_S, _BACKOFF_MAX_S, _STABLE_S = 0.5, 30.0, 30.0


@dataclass(frozen=True)
class WorkerRole:
    """What a worker process knows about its place among the others."""

    index: int
    supervisor_pid: int
    ready_fd: int | None = None
    lifeline_fd: int | None = None
    admin: Listen | None = None
    """This worker's own admin address (per-worker /metrics), besides the shared one."""


def role_from_env(index: int, admin: Listen | None) -> WorkerRole:
    ready, lifeline = (os.environ.pop(env, "") for env in (READY_FD_ENV, LIFELINE_FD_ENV))
    return WorkerRole(index, int(os.environ.pop(SUPERVISOR_ENV, "") or os.getppid()),
                      int(ready) if ready else None, int(lifeline) if lifeline else None,
                      admin)


def check_ports(listens: dict[str, Listen]) -> None:
    """Refuse, naming the key, a port that is taken or 0 (workers must share one port)."""
    for key, listen in listens.items():
        if listen.port == 0:
            raise ConfigError(f"{key}.port: --workers needs a fixed port, not 0")
        try:
            socket.create_server((listen.host, listen.port)).close()
        except OSError as exc:
            raise ConfigError(f"{key}: cannot listen on {listen.host}:{listen.port}: "
                              f"{exc.strerror}") from None


@dataclass
class _Slot:
    index: int
    proc: asyncio.subprocess.Process | None = None
    ready_at: float = 0.0
    failures: int = 0
    lifeline: tuple[int, int] | None = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None


class Supervisor:
    """Starts, watches, restarts and stops the workers; see the module docstring."""

    def __init__(self, count: int, argv: Callable[[int], list[str]], *,
                 stop_grace_s: float, start_timeout_s: float = 60.0) -> None:
        self._argv = argv
        self._slots = [_Slot(i) for i in range(count)]
        self._grace = stop_grace_s
        self._start_timeout = start_timeout_s
        self._stopping = asyncio.Event()

    async def run(self) -> int:
        """Start, supervise, stop; the exit code (0, or 1/2 when the start failed)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_stop, sig)
        loop.add_signal_handler(signal.SIGHUP, self._forward, signal.SIGHUP)
        try:
            return await self._run()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            for slot in self._slots:
                if slot.lifeline is not None:
                    os.close(slot.lifeline[0])
                    os.close(slot.lifeline[1])

    async def _run(self) -> int:
        failed = [(slot, rc) for slot, rc in zip(
            self._slots, await asyncio.gather(*(self._spawn(s) for s in self._slots)),
            strict=True) if rc is not None]
        if failed:
            _log.error("workers_start_failed", failed={s.index: rc for s, rc in failed},
                       reason="a worker exited or was not ready in time; stopping the rest")
            await self._terminate()
            return 2 if any(rc == 2 for _, rc in failed) else 1
        _log.info("workers_started", count=len(self._slots),
                  pids=[s.proc.pid for s in self._slots if s.proc])
        watchers = [asyncio.create_task(self._watch(s)) for s in self._slots]
        await self._stopping.wait()
        for task in watchers:
            task.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        await self._terminate()
        return 0

    async def _spawn(self, slot: _Slot) -> int | None:
        """Start the slot's worker; None once it is ready, else its exit code (-1: hung)."""
        read_end, write_end = os.pipe()
        if slot.lifeline is None:
            slot.lifeline = os.pipe()  # we keep the write end open for as long as we live
        env = {**os.environ, READY_FD_ENV: str(write_end),
               LIFELINE_FD_ENV: str(slot.lifeline[0]), SUPERVISOR_ENV: str(os.getpid())}
        try:
            proc = await asyncio.create_subprocess_exec(
                *self._argv(slot.index), env=env, pass_fds=(write_end, slot.lifeline[0]))
        finally:
            os.close(write_end)
        slot.proc = proc
        _log.info("worker_started", worker=slot.index, pid=proc.pid)
        # The read ends with "ready", or with EOF when the worker exits first.
        read = asyncio.get_running_loop().run_in_executor(None, os.read, read_end, 64)
        try:
            said = await asyncio.wait_for(asyncio.shield(read), self._start_timeout)
        except TimeoutError:
            _log.error("worker_not_ready", worker=slot.index, pid=proc.pid,
                       timeout_s=self._start_timeout)
            proc.kill()
            await proc.wait()
            said = await read  # EOF, now that the worker is gone
        finally:
            if read.done():
                os.close(read_end)
            else:  # cancelled while waiting: close once the reader thread lets go
                read.add_done_callback(lambda _: os.close(read_end))
        if said.startswith(b"ready"):
            slot.ready_at = time.monotonic()
            _log.info("worker_ready", worker=slot.index, pid=proc.pid)
            return None
        code = await proc.wait()
        return code if code != 0 else 1

    async def _watch(self, slot: _Slot) -> None:
        """Restart the slot's worker whenever it dies, with backoff, until stopping."""
        while True:
            assert slot.proc is not None
            code = await slot.proc.wait()
            if self._stopping.is_set():
                return
            if slot.ready_at and time.monotonic() - slot.ready_at >= _STABLE_S:
                slot.failures = 0
            delay = min(_BACKOFF_FIRST_S * 2 ** slot.failures, _BACKOFF_MAX_S)
            slot.failures += 1
            _log.warning("worker_exited", worker=slot.index, pid=slot.proc.pid,
                         returncode=code, signal=_signal_name(code), restart_in_s=delay)
            try:
                await asyncio.wait_for(self._stopping.wait(), delay)
                return
            except TimeoutError:
                pass
            slot.ready_at = 0.0
            result = await self._spawn(slot)
            if result is None:
                _log.info("worker_restarted", worker=slot.index, pid=slot.proc.pid,
                          attempt=slot.failures)
            else:
                _log.error("worker_restart_failed", worker=slot.index, returncode=result)

    def _on_stop(self, sig: signal.Signals) -> None:
        if not self._stopping.is_set():
            _log.info("workers_stopping", signal=sig.name)
            self._stopping.set()

    def _forward(self, sig: signal.Signals) -> None:
        pids = []
        for slot in self._slots:
            if slot.alive and slot.proc is not None:
                slot.proc.send_signal(sig)
                pids.append(slot.proc.pid)
        _log.info("signal_forwarded", signal=sig.name, pids=pids)

    async def _terminate(self) -> None:
        procs = [s.proc for s in self._slots if s.alive and s.proc is not None]
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        _, pending = await asyncio.wait(
            [asyncio.create_task(p.wait()) for p in procs], timeout=self._grace) \
            if procs else (set(), set())
        for proc in procs:
            if proc.returncode is None:
                _log.warning("worker_killed", pid=proc.pid, reason="did not stop in time",
                             grace_s=self._grace)
                proc.kill()
        await asyncio.gather(*pending, return_exceptions=True)
        _log.info("workers_stopped", count=len(procs))


def _signal_name(code: int) -> str | None:
    if code >= 0:
        return None
    try:
        return signal.Signals(-code).name
    except ValueError:
        return str(-code)
