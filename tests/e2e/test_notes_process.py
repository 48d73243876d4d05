"""The notes app as a real process: started from its command line, ready when it says so."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import IO, Any

from tests.support.net import free_port
from tests.support.procs import ROOT

READY_TIMEOUT_S = 20.0


def read_line(stream: IO[bytes], timeout: float) -> str:
    """One line from a child's stdout, waiting at most ``timeout`` seconds for it."""
    deadline = time.monotonic() + timeout
    buffered = b""
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        while b"\n" not in buffered:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no line within {timeout}s; got {buffered!r}")
            if not selector.select(left):
                continue
            chunk = os.read(stream.fileno(), 4096)
            if not chunk:
                raise RuntimeError(f"stdout closed before a line; got {buffered!r}")
            buffered += chunk
    return buffered.split(b"\n", 1)[0].decode()


def call(method: str, url: str, payload: Any = None,
         headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(url, data=data, method=method,  # noqa: S310 (loopback)
                                     headers=headers or {})
    with urllib.request.urlopen(request, timeout=5) as resp:  # noqa: S310 (loopback only)
        return resp.status, resp.headers, json.loads(resp.read() or b"null")


def test_notes_runs_as_its_own_process(tmp_path: Path) -> None:
    port, token = free_port(), "t0k-" + os.urandom(8).hex()
    (tmp_path / "token").write_text(f"{token}\n")
    (tmp_path / "users.json").write_text(json.dumps(
        [{"id": "u-2001", "username": "zoe", "name": "Zoë Quinn", "password": "pw"}]))
    argv = [sys.executable, "-m", "tests.apps.notes", "--port", str(port), "--node", "nx",
            "--internal-token-file", str(tmp_path / "token"),
            "--users-file", str(tmp_path / "users.json")]
    log = tmp_path / "stderr.log"
    with log.open("wb") as stderr:
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert proc.stdout is not None
        line = read_line(proc.stdout, READY_TIMEOUT_S)
        base = f"http://127.0.0.1:{port}"
        assert line == f"notes ready on {base} node=nx"
        assert call("GET", f"{base}/healthz")[2] == {"ok": True, "node": "nx"}

        status, headers, user = call("POST", f"{base}/login", {"username": "zoe", "password": "pw"})
        assert status == 200 and user == {"id": "u-2001", "name": "Zoë Quinn"}
        sid = headers["X-Notes-Session"]
        assert headers["X-Notes-Rev"] == "1" and headers["X-Notes-Node"] == "nx"
        assert f"sessionid={sid};" in headers["Set-Cookie"]

        exported = call("GET", f"{base}/_internal/sessions/{sid}",
                        headers={"X-Internal-Token": token, "X-Strangler-Fence": "4"})[2]
        assert exported["session_id"] == sid and exported["node"] == "nx"
        assert exported["data"]["_auth_user_id"] == "u-2001"
    finally:
        code = stop(proc)
        print(log.read_text(errors="replace"))  # shown by pytest when the test fails
    assert code == 0


def stop(proc: subprocess.Popen[bytes]) -> int:
    """SIGTERM and wait for the exit code (SIGKILL, and fail, if it does not come in time)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
        raise
    finally:
        if proc.stdout is not None:
            proc.stdout.close()
