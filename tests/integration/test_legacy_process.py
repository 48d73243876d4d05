"""The monolith as a real process: ``python -m legacy_shop serve`` and ``init-db``."""

from __future__ import annotations

import json
import socket
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

from tests.support.net import free_port
from tests.support.procs import ROOT, Proc, python_module


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 (loopback)
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:  # noqa: S310
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_serve_answers_and_stops_on_sigterm(tmp_path: Path, sqlite_url: str) -> None:
    port = free_port()
    token_file = tmp_path / "token"
    token_file.write_text("process-token\n")
    proc = Proc(
        "legacy-a",
        python_module("legacy_shop", "serve", "--node-id", "a", "--host", "127.0.0.1",
                      "--port", str(port), "--database-url", sqlite_url,
                      "--internal-token-file", str(token_file)),
        log_dir=tmp_path,
        ready_url=f"http://127.0.0.1:{port}/healthz",
    )
    proc.start()
    try:
        base = f"http://127.0.0.1:{port}"
        status, health = _get(f"{base}/healthz")
        assert status == 200 and health["status"] == "ok" and health["node"] == "a"
        assert len(health["boot_id"]) >= 8
        status, body = _get(f"{base}/api/products")
        assert status == 200 and len(body["products"]) == 12
        internal = f"{base}/_internal/sessions/{'s' * 43}"
        assert _get(internal, {"X-Internal-Token": "process-token"})[0] == 404
        assert _get(internal, {"X-Internal-Token": "wrong"})[0] == 403
    finally:
        proc.stop()
    assert proc.popen is not None and proc.popen.returncode == 0, proc.tail()
    lines = [json.loads(line) for line in proc.log_path.read_text().splitlines() if line]
    events = [line["event"] for line in lines]
    assert "node_started" in events and events[-1] == "node_stopped"
    assert all("process-token" not in json.dumps(line) for line in lines)


def test_init_db_from_two_processes_at_once(tmp_path: Path, database_url: str) -> None:
    argv = python_module("legacy_shop", "init-db", "--database-url", database_url)
    procs = [subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for _ in range(2)]
    outputs = [p.communicate(timeout=60)[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    seeded = [json.loads(line)["seeded"] for out in outputs for line in out.splitlines()
              if '"db_initialized"' in line]
    assert sorted(seeded) == [False, True]


def test_startup_failures_exit_1_with_one_line(sqlite_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        serve = subprocess.run(
            python_module("legacy_shop", "serve", "--port", str(port), "--database-url",
                          sqlite_url),
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )
    assert serve.returncode == 1 and "address already in use" in serve.stderr
    init = subprocess.run(
        python_module("legacy_shop", "init-db", "--database-url",
                      "postgresql://postgres@127.0.0.1:1/nothing"),
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert init.returncode == 1 and init.stderr.startswith("legacy_shop init-db:")
    assert "Traceback" not in init.stderr
