"""A TCP relay that adds latency, put between the gateway and Redis.

    gateway --> LagProxy (127.0.0.1:<free port>) --> redis-server

``FaultProxy`` speaks HTTP; this one relays bytes, so it fits any protocol.
Bytes from the client are held ``delay`` seconds before they go on (in order,
without slowing the stream down otherwise): every request-response round trip
costs ``delay`` more. ``delay`` may be changed at any time; it applies to
bytes that arrive from then on. ``commands`` counts the client's writes that
reached the proxy (about one per Redis command or pipeline).
"""

from __future__ import annotations

import asyncio
import contextlib


class LagProxy:
    def __init__(self, upstream_port: int, *, upstream_host: str = "127.0.0.1",
                 host: str = "127.0.0.1", delay: float = 0.0) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.host = host
        self.port = 0
        self.delay = delay
        self.commands = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> LagProxy:
        self._server = await asyncio.start_server(self._accept, self.host, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aenter__(self) -> LagProxy:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_w))
        to_server = self._spawn(self._pump(reader, up_w, lagged=True))
        to_client = self._spawn(self._pump(up_r, writer, lagged=False))
        await asyncio.wait({to_server, to_client}, return_when=asyncio.FIRST_COMPLETED)
        for w in (writer, up_w):
            self._writers.discard(w)
            w.transport.abort()
        to_server.cancel()
        to_client.cancel()

    def _spawn(self, coro: object) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, *,
                    lagged: bool) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    return
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                dst.write(data)
                await dst.drain()

        sender = self._spawn(deliver())
        try:
            while data := await src.read(65536):
                if lagged:
                    self.commands += 1
                queue.put_nowait((loop.time() + (self.delay if lagged else 0.0), data))
            queue.put_nowait((0.0, b""))
            with contextlib.suppress(ConnectionError, OSError):
                await sender
        except (ConnectionError, OSError):
            pass
        finally:
            sender.cancel()
