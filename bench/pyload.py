"""Fallback load generator when ``wrk`` is not installed: fixed concurrency, closed loop;
and the open-loop generator (``--rate``), which wrk cannot do.

Runs in its own process (pinned like wrk would be) and prints the same
``BENCH_JSON`` line as ``wrk_report.lua``. It is far less efficient than wrk:
on a small machine it needs a whole core itself, so rps from it is a floor.

With ``--rate R`` requests start on a fixed schedule (R per second, whatever
the answers do) over at most ``-c`` connections, and each latency is measured
from the request's *scheduled* start, so a stall shows up in every request it
delays (no coordinated omission). At a rate well below capacity it measures
what one request costs without queueing.

    python -m bench.pyload --url http://127.0.0.1:8080/api/cart -H 'Cookie: a=b' -c 32 -d 10
    python -m bench.pyload --url ... -c 32 -d 10 --rate 150
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import aiohttp


async def worker(http: aiohttp.ClientSession, url: str, headers: dict[str, str],
                 deadline: float, latencies: list[float], errors: dict[str, int]) -> int:
    nbytes = 0
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        try:
            async with http.get(url, headers=headers, allow_redirects=False) as resp:
                nbytes += len(await resp.read())
                if resp.status >= 400:
                    errors["status"] += 1
        except (aiohttp.ClientError, OSError):
            errors["read"] += 1
            continue
        latencies.append(time.perf_counter() - started)
    return nbytes


async def open_loop(http: aiohttp.ClientSession, url: str, headers: dict[str, str],
                    rate: float, duration: float, slots: asyncio.Semaphore,
                    latencies: list[float], errors: dict[str, int]) -> int:
    nbytes = 0

    async def one(scheduled: float) -> None:
        nonlocal nbytes
        async with slots:
            try:
                async with http.get(url, headers=headers, allow_redirects=False) as resp:
                    nbytes += len(await resp.read())
                    if resp.status >= 400:
                        errors["status"] += 1
            except (aiohttp.ClientError, OSError):
                errors["read"] += 1
                return
        latencies.append(time.perf_counter() - scheduled)

    started = time.perf_counter()
    tasks = []
    for i in range(int(rate * duration)):
        scheduled = started + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(scheduled)))
    await asyncio.gather(*tasks)
    return nbytes


def percentile(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, round(pct / 100 * (len(sorted_values) - 1)))
    return sorted_values[index]


async def run(url: str, headers: dict[str, str], connections: int,
              duration: float, rate: float | None = None) -> dict[str, Any]:
    latencies: list[float] = []
    errors = {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0}
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector,
                                     cookie_jar=aiohttp.DummyCookieJar()) as http:
        started = time.perf_counter()
        deadline = started + duration
        if rate:
            sizes = [await open_loop(http, url, headers, rate, duration,
                                     asyncio.Semaphore(connections), latencies, errors)]
        else:
            sizes = await asyncio.gather(*(worker(http, url, headers, deadline, latencies,
                                                  errors) for _ in range(connections)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    us = [x * 1e6 for x in latencies]
    return {"requests": len(latencies), "duration_us": int(elapsed * 1e6), "bytes": sum(sizes),
            "errors": errors, "p50_us": percentile(us, 50), "p90_us": percentile(us, 90),
            "p99_us": percentile(us, 99), "max_us": us[-1] if us else 0.0,
            "mean_us": sum(us) / len(us) if us else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("-H", "--header", action="append", default=[])
    parser.add_argument("-c", "--connections", type=int, default=32)
    parser.add_argument("-d", "--duration", type=float, default=10.0)
    parser.add_argument("--rate", type=float, help="open loop: requests per second")
    args = parser.parse_args()
    headers = dict(h.split(": ", 1) for h in args.header)
    result = asyncio.run(run(args.url, headers, args.connections, args.duration, args.rate))
    print("BENCH_JSON " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
