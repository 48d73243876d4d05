"""One gateway process from start to exit: signals, reload, graceful stop.

    SIGTERM, SIGINT  graceful stop: readyz answers 503, ``gateway.shutdown.drain_s``
                     later the listeners close, requests in flight finish (up to
                     ``gateway.shutdown.timeout_s``), then pools and Redis close
    SIGHUP           reload config.yaml (``gateway.runtime.reload``): applied live, or
                     refused with the old config still serving

A worker of ``strangler gateway --workers N`` (see ``gateway.runtime.workers``) binds the
shared ports with SO_REUSEPORT, tells its supervisor it is ready through an
inherited pipe, asks the supervisor to pass an admin-API reload on to its
siblings, and stops by itself if the supervisor disappears.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
from collections.abc import Callable

from gateway.observe import log
from gateway.runtime.app import Gateway
from gateway.runtime.workers import WorkerRole
from gateway.settings import Config

_log = log.get("gateway")
_YOUNG_THRESHOLD = 10_000
"""Allocations between two young-generation collections (CPython's default: 700)."""


def _settle_heap() -> None:
    """Once started, what the process holds lives as long as it does: frozen out of the
    cyclic collector's sight (``gc.freeze``), so a full collection under load scans
    only what requests made, not every module, model and route. Young collections
    run less often: a request allocates a few hundred objects, nearly all freed by
    reference counting; the collector only has cycles to find. Here, not in
    ``Gateway.start``: a process that hosts gateways among other things (the tests)
    keeps its own collector settings."""
    gc.collect()
    gc.freeze()
    young, middle, old = gc.get_threshold()
    gc.set_threshold(max(young, _YOUNG_THRESHOLD), middle, old)


async def serve(cfg: Config, *, load: Callable[[], Config] | None = None,
                worker: WorkerRole | None = None) -> None:
    """Run one gateway process until SIGTERM or SIGINT."""
    gateway = Gateway(cfg, load=load, reuse_port=worker is not None,
                      worker_admin=worker.admin if worker else None)
    if worker is not None and gateway.reloader is not None:
        gateway.reloader.notify = lambda: _tell_supervisor(worker)
    await gateway.start()
    _settle_heap()
    if worker is not None and worker.ready_fd is not None:
        os.write(worker.ready_fd, b"ready\n")
        os.close(worker.ready_fd)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[object]] = set()

    def on_stop(sig: signal.Signals) -> None:
        if not stop.is_set():
            _log.info("stop_requested", signal=sig.name)
            stop.set()

    def on_hup() -> None:
        if gateway.reloader is None:
            _log.warning("config_reload_refused", trigger="sighup",
                         reason="not started from a config file")
            return
        task = asyncio.create_task(gateway.reloader.reload("sighup"))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_stop, sig)
    loop.add_signal_handler(signal.SIGHUP, on_hup)
    if worker is not None:
        tasks.add(asyncio.create_task(_watch_supervisor(worker, stop)))
    await stop.wait()
    for task in tasks:
        task.cancel()
    await gateway.stop(drain_s=gateway.cfg.gateway.shutdown.drain_s)


def _tell_supervisor(worker: WorkerRole) -> None:
    # Only the process that started us: an orphan's parent is init.
    if os.getppid() == worker.supervisor_pid:
        os.kill(worker.supervisor_pid, signal.SIGHUP)


async def _watch_supervisor(worker: WorkerRole, stop: asyncio.Event) -> None:
    """A worker whose supervisor died (SIGKILL, OOM) stops gracefully, not orphaned:
    the supervisor holds the write end of the lifeline, so its death reads as EOF."""
    if worker.lifeline_fd is None:
        return
    loop = asyncio.get_running_loop()
    gone = asyncio.Event()
    loop.add_reader(worker.lifeline_fd, gone.set)
    try:
        await gone.wait()
    finally:
        loop.remove_reader(worker.lifeline_fd)
    _log.warning("supervisor_gone", supervisor_pid=worker.supervisor_pid)
    stop.set()
