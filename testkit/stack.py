"""A whole Strangler stack of real processes on free loopback ports.

Legacy nodes, new-service instances and gateways each run as their own
``python -m strangler`` process, against the real Redis (a random key
prefix per stack) and a SQLite file (or a PostgreSQL database) of their own.
Tests kill and restart them through ``Proc``.
"""

from __future__ import annotations

import copy
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from .keys import make_keypair
from .net import free_port
from .procs import ROOT, Proc
from .profiles import shop_session

DEFAULT_ROUTES: list[dict[str, Any]] = [
    {"name": "catalog", "service": "catalog", "paths": ["/api/products", "/api/products/*"],
     "methods": ["GET", "HEAD"]},
    {"name": "auth", "service": "auth", "paths": ["/login", "/logout", "/api/me"]},
    {"name": "cart", "service": "cart", "paths": ["/api/cart", "/api/cart/*"]},
    # as in config.yaml: both backends keep Idempotency-Keys in the one shop database
    {"name": "checkout", "service": "checkout", "paths": ["/api/checkout"], "methods": ["POST"],
     "fallback": {"shared_idempotency_store": True}},
    {"name": "orders", "service": "orders", "paths": ["/api/orders"], "methods": ["GET", "HEAD"]},
    {"name": "default", "paths": ["/*"], "legacy_only": True},
]


SHOP_SERVICES = frozenset({"catalog", "auth", "cart", "checkout", "orders"})


class Stack:
    def __init__(self, workdir: Path, redis_url: str | None, *, database_url: str | None = None,
                 legacy_nodes: int = 2, new_instances: int = 2, gateways: int = 1,
                 routes: list[dict[str, Any]] | None = None,
                 gateway_overrides: dict[str, Any] | None = None,
                 extra_env: dict[str, str] | None = None,
                 redis: dict[str, Any] | None = None) -> None:
        """``redis``: a ``redis`` config section (sentinel, cluster) instead of ``redis_url``."""
        self.dir = workdir
        self.extra_env = dict(extra_env or {})
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "logs").mkdir(exist_ok=True)
        self.redis_url = redis_url
        self.redis = {"url": redis_url} if redis is None else dict(redis)
        self.prefix = f"e2e{secrets.token_hex(5)}"
        self.database_url = database_url or f"sqlite+aiosqlite:///{self.dir / 'shop.db'}"
        self.keys = make_keypair(self.dir / "keys")
        self.internal_token = secrets.token_urlsafe(24)
        self.admin_token = secrets.token_urlsafe(24)
        self.session_key = secrets.token_urlsafe(32)
        self.legacy_ports = {chr(ord("a") + i): free_port() for i in range(legacy_nodes)}
        self.new_ports = {f"n{i + 1}": free_port() for i in range(new_instances)}
        self.gateway_ports = [(free_port(), free_port()) for _ in range(gateways)]
        self.routes = copy.deepcopy(routes or DEFAULT_ROUTES)
        for route in self.routes:  # the shop's services each take tokens for their own name
            if route.get("name") in SHOP_SERVICES and not route.get("legacy_only"):
                route.setdefault("service", route["name"])
        self.gateway_overrides = gateway_overrides or {}
        self.config_path = self.dir / "config.yaml"
        self.write_config()
        self.legacy = {n: self._proc(f"legacy-{n}", ["legacy", "--node-id", n],
                                     f"http://127.0.0.1:{p}/healthz")
                       for n, p in self.legacy_ports.items()}
        self.new = {n: self._proc(f"services-{n}", ["services", "--instance-id", n],
                                  f"http://127.0.0.1:{p}/healthz")
                    for n, p in self.new_ports.items()}
        self.gateways = [self._proc(f"gateway-{i}", ["gateway", "--port", str(p),
                                                     "--admin-port", str(ap)],
                                    f"http://127.0.0.1:{ap}/readyz")
                         for i, (p, ap) in enumerate(self.gateway_ports)]

    # ---------------------------------------------------------------- config
    def config(self) -> dict[str, Any]:
        gateway: dict[str, Any] = {
            "listen": {"host": "127.0.0.1", "port": self.gateway_ports[0][0]},
            "admin_listen": {"host": "127.0.0.1", "port": self.gateway_ports[0][1]},
            "admin_token": {"env": "STRANGLER_ADMIN_TOKEN"},
            "debug_backend_header": True,
            "log_level": "info",
            "timeouts": {"connect_ms": 500, "request_ms": 2000},
        }
        gateway.update(self.gateway_overrides)
        return {
            "gateway": gateway,
            "redis": {**self.redis, "key_prefix": self.prefix},
            "database": {"url": self.database_url},
            "legacy": {"nodes": [{"id": n, "url": f"http://127.0.0.1:{p}"}
                                 for n, p in self.legacy_ports.items()],
                       "internal_token": {"env": "STRANGLER_INTERNAL_TOKEN"}},
            "new": {"instances": [{"id": n, "url": f"http://127.0.0.1:{p}"}
                                  for n, p in self.new_ports.items()]},
            "health": {"interval_ms": 200},
            "tokens": {"private_key_file": str(self.keys.private_pem),
                       "jwks_file": str(self.keys.jwks)},
            "flags": {"poll_interval_ms": 500},
            "session": shop_session(),
            "routes": self.routes,
        }

    def write_config(self) -> None:
        self.config_path.write_text(yaml.safe_dump(self.config(), sort_keys=False))

    @property
    def env(self) -> dict[str, str]:
        return {"STRANGLER_INTERNAL_TOKEN": self.internal_token,
                "STRANGLER_ADMIN_TOKEN": self.admin_token,
                "STRANGLER_SESSION_KEY": self.session_key, **self.extra_env}

    def _proc(self, name: str, args: list[str], ready: str) -> Proc:
        argv = [sys.executable, "-m", "strangler", "--config", str(self.config_path), *args]
        return Proc(name, argv, self.dir / "logs", env=self.env, ready_url=ready)

    # ---------------------------------------------------------------- lifecycle
    def init_db(self) -> None:
        subprocess.run([sys.executable, "-m", "legacy_shop", "init-db", "--database-url",
                        self.database_url], cwd=ROOT, check=True, capture_output=True)

    def start(self) -> Stack:
        self.init_db()
        backends = [*self.legacy.values(), *self.new.values()]
        for proc in backends:
            ready, proc.ready_url = proc.ready_url, None
            proc.start()
            proc.ready_url = ready
        for proc in backends:
            proc.wait_ready(timeout=30)
        for gw in self.gateways:
            gw.start(timeout=30)
        return self

    def stop(self) -> None:
        for proc in [*self.gateways, *self.new.values(), *self.legacy.values()]:
            proc.stop(timeout=5)

    def url(self, i: int = 0) -> str:
        return f"http://127.0.0.1:{self.gateway_ports[i][0]}"

    def admin_url(self, i: int = 0) -> str:
        return f"http://127.0.0.1:{self.gateway_ports[i][1]}"

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "strangler", "--config", str(self.config_path), *args],
            cwd=ROOT, env={**os.environ, **self.env}, capture_output=True, text=True,
            timeout=60, check=False)

    def must_cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``cli`` for a set-up step: a non-zero exit fails the test with its stderr."""
        result = self.cli(*args)
        if result.returncode != 0:
            raise AssertionError(f"strangler {' '.join(args)} exited {result.returncode}: "
                                 f"{result.stderr or result.stdout}")
        return result

    def logs(self) -> str:
        out = []
        for proc in [*self.gateways, *self.legacy.values(), *self.new.values()]:
            out.append(f"----- {proc.name}\n{proc.tail(40)}")
        return "\n".join(out)


async def db_orders(database_url: str) -> list[dict[str, Any]]:
    """Every order in the shop database: what both backends really placed."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(text(
                "SELECT o.id, u.username, o.placed_by, o.total_cents FROM orders o "
                "JOIN users u ON u.id = o.user_id ORDER BY o.id"))
            return [dict(r._mapping) for r in rows]
    finally:
        await engine.dispose()
