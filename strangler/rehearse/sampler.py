"""The gateway's own view, once a second: requests by route and backend, fallbacks.

Each tick scrapes ``/metrics`` and books the difference to the previous scrape
on the second that just ended; report.json's timeline and the live display's
legacy/new split are read from here. A scrape that fails is skipped: its
requests land in the next second that scrapes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from strangler.rehearse import promtext

Scraper = Callable[[], Awaitable[promtext.Scrape | None]]


class MetricsSampler:
    def __init__(self, scrape: Scraper, clock: Callable[[], float]) -> None:
        self.scrape, self.clock = scrape, clock
        self.seconds: dict[int, dict[str, Any]] = {}
        """second -> {"fallbacks": n, "by_route": {route: {"legacy": n, "new": n}}}."""
        self.first: promtext.Scrape | None = None
        self.last: promtext.Scrape | None = None

    async def start(self) -> None:
        self.first = self.last = await self.scrape()

    async def run(self, tick: Callable[[], None]) -> None:
        """Sample on every whole second of the run's clock, then call ``tick``."""
        while True:
            await asyncio.sleep(1 - (self.clock() % 1))
            self.sample(await self.scrape(), int(self.clock()) - 1)
            tick()

    def sample(self, now: promtext.Scrape | None, second: int) -> None:
        if now is not None and self.last is not None:
            d = promtext.delta(now, self.last)
            entry = self.seconds.setdefault(second, {"fallbacks": 0, "by_route": {}})
            entry["fallbacks"] += d.total_fallbacks
            for route, counts in promtext.by_route(d).items():
                mine = entry["by_route"].setdefault(route, {"legacy": 0, "new": 0})
                for backend, n in counts.items():
                    mine[backend] = mine.get(backend, 0) + n
        self.last = now or self.last

    def by_backend_since(self, second: int) -> dict[str, int]:
        """Requests served by each backend, every route, from ``second`` on."""
        out = {"legacy": 0, "new": 0}
        for t, entry in self.seconds.items():
            if t >= second:
                for counts in entry["by_route"].values():
                    for backend in out:
                        out[backend] += counts.get(backend, 0)
        return out

    def overall(self) -> promtext.Scrape | None:
        """Everything the gateway counted since ``start``."""
        return promtext.delta(self.last, self.first) if self.last and self.first else None
