"""``python -m new_services serve`` as a real process: it serves, logs JSON, stops on SIGTERM."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

from tests.integration.test_new_support import create_shop_db
from tests.support.keys import KeyPair
from tests.support.net import free_port
from tests.support.procs import Proc, python_module


def fetch(url: str, headers: dict[str, str] | None = None) -> Any:
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 (loopback only)
    with urllib.request.urlopen(request, timeout=5) as resp:  # noqa: S310
        return json.loads(resp.read())


async def test_the_service_process_serves_and_stops_cleanly(
    tmp_path: Path, keypair: KeyPair, redis_url: str, key_prefix: str
) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}"
    await create_shop_db(database_url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = Proc(
        name="svc-p1",
        argv=python_module("new_services", "serve", "--instance-id", "p1",
                           "--host", "127.0.0.1", "--port", str(port),
                           "--database-url", database_url, "--redis-url", redis_url,
                           "--key-prefix", key_prefix, "--session-ttl", "600",
                           "--jwks", str(keypair.jwks), "--jwt-issuer", "strangler-gateway"),
        log_dir=tmp_path,
        ready_url=f"{base}/healthz",
    )
    proc.start()
    try:
        assert fetch(f"{base}/healthz") == {"status": "ok", "instance": "p1"}
        products = fetch(f"{base}/api/products", {"X-Request-Id": "proc-test-1"})["products"]
        assert [p["id"] for p in products] == list(range(1, 13))
        assert fetch(f"{base}/readyz")["status"] == "ready"
    finally:
        proc.stop()
    assert proc.popen is not None and proc.popen.returncode == 0, proc.tail()
    events = [json.loads(line) for line in proc.log_path.read_text().splitlines()
              if line.startswith("{")]
    names = [e["event"] for e in events]
    assert "service_started" in names and names[-1] == "service_stopped"
    assert any(e.get("request_id") == "proc-test-1" and e.get("path") == "/api/products"
               for e in events)
