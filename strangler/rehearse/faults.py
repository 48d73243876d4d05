"""Faults a rehearsal injects into the stack it started, and undoes.

    stop_new     a new-service instance killed (or paused), restarted (resumed) after
    slow_new     every response of new instances delayed (the DelayProxy below)
    stop_legacy  a monolith node killed (its sessions in memory are gone) or paused
    stop_redis   the private Redis paused (default) or killed (it comes back empty)

``DelayProxy`` is a small TCP proxy the stack puts in front of each new
instance: the gateway's config names the proxy, so a delay can be switched
on and off at run time. It adds latency without changing anything else --
each chunk of a response leaves the proxy ``delay`` after it arrived,
pipelined, so two responses on one connection are not delayed twice. When
its instance is stopped the proxy stops listening too, so the gateway sees
a refused connection, exactly as it would without the proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from strangler.rehearse.plan import FaultSpec

if TYPE_CHECKING:
    from strangler.procs import Process
    from strangler.rehearse.stack import RunningStack

_PIECE = 64 * 1024


class DelayProxy:
    def __init__(self, listen_port: int, upstream_port: int, host: str = "127.0.0.1") -> None:
        self.host, self.port, self.upstream_port = host, listen_port, upstream_port
        self.delay_s = 0.0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._handle, self.host, self.port,
                                                      reuse_address=True, backlog=1024)

    async def stop_listening(self) -> None:
        """Refuse new connections and reset the open ones (a stopped instance)."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()

    def set_delay(self, ms: float) -> None:
        self.delay_s = ms / 1000

    async def close(self) -> None:
        await self.stop_listening()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection(self.host, self.upstream_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_w))
        try:
            await asyncio.gather(self._pipe(reader, up_w), self._delayed(up_r, writer))
        except (ConnectionError, OSError):
            pass
        finally:
            for w in (writer, up_w):
                self._writers.discard(w)
                w.close()

    @staticmethod
    async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        while data := await src.read(_PIECE):
            dst.write(data)
            await dst.drain()
        with contextlib.suppress(OSError, RuntimeError):
            dst.write_eof()

    async def _delayed(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def read() -> None:
            while data := await src.read(_PIECE):
                queue.put_nowait((loop.time() + self.delay_s, data))
            queue.put_nowait((loop.time() + self.delay_s, b""))

        reading = asyncio.create_task(read())
        try:
            while True:
                due, data = await queue.get()
                if (wait := due - loop.time()) > 0:
                    await asyncio.sleep(wait)
                if not data:
                    break
                dst.write(data)
                await dst.drain()
        finally:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, OSError):
                await reading
        with contextlib.suppress(OSError, RuntimeError):
            dst.write_eof()


class FaultError(Exception):
    """A fault could not be applied or undone."""


class FaultController:
    """Applies and undoes the plan's faults on the processes of a ``--stack`` run, by
    role (the legacy nodes, the new instances, Redis) -- whatever app the stack runs."""

    def __init__(self, stack: RunningStack) -> None:
        self.stack = stack

    def _targets(self, fault: FaultSpec) -> list[str]:
        pool = self.stack.legacy if fault.action == "stop_legacy" else self.stack.new
        if fault.target is not None:
            return [fault.target]
        return list(pool) if fault.action == "slow_new" else [next(iter(pool))]

    async def apply(self, fault: FaultSpec) -> str:
        targets = self._targets(fault) if fault.action != "stop_redis" else ["redis"]
        if fault.action == "slow_new":
            for t in targets:
                self.stack.proxies[t].set_delay(fault.delay_ms or 0)
            return f"slow_new: +{fault.delay_ms:g} ms on {', '.join(targets)}"
        for t in targets:
            proc = self._proc(fault.action, t)
            if fault.action == "stop_new" and fault.stop_mode == "kill":
                await self.stack.proxies[t].stop_listening()
            if fault.stop_mode == "kill":
                await asyncio.to_thread(proc.kill)
            else:
                proc.pause()
        verb = "killed" if fault.stop_mode == "kill" else "paused"
        return f"{fault.action}: {', '.join(targets)} {verb}"

    async def undo(self, fault: FaultSpec) -> str:
        targets = self._targets(fault) if fault.action != "stop_redis" else ["redis"]
        if fault.action == "slow_new":
            for t in targets:
                self.stack.proxies[t].set_delay(0)
            return f"slow_new ended on {', '.join(targets)}"
        for t in targets:
            proc = self._proc(fault.action, t)
            if fault.stop_mode == "pause":
                proc.resume()
                continue
            await self.stack.restart(proc)
            if fault.action == "stop_new":
                await self.stack.proxies[t].start()
        verb = "restarted" if fault.stop_mode == "kill" else "resumed"
        return f"{fault.action} ended: {', '.join(targets)} {verb}"

    def _proc(self, action: str, target: str) -> Process:
        if action == "stop_redis":
            return self.stack.redis
        return (self.stack.legacy if action == "stop_legacy" else self.stack.new)[target]


class FaultSchedule:
    """The plan's faults at their times, each undone after its ``duration_s`` -- or at
    the run's end, whichever comes first. A fault that cannot be applied or undone is
    reported as an event and the run goes on: the gates will tell what it did."""

    def __init__(self, faults: tuple[FaultSpec, ...], controller: FaultController | None,
                 clock: Callable[[], float], event: Callable[[str, str], None]) -> None:
        self.pending = sorted(faults, key=lambda f: f.at_s)
        self.controller, self.clock, self.event = controller, clock, event
        self.active: list[FaultSpec] = []
        self._ends: list[tuple[float, FaultSpec]] = []

    async def run(self) -> None:
        while self.pending or self._ends:
            due = min([f.at_s for f in self.pending] + [t for t, _ in self._ends])
            await asyncio.sleep(max(0.0, due - self.clock()))
            if self.pending and self.pending[0].at_s <= self.clock():
                await self._apply(self.pending.pop(0))
            for item in [e for e in self._ends if e[0] <= self.clock()]:
                self._ends.remove(item)
                await self._undo(item[1])

    async def undo_all(self) -> None:
        for fault in list(self.active):
            await self._undo(fault)

    async def _apply(self, fault: FaultSpec) -> None:
        if self.controller is None:  # the CLI refuses faults without --stack
            raise FaultError("faults need a stack the run started itself")
        self.active.append(fault)
        self._ends.append((fault.at_s + fault.duration_s, fault))
        try:
            self.event("fault", await self.controller.apply(fault))
        except Exception as exc:  # reported; the run goes on
            self.event("fault", f"{fault.action} could not be applied: {exc}")

    async def _undo(self, fault: FaultSpec) -> None:
        if fault not in self.active or self.controller is None:
            return
        self.active.remove(fault)
        try:
            self.event("fault_end", await self.controller.undo(fault))
        except Exception as exc:  # reported; the run goes on
            self.event("fault_end", f"{fault.action} could not be undone: {exc}")
