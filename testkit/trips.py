"""The Django trips example (examples/django_trips/legacy) as real processes.

``TripsSite`` owns one site's files (a fresh SQLite database, the shared
SECRET_KEY and internal token files), runs ``migrate`` and ``seed`` (each a
checked setup step), and makes nodes: each a ``gunicorn`` process (one worker,
eight threads) whose sessions live in its own memory. ``TripsClient`` is one browser
against one node (it keeps the ``sessionid`` cookie).
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .net import free_port
from .procs import ROOT, Proc

LEGACY = ROOT / "examples" / "django_trips" / "legacy"
SESSION_COOKIE = "sessionid"
HEADERS = {"session_id": "X-Trips-Session", "revision": "X-Trips-Rev", "node": "X-Trips-Node"}
PASSWORD = "trips-demo"


@dataclass
class TripsSite:
    """Files shared by every node of one site, under ``root``."""

    root: Path

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.db = self.root / "trips.sqlite3"
        self.secret_key_file = self.root / "secret-key"
        self.token_file = self.root / "internal-token"
        for path in (self.secret_key_file, self.token_file):
            if not path.exists():
                path.write_text(secrets.token_urlsafe(48))
                path.chmod(0o600)

    def env(self, node_id: str = "a") -> dict[str, str]:
        return {"TRIPS_NODE_ID": node_id, "TRIPS_DB": str(self.db),
                "TRIPS_SECRET_KEY_FILE": str(self.secret_key_file),
                "TRIPS_INTERNAL_TOKEN_FILE": str(self.token_file),
                "DJANGO_SETTINGS_MODULE": "trips.settings"}

    def manage(self, *args: str, extra_env: dict[str, str] | None = None,
               timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """``python manage.py ARGS`` in the project's folder (not checked: callers assert)."""
        env = {**os.environ, **self.env(), **(extra_env or {})}
        return subprocess.run([sys.executable, "manage.py", *args], cwd=LEGACY, env=env,
                              capture_output=True, text=True, timeout=timeout, check=False)

    def prepare(self) -> None:
        """``migrate`` then ``seed``; raises with their output when either fails."""
        for step in (("migrate", "--noinput"), ("seed",)):
            done = self.manage(*step)
            if done.returncode != 0:
                raise RuntimeError(f"manage.py {' '.join(step)} failed "
                                   f"({done.returncode}):\n{done.stdout}\n{done.stderr}")

    def node(self, node_id: str, port: int | None = None, log_dir: Path | None = None,
             workers: int = 1) -> Proc:
        """A node (not started): ``Proc.start()`` waits for its ``/healthz``. A node is one
        process (its sessions live in its memory); ``workers`` > 1 only makes sense with a
        session engine the processes share."""
        port = port or free_port()
        argv = [sys.executable, "-m", "gunicorn", "--chdir", str(LEGACY), "--workers", str(workers),
                "--threads", "8", "--bind", f"127.0.0.1:{port}", "--graceful-timeout", "5",
                "--no-control-socket",  # two nodes would share its default path
                "trips.wsgi"]
        return Proc(f"trips-{node_id}", argv, log_dir or self.root, env=self.env(node_id),
                    ready_url=f"http://127.0.0.1:{port}/healthz")


def base_url(proc: Proc) -> str:
    """``http://127.0.0.1:PORT`` of a node made by ``TripsSite.node``."""
    assert proc.ready_url is not None
    return proc.ready_url.removesuffix("/healthz")


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    """Lower-cased names; a repeated header keeps its last value."""
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class TripsClient:
    """One browser against one node: keeps the ``sessionid`` cookie the node sets."""

    def __init__(self, base: str, cookie: str | None = None) -> None:
        self.base = base
        self.cookie = cookie

    def call(self, method: str, path: str, body: Any = None,
             headers: dict[str, str] | None = None, raw: bytes | None = None) -> Answer:
        """One request; ``body`` is sent as JSON, ``raw`` as given (with a JSON type)."""
        url = urlsplit(self.base)
        conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=10)
        sent = dict(headers or {})
        if self.cookie is not None:
            sent["Cookie"] = f"{SESSION_COOKIE}={self.cookie}"
        if body is not None:
            raw = json.dumps(body).encode()
        if raw is not None:
            sent["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=raw, headers=sent)
            resp = conn.getresponse()
            answer = Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()},
                            resp.read())
            self._remember(resp.msg.get_all("Set-Cookie") or [])
        finally:
            conn.close()
        return answer

    def _remember(self, set_cookies: list[str]) -> None:
        for line in set_cookies:
            jar: SimpleCookie = SimpleCookie()
            jar.load(line)
            if SESSION_COOKIE in jar:
                morsel = jar[SESSION_COOKIE]
                self.cookie = morsel.value if morsel.value and morsel["max-age"] != "0" else None

    def login(self, username: str = "ann") -> Answer:
        return self.call("POST", "/accounts/login", {"username": username, "password": PASSWORD})
