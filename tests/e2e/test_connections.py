"""The public listener against slow, idle, excess and malformed clients (issue 12).

A real gateway process (stdout and stderr kept apart, so every line of each can
be parsed) in front of one tiny threaded backend. Timeouts are short here
(``header_read_ms`` 500, ``keepalive_idle_ms`` 1000, ``body_read_ms`` 1000) so the
closes happen fast; each is checked against its limit plus a margin, and seen in
the log and in ``/metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import selectors
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.support.keys import make_keypair
from tests.support.net import free_port, wait_until
from tests.support.procs import ROOT, http_ok
from tests.support.profiles import shop_session
from tests.support.rawhttp import RawConnection, RawResponse, exchange

MARK = "QZXMARK7"
"""In every malformed request; must never come back, nor reach a log line."""
FAST = {"header_read_ms": 500, "keepalive_idle_ms": 1000, "body_read_ms": 1000}
MARGIN_S = 1.5
"""Slack for a close on a loaded two-core machine (timer, scheduling, the test's read)."""


class _Backend(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else headers and body meet delayed ACK: 40 ms a request

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = b'{"status": "ok"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_HEAD = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def backend() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Backend)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@dataclass
class GatewayProc:
    popen: subprocess.Popen[bytes]
    port: int
    admin_port: int
    out: Path
    err: Path

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)

    def lines(self, which: str = "out") -> list[dict[str, Any]]:
        """Every line written so far, each parsed as JSON (a non-JSON line fails here)."""
        path = self.out if which == "out" else self.err
        text = path.read_text(errors="replace")
        parsed = []
        for line in text.splitlines():
            try:
                parsed.append(json.loads(line))
            except ValueError:
                raise AssertionError(f"a non-JSON line on std{which}: {line[:300]!r}") from None
        return parsed

    def raw_logs(self) -> bytes:
        return self.out.read_bytes() + self.err.read_bytes()

    def metric(self, name: str, **labels: str) -> float:
        """The sum of ``name``'s samples that carry ``labels`` (from the admin /metrics)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/metrics",
                                    timeout=5) as resp:
            text = resp.read().decode()
        wanted = [f'{k}="{v}"' for k, v in labels.items()]
        total = 0.0
        for line in text.splitlines():
            series, _, value = line.rpartition(" ")
            if series.split("{")[0] == name and all(w in series for w in wanted):
                total += float(value)
        return total


def start_gateway(workdir: Path, redis_url: str, backend: str, limits: dict[str, int]
                  ) -> GatewayProc:
    workdir.mkdir(parents=True, exist_ok=True)
    keys = make_keypair(workdir / "keys")
    port, admin_port = free_port(), free_port()
    cfg = {
        "gateway": {"listen": {"port": port}, "admin_listen": {"port": admin_port},
                    "admin_token": {"env": "STRANGLER_ADMIN_TOKEN"}, "log_level": "info",
                    "limits": limits, "timeouts": {"connect_ms": 500, "request_ms": 2000}},
        "redis": {"url": redis_url, "key_prefix": f"conn{os.getpid()}{port}"},
        "database": {"url": f"sqlite+aiosqlite:///{workdir / 'ledger.db'}"},
        "legacy": {"nodes": [{"id": "a", "url": backend}],
                   "internal_token": {"env": "STRANGLER_INTERNAL_TOKEN"}},
        "new": {"instances": [{"id": "n1", "url": "http://127.0.0.1:9"}]},
        "health": {"interval_ms": 1000},
        "tokens": {"private_key_file": str(keys.private_pem), "jwks_file": str(keys.jwks)},
        "session": shop_session(),
        "routes": [{"name": "default", "paths": ["/*"], "legacy_only": True}],
    }
    config = workdir / "config.yaml"
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "STRANGLER_ADMIN_TOKEN": "a" * 24,
           "STRANGLER_INTERNAL_TOKEN": "i" * 24, "STRANGLER_SESSION_KEY": "s" * 40}
    out, err = workdir / "stdout.log", workdir / "stderr.log"
    with out.open("wb") as o, err.open("wb") as e:
        popen = subprocess.Popen([sys.executable, "-m", "strangler", "--config", str(config),
                                  "gateway"], cwd=ROOT, env=env, stdout=o, stderr=e,
                                 start_new_session=True)
    gw = GatewayProc(popen, port, admin_port, out, err)
    try:
        wait_until(lambda: popen.poll() is None and http_ok(
            f"http://127.0.0.1:{admin_port}/readyz"), timeout=30, what="the gateway")
    except BaseException:
        gw.stop()
        raise AssertionError(f"gateway did not start: {err.read_text()[-2000:]}") from None
    return gw


@pytest.fixture(scope="module")
def fast_gw(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[GatewayProc]:
    from tests.conftest import REDIS_URL
    gw = start_gateway(tmp_path_factory.mktemp("fast"), REDIS_URL, backend,
                       {**FAST, "max_url_bytes": 1024, "max_header_bytes": 2048})
    yield gw
    gw.stop()


def head(*lines: str) -> bytes:
    return "\r\n".join(lines).encode("utf-8") + b"\r\n\r\n"


POST = ("POST /x HTTP/1.1", "Host: gw.test")
MALFORMED: dict[str, bytes] = {
    "bad_request_line": f"GARBAGE{MARK}\r\n\r\n".encode(),
    "bad_method": head(f"G{MARK}(T / HTTP/1.1", "Host: gw.test"),
    "header_without_colon": head("GET / HTTP/1.1", "Host: gw.test", f"X{MARK}novalue"),
    "space_before_colon": head("GET / HTTP/1.1", "Host: gw.test", f"X-{MARK} : v"),
    "obs_fold": head("GET / HTTP/1.1", "Host: gw.test", "X-A: 1", f" {MARK}"),
    "nul_in_header": head("GET / HTTP/1.1", "Host: gw.test", f"X-A: {MARK}\x00x"),
    "header_too_long": head("GET / HTTP/1.1", "Host: gw.test", f"X-A: {MARK}{'a' * 3000}"),
    "url_too_long": head(f"GET /{MARK}{'a' * 3000} HTTP/1.1", "Host: gw.test"),
    "bad_chunk_size": head(*POST, "Transfer-Encoding: chunked") + f"{MARK}\r\nxx\r\n".encode(),
    "bad_chunk_extension": head(*POST, "Transfer-Encoding: chunked")
    + f"5;{MARK}\x00\r\nhello\r\n0\r\n\r\n".encode(),
    "chunk_without_crlf": head(*POST, "Transfer-Encoding: chunked")
    + f"5\r\nhello{MARK}0\r\n\r\n".encode(),
    "invalid_content_length": head(*POST, f"Content-Length: 1{MARK}"),
    "cl_and_te": head(*POST, "Content-Length: 4", "Transfer-Encoding: chunked",
                      f"X-M: {MARK}") + b"0\r\n\r\n",
    "duplicate_cl_mismatched": head(*POST, "Content-Length: 5", "Content-Length: 6",
                                    f"X-M: {MARK}") + b"hello",
    "bad_transfer_encoding": head(*POST, f"Transfer-Encoding: x{MARK}"),
    "bare_lf": f"GET /{MARK} HTTP/1.1\nHost: gw.test\n\n".encode(),
    "non_ascii_header_name": head("GET / HTTP/1.1", "Host: gw.test", f"X-\u00e9{MARK}: v"),
    "bad_version": head(f"GET /{MARK} HTTP/9.x", "Host: gw.test"),
    "control_char_in_url": head(f"GET /\x01{MARK} HTTP/1.1", "Host: gw.test"),
    "http2_preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + MARK.encode(),
    "tls_client_hello": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + MARK.encode()
    + b"\x00" * 40,
    "http09_request": f"GET /{MARK}\r\n\r\n".encode(),
}


def _logged_with(gw: GatewayProc, rid: str) -> list[dict[str, Any]]:
    return [line for line in gw.lines() if line.get("request_id") == rid]


@pytest.mark.parametrize("name", list(MALFORMED))
async def test_a_malformed_request_gets_our_400_and_one_log_line_and_no_echo(
        fast_gw: GatewayProc, name: str) -> None:
    out = await exchange("127.0.0.1", fast_gw.port, MALFORMED[name], expect=None,
                         deadline_s=5)
    assert out.closed, "the connection of a malformed request must be closed"
    assert len(out.responses) == 1, out
    resp: RawResponse = out.first
    assert 400 <= resp.status < 500, resp
    assert resp.headers["Content-Type"].startswith("application/problem+json")
    rid = resp.headers["X-Request-Id"]
    problem = json.loads(resp.body)
    assert problem["request_id"] == rid and problem["status"] == resp.status
    wire = resp.raw_head + resp.body + out.leftover
    assert MARK.encode() not in wire, f"the response echoes the client's bytes: {wire!r}"
    logged = _logged_with(fast_gw, rid)
    assert len(logged) == 1, logged
    assert logged[0]["event"] == "request_refused" and logged[0]["status"] == resp.status
    assert MARK.encode() not in fast_gw.raw_logs(), "the client's bytes reached a log line"


async def test_a_bad_chunk_after_the_head_was_accepted_is_one_refusal(
        fast_gw: GatewayProc) -> None:
    """The head alone is fine and the request is under way when the bad chunk comes."""
    async with await RawConnection.open("127.0.0.1", fast_gw.port) as conn:
        await conn.send(head(*POST, "Transfer-Encoding: chunked"))
        await asyncio.sleep(0.2)
        await conn.send(f"{MARK}\r\nxx\r\n".encode())
        out = await conn.read_all(deadline_s=5)
    assert out.closed and len(out.responses) == 1, out
    resp = out.first
    assert 400 <= resp.status < 500, resp
    assert MARK.encode() not in resp.raw_head + resp.body
    assert len(_logged_with(fast_gw, resp.headers["X-Request-Id"])) == 1
    assert MARK.encode() not in fast_gw.raw_logs()


async def test_slowloris_and_idle_clients_are_closed_in_time_logged_and_counted(
        fast_gw: GatewayProc) -> None:
    before = {r: fast_gw.metric("strangler_connections_closed_total", reason=r)
              for r in ("header_timeout", "idle", "body_timeout")}

    async def drip_head() -> float:
        """One header line every 200 ms, never the blank line that ends the head."""
        started = time.monotonic()
        async with await RawConnection.open("127.0.0.1", fast_gw.port) as conn:
            await conn.send(b"GET / HTTP/1.1\r\n")
            while time.monotonic() - started < 5:
                await conn.send(b"X-Drip: 1\r\n")
                if await conn.closed_by_server(deadline_s=0.2):
                    break
            elapsed = time.monotonic() - started
            assert conn.eof, "a slowloris client was never closed"
            return elapsed

    async def idle_new() -> float:
        started = time.monotonic()
        async with await RawConnection.open("127.0.0.1", fast_gw.port) as conn:
            assert await conn.closed_by_server(deadline_s=5)
        return time.monotonic() - started

    async def idle_after_a_request() -> float:
        async with await RawConnection.open("127.0.0.1", fast_gw.port) as conn:
            await conn.send(b"GET /ok HTTP/1.1\r\nHost: gw.test\r\n\r\n")
            resp = await conn.read_response()
            assert resp is not None and resp.status == 200 and resp.keep_alive
            started = time.monotonic()
            assert await conn.closed_by_server(deadline_s=5)
        return time.monotonic() - started

    async def drip_body() -> float:
        """A good head, then ten body bytes every 200 ms of the 1000 announced."""
        async with await RawConnection.open("127.0.0.1", fast_gw.port) as conn:
            await conn.send(b"POST /up HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 1000\r\n"
                            b"X-Request-Id: body-drip-0001\r\n\r\n")
            started = time.monotonic()
            while time.monotonic() - started < 5:
                await conn.send(b"x" * 10)
                if await conn.closed_by_server(deadline_s=0.2):
                    break
            elapsed = time.monotonic() - started
            assert conn.eof, "a client dripping its body was never closed"
            return elapsed

    dripped, idle, kept, body = await asyncio.gather(
        asyncio.gather(*(drip_head() for _ in range(5))),
        asyncio.gather(*(idle_new() for _ in range(5))),
        asyncio.gather(*(idle_after_a_request() for _ in range(5))),
        asyncio.gather(*(drip_body() for _ in range(3))))
    for elapsed in dripped:
        assert 0.4 <= elapsed <= 0.5 + MARGIN_S, elapsed
    for elapsed in idle:
        assert 0.4 <= elapsed <= 0.5 + MARGIN_S, elapsed
    for elapsed in kept:
        assert 0.9 <= elapsed <= 1.0 + MARGIN_S, elapsed
    for elapsed in body:
        assert 0.9 <= elapsed <= 1.0 + MARGIN_S, elapsed
    await asyncio.sleep(0.2)
    after = {r: fast_gw.metric("strangler_connections_closed_total", reason=r) for r in before}
    assert after["header_timeout"] - before["header_timeout"] >= 5
    assert after["idle"] - before["idle"] >= 10
    assert after["body_timeout"] - before["body_timeout"] >= 3
    closes = [line for line in fast_gw.lines() if line["event"] == "connection_closed"]
    assert {line["reason"] for line in closes} >= {"header_timeout", "idle", "body_timeout"}
    drip_lines = [line for line in fast_gw.lines() if line.get("request_id") == "body-drip-0001"]
    assert [(line["event"], line.get("reason")) for line in drip_lines] == \
        [("connection_closed", "body_timeout")] * 3, drip_lines


async def test_a_head_that_never_ends_is_answered_408_with_a_request_id(
        fast_gw: GatewayProc) -> None:
    async with await RawConnection.open("127.0.0.1", fast_gw.port) as conn:
        await conn.send(f"GET /{MARK} HTTP/1.1\r\nHost: gw.test\r\n".encode())
        out = await conn.read_all(deadline_s=5)
    assert out.closed and out.first.status == 408
    rid = out.first.headers["X-Request-Id"]
    assert [line["reason"] for line in _logged_with(fast_gw, rid)] == ["header_timeout"]


def test_stdout_and_stderr_are_json_lines_only(fast_gw: GatewayProc) -> None:
    """Runs after the hostile tests above against the same process."""
    assert fast_gw.lines("out"), "no log line at all"
    fast_gw.lines("err")  # raises on any non-JSON line
    assert MARK.encode() not in fast_gw.raw_logs()


# ================================================================ the connection cap


def test_past_max_connections_a_new_connection_is_503_and_the_listener_keeps_accepting(
        tmp_path: Path, backend: str, redis_url: str) -> None:
    gw = start_gateway(tmp_path, redis_url, backend,
                       {"max_connections": 16, "header_read_ms": 20_000})
    held: list[socket.socket] = []
    try:
        held = [socket.create_connection(("127.0.0.1", gw.port)) for _ in range(16)]
        wait_until(lambda: gw.metric("strangler_connections_open") == 16, timeout=10,
                   what="16 connections open")
        extra = socket.create_connection(("127.0.0.1", gw.port))
        extra.settimeout(5)
        got = b""
        while chunk := extra.recv(4096):
            got += chunk
        extra.close()
        assert got.startswith(b"HTTP/1.1 503 "), got
        assert b"X-Request-Id: " in got and b'"too many connections"' in got
        assert gw.metric("strangler_connections_closed_total",
                         reason="too_many_connections") == 1
        for s in held:
            s.close()
        held = []
        wait_until(lambda: gw.metric("strangler_connections_open") == 0, timeout=10,
                   what="the held connections gone")
        with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as ok:
            ok.sendall(b"GET / HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n")
            assert ok.recv(100).startswith(b"HTTP/1.1 200 ")
        refused = [line for line in gw.lines() if line.get("reason") == "too_many_connections"]
        assert len(refused) == 1 and refused[0]["request_id"] in got.decode()
    finally:
        for s in held:
            s.close()
        gw.stop()


# ================================================================ many idle connections


def _raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


async def test_normal_clients_are_served_while_thousands_of_idle_connections_are_held(
        tmp_path: Path, backend: str, redis_url: str) -> None:
    limit = _raise_nofile()
    wanted = min(5000, limit - 300)
    header_s = 8.0
    gw = start_gateway(tmp_path, redis_url, backend,
                       {"max_connections": 6000, "header_read_ms": int(header_s * 1000),
                        "keepalive_idle_ms": 1000})
    idle: dict[socket.socket, float] = {}
    sel = selectors.DefaultSelector()
    try:
        for _ in range(wanted):
            s = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
            s.setblocking(False)
            idle[s] = time.monotonic()
            sel.register(s, selectors.EVENT_READ)
        opened_in = time.monotonic() - min(idle.values())
        stop = asyncio.Event()

        async def slowloris() -> None:
            async with await RawConnection.open("127.0.0.1", gw.port) as conn:
                await conn.send(b"GET / HTTP/1.1\r\n")
                while not stop.is_set() and not conn.eof:
                    await conn.send(b"X-Drip: 1\r\n")
                    with contextlib.suppress(TimeoutError):
                        await conn.closed_by_server(deadline_s=0.3)

        drippers = [asyncio.create_task(slowloris()) for _ in range(50)]
        latencies: list[float] = []
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 4.0
            while time.monotonic() < deadline:
                t0 = time.perf_counter()
                async with http.get(f"http://127.0.0.1:{gw.port}/normal") as resp:
                    await resp.read()
                    assert resp.status == 200
                latencies.append(time.perf_counter() - t0)
                await asyncio.sleep(0.005)
        stop.set()
        open_now = gw.metric("strangler_connections_open")
        # every idle connection is closed by the gateway within its header timeout + margin
        closed_after: list[float] = []
        until = time.monotonic() + header_s + 10
        while idle and time.monotonic() < until:
            for key, _ in sel.select(timeout=0.5):
                s = key.fileobj  # type: ignore[assignment]
                assert isinstance(s, socket.socket)
                try:
                    data = s.recv(100)
                except ConnectionResetError:
                    data = b""
                assert data == b"", data  # an idle connection is closed, not answered
                closed_after.append(time.monotonic() - idle.pop(s))
                sel.unregister(s)
                s.close()
        await asyncio.gather(*drippers, return_exceptions=True)
        latencies.sort()
        p99 = latencies[int(len(latencies) * 0.99) - 1]
        print(f"\nheld {wanted} idle connections (fd limit {limit}; opened in "
              f"{opened_in:.2f} s, {open_now:.0f} open at the gateway); normal client: "
              f"{len(latencies)} requests, median {statistics.median(latencies) * 1000:.1f} "
              f"ms, p99 {p99 * 1000:.1f} ms; idle closed after "
              f"{min(closed_after):.2f}..{max(closed_after):.2f} s")
        assert not idle, f"{len(idle)} idle connections never closed"
        assert open_now >= wanted
        assert max(closed_after) <= header_s + opened_in + 3.0
        assert gw.metric("strangler_connections_closed_total", reason="idle") >= wanted
        assert len(latencies) > 50
    finally:
        for s in idle:
            s.close()
        sel.close()
        gw.stop()
