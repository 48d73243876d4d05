"""A real Unleash server for the tests: installed once, started once per test run.

``install()`` runs ``scripts/install-unleash.sh`` (npm's ``unleash-server`` at
a pinned version, cached outside the repo; a no-op when already there).
``UnleashServer`` starts it with ``node`` on a free loopback port against a
fresh PostgreSQL database, with admin and client API tokens it chose, waits
for ``/health`` with a deadline, and stops it (and drops the database) at the
end. The ``unleash_server`` fixture gives the whole pytest session one server:
booting and migrating takes seconds.

    scripts/install-unleash.sh                # what make test (scripts/test-prereqs.sh) does first
    python -m tests.support.unleash install   # the same, from Python
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from testkit.net import free_port
from testkit.procs import ROOT, Proc

T = TypeVar("T")

VERSION = "7.4.1"
PG_DSN = os.environ.get("STRANGLER_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432")
ENVIRONMENT = "development"
PROJECT = "default"


def install() -> Path:
    """The install directory, installing first if needed (idempotent, cached)."""
    out = subprocess.run(["bash", str(ROOT / "scripts" / "install-unleash.sh")], cwd=ROOT,
                         env={**os.environ, "UNLEASH_SERVER_VERSION": VERSION},
                         stdout=subprocess.PIPE, text=True, check=True, timeout=900)
    return Path(out.stdout.strip().splitlines()[-1])


def _sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion from sync code, even inside a running event loop."""
    result: list[T] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            result.append(asyncio.run(coro))
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


async def _pg(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(f"{PG_DSN}/postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


class UnleashServer:
    """One unleash-server process on loopback, with tokens the tests know."""

    def __init__(self, log_dir: Path, install_dir: Path | None = None) -> None:
        self.install_dir = install_dir or install()
        self.port = free_port()
        self.database = f"strangler_unleash_{uuid.uuid4().hex[:10]}"
        self.admin_token = f"*:*.{secrets.token_hex(16)}"
        self.client_token = f"{PROJECT}:{ENVIRONMENT}.{secrets.token_hex(16)}"
        log_dir.mkdir(parents=True, exist_ok=True)
        self.proc = Proc("unleash", ["node", str(ROOT / "scripts" / "unleash-start.mjs"),
                                     str(self.install_dir)], log_dir, env=self._env(),
                         ready_url=f"{self.url}/health")
        self.boot_seconds: float | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _env(self) -> dict[str, str]:
        host = PG_DSN.split("://", 1)[1]
        return {
            "DATABASE_URL": f"postgres://{host}/{self.database}", "DATABASE_SSL": "false",
            "HTTP_HOST": "127.0.0.1", "HTTP_PORT": str(self.port), "UNLEASH_URL": self.url,
            "INIT_ADMIN_API_TOKENS": self.admin_token,
            "INIT_CLIENT_API_TOKENS": self.client_token,
            "CHECK_VERSION": "false", "SEND_TELEMETRY": "false", "LOG_LEVEL": "warn",
            "TZ": "UTC", "NODE_NO_WARNINGS": "1",
        }

    def start(self, timeout: float = 120.0) -> UnleashServer:
        _sync(_pg(f'CREATE DATABASE "{self.database}"'))
        started = time.monotonic()
        self.proc.start(timeout=timeout)
        self.boot_seconds = time.monotonic() - started
        return self

    def stop(self) -> None:
        self.proc.stop(timeout=15)
        _sync(_pg(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)'))

    def get(self, path: str) -> Any:
        """An Admin API GET with the admin token (sync; for polling in tests)."""
        req = urllib.request.Request(self.url + path,  # noqa: S310 (loopback only)
                                     headers={"Authorization": self.admin_token})
        with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310 (loopback only)
            return json.load(resp)

    def usage(self, feature: str, app_name: str) -> int:
        """Evaluations of ``feature`` that ``app_name`` reported (yes + no), as Unleash stored
        them."""
        raw = self.get(f"/api/admin/client-metrics/features/{feature}/raw")
        return sum(int(b.get("yes", 0)) + int(b.get("no", 0)) for b in raw.get("data", [])
                   if b.get("appName") == app_name)

    def instances(self, app_name: str) -> list[dict[str, Any]]:
        """The registered SDK instances of ``app_name`` (empty until Unleash has stored them)."""
        try:
            app = self.get(f"/api/admin/metrics/applications/{app_name}")
        except OSError:
            return []
        return list(app.get("instances", []))


@pytest.fixture(scope="session")
def unleash_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UnleashServer]:
    """One real Unleash server for the whole test run (installed first if needed)."""
    server = UnleashServer(tmp_path_factory.mktemp("unleash") / "logs")
    try:
        server.start()
    except BaseException:
        print(server.proc.tail(80), file=sys.stderr)
        server.stop()
        raise
    yield server
    server.stop()


if __name__ == "__main__":
    if sys.argv[1:] != ["install"]:
        sys.exit("usage: python -m tests.support.unleash install")
    print(install())
