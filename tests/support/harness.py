"""An in-process gateway in front of real aiohttp backends, for integration tests.

``GatewayHarness`` builds a config (free ports, the test Redis, a key pair),
starts ``gateway.runtime.app.Gateway`` in the test's event loop (built by
``gateway.runtime.compose.build``, as in a real process, with the test's ``overrides``),
and stops it. The
backends are whatever the test passes: ``TestServer``s, a fault proxy, or a
port nothing listens on.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from typing import Any

from gateway.runtime.app import Gateway
from gateway.runtime.compose import Overrides
from gateway.settings import Config, parse
from testkit.keys import SESSION_KEY, KeyPair
from testkit.net import free_port
from testkit.profiles import shop_session

INTERNAL_TOKEN = "internal-test-token"
ADMIN_TOKEN = "admin-test-token"


@dataclass
class GatewayHarness:
    redis_url: str
    key_prefix: str
    keypair: KeyPair
    legacy: dict[str, str]
    """node id -> base URL"""
    new: dict[str, str] = field(default_factory=lambda: {"n1": "http://127.0.0.1:9"})
    routes: list[dict[str, Any]] = field(
        default_factory=lambda: [{"name": "default", "paths": ["/*"], "legacy_only": True}])
    gateway: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    admin_port: int = field(default_factory=free_port)
    overrides: Overrides | None = None
    """Parts the test brings itself (``gateway.runtime.compose.Overrides``); the test
    closes them."""
    instance: Gateway | None = None

    def config(self) -> Config:
        gateway: dict[str, Any] = {
            "listen": {"port": self.port}, "admin_listen": {"port": self.admin_port},
            "admin_token": {"env": "STRANGLER_TEST_ADMIN_TOKEN"},
            "debug_backend_header": True,
            "timeouts": {"connect_ms": 500, "request_ms": 2000},
        }
        gateway.update(copy.deepcopy(self.gateway))
        doc: dict[str, Any] = {
            "gateway": gateway,
            "redis": {"url": self.redis_url, "key_prefix": self.key_prefix},
            "legacy": {"nodes": [{"id": k, "url": v.rstrip("/")} for k, v in self.legacy.items()],
                       "internal_token": {"env": "STRANGLER_TEST_INTERNAL_TOKEN"}},
            "new": {"instances": [{"id": k, "url": v.rstrip("/")} for k, v in self.new.items()]},
            "health": {"interval_ms": 200},
            "tokens": {"private_key_file": str(self.keypair.private_pem),
                       "session_key": {"env": "STRANGLER_TEST_SESSION_KEY"},
                       "jwks_file": str(self.keypair.jwks)},
            "session": shop_session(),
            "routes": copy.deepcopy(self.routes),
        }
        doc.update(copy.deepcopy(self.extra))
        _export_secrets()
        return parse(doc)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    async def start(self) -> GatewayHarness:
        _export_secrets()
        self.instance = Gateway(self.config(), overrides=self.overrides)
        await self.instance.start()
        return self

    async def stop(self) -> None:
        if self.instance is not None:
            await self.instance.stop()
            self.instance = None


def _export_secrets() -> None:
    """The secrets the config names by environment variable, set before any config is
    parsed or loaded (a reload reads them again)."""
    os.environ["STRANGLER_TEST_INTERNAL_TOKEN"] = INTERNAL_TOKEN
    os.environ["STRANGLER_TEST_SESSION_KEY"] = SESSION_KEY.decode()
    os.environ["STRANGLER_TEST_ADMIN_TOKEN"] = ADMIN_TOKEN
