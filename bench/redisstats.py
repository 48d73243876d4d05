"""Redis commands per request, from ``INFO commandstats`` deltas.

commandstats is server-wide (every db, every client), so a delta counts the
gateway's, the new services' and anything else's commands in the window. The
bench measures the idle rate before it starts so that noise is visible.
"""

from __future__ import annotations

from collections import Counter

import redis


class CommandCounter:
    def __init__(self, url: str) -> None:
        self._redis = redis.Redis.from_url(url)

    def snapshot(self) -> Counter[str]:
        stats = self._redis.info("commandstats")
        calls: Counter[str] = Counter()
        for name, value in stats.items():
            calls[name.removeprefix("cmdstat_")] = int(value["calls"])
        return calls

    def delta(self, before: Counter[str]) -> Counter[str]:
        """Commands run since ``before``, minus the INFO call that took ``before``."""
        after = self.snapshot()
        diff: Counter[str] = Counter({k: after[k] - before.get(k, 0) for k in after})
        diff["info"] -= 1
        return +diff  # drops zero and negative entries

    def server_pid(self) -> int:
        return int(self._redis.info("server")["process_id"])

    def close(self) -> None:
        self._redis.close()
