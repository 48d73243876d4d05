"""``--stack``: an application's whole stack, started by the rehearsal itself.

The app's processes come from its stack file (``strangler.stackfile``: how to start
its legacy nodes and new instances, what to set up first, its databases), the rest
from the user's config -- routes, groups, breakers, timeouts as they are -- with
what a throw-away stack needs instead: the stack file's SQLite databases fresh in
the run's directory (config's ``database.url`` among them, or a file of its own),
a private Redis (so ``stop_redis`` can stop it), secrets in files of the run's own
directory, the debug backend header on, the local flag provider, and a
``DelayProxy`` in front of each new instance (the gateway's config names the proxy).
Ports are the config's, or free ones with ``free_ports`` (what tests use, so two
runs never collide). Faults act on roles -- ``legacy``, ``new``, ``redis`` -- never
on a particular app's processes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from gateway.settings import Config, ConfigError, parse
from strangler.demo import _check_ports
from strangler.keys import ensure_keypair, ensure_token
from strangler.launch import (
    Launch,
    StackError,
    empty,
    members,
    private_redis,
    resolve_databases,
)
from strangler.ports import free_port
from strangler.procs import Process, ProcessError
from strangler.rehearse.faults import DelayProxy
from strangler.stackfile import StackSpec, default_path
from strangler.stackfile import load as load_stack_file

__all__ = ["RunningStack", "StackError", "prepare", "start_stack"]


@dataclass
class RunningStack:
    dir: Path
    config_path: Path
    config: Config
    admin_token: str
    redis: Process
    launch: Launch
    legacy: dict[str, Process] = field(default_factory=dict)
    new: dict[str, Process] = field(default_factory=dict)
    proxies: dict[str, DelayProxy] = field(default_factory=dict)
    gateway: Process | None = None

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.config.gateway.listen.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.config.gateway.admin_listen.port}"

    @property
    def databases(self) -> dict[str, str]:
        """The stack file's databases by name, as SQLAlchemy URLs (integrity checks)."""
        return {name: db.url for name, db in self.launch.databases.items()}

    @property
    def database_url(self) -> str:
        """The default database: the stack file's first, else the config's."""
        return next(iter(self.databases.values()), self.config.database.url)

    def processes(self) -> list[Process]:
        gw = [self.gateway] if self.gateway else []
        return [*gw, *self.new.values(), *self.legacy.values(), self.redis]

    async def restart(self, proc: Process) -> None:
        """Kill (if alive) and start again, until it answers."""
        await asyncio.to_thread(proc.kill)
        proc.start()
        await proc.until_ready()

    async def stop(self) -> None:
        for proxy in self.proxies.values():
            await proxy.close()
        for proc in self.processes():
            proc.terminate()
        for proc in self.processes():
            await asyncio.to_thread(proc.wait, 10)


def _ports(cfg: Config, free: bool) -> dict[str, int]:
    """gateway, admin, legacy:<id>, proxy:<id> (what the gateway's config names), new:<id>."""
    def port(url: str) -> int:
        return urlparse(url).port or 80

    ports = {"gateway": cfg.gateway.listen.port, "admin": cfg.gateway.admin_listen.port,
             **{f"legacy:{n.id}": port(n.url) for n in cfg.legacy.nodes},
             **{f"proxy:{n.id}": port(n.url) for n in cfg.new.instances}}
    if free:
        ports = {k: free_port() for k in ports}
    else:
        try:
            _check_ports(cfg)
        except ConfigError as exc:
            raise ConfigError(f"{exc} Or add --free-ports: the stack then listens on free "
                              "ports.") from None
    ports.update({f"new:{n.id}": free_port() for n in cfg.new.instances})
    return ports


def _stack_config(raw: dict[str, Any], cfg: Config, workdir: Path, ports: dict[str, int],
                  redis_url: str, database_url: str) -> dict[str, Any]:
    doc = {k: v for k, v in raw.items()}
    local = "http://127.0.0.1:{}"
    gateway = dict(doc.get("gateway") or {})
    gateway.update({"listen": {"host": "127.0.0.1", "port": ports["gateway"]},
                    "admin_listen": {"host": "127.0.0.1", "port": ports["admin"]},
                    "admin_token": {"file": str(workdir / "admin-token")},
                    "debug_backend_header": True})
    doc["gateway"] = gateway
    doc["redis"] = {**(doc.get("redis") or {}), "url": redis_url, "key_prefix": "rehearsal"}
    doc["database"] = {"url": database_url}
    doc["legacy"] = {"nodes": [{"id": n.id, "url": local.format(ports[f"legacy:{n.id}"])}
                               for n in cfg.legacy.nodes],
                     "internal_token": {"file": str(workdir / "internal-token")}}
    doc["new"] = {**(doc.get("new") or {}),
                  "instances": [{"id": n.id, "url": local.format(ports[f"proxy:{n.id}"])}
                                for n in cfg.new.instances]}
    doc["tokens"] = {**(doc.get("tokens") or {}),
                     "private_key_file": str(workdir / "keys" / "jwt-private.pem"),
                     "jwks_file": str(workdir / "keys" / "jwks.json"),
                     "session_key": {"file": str(workdir / "session-key")}}
    flags = {k: v for k, v in (doc.get("flags") or {}).items() if k == "poll_interval_ms"}
    doc["flags"] = {**flags, "provider": "local", "kill_switch": False}
    return doc


async def start_stack(config_path: Path, workdir: Path, free_ports: bool,
                      stack_file: Path | None = None) -> RunningStack:
    """Start every process of the app's stack (``stack_file``, default ``stack.yaml`` next
    to the config); stops what it started if one fails."""
    stack, ports = await asyncio.to_thread(prepare, config_path, workdir, free_ports,
                                           stack_file)
    try:
        await _start_all(stack, ports)
    except ProcessError as exc:
        await stack.stop()
        raise StackError(str(exc)) from None
    except BaseException:
        await stack.stop()
        raise
    return stack


def prepare(config_path: Path, workdir: Path, free_ports: bool,
            stack_file: Path | None = None) -> tuple[RunningStack, dict[str, int]]:
    """Ports, secrets, fresh databases and the stack's config file; nothing started yet.
    Raises StackFileError (the stack file) or ConfigError (the config)."""
    stack_file = stack_file or default_path(config_path)
    spec: StackSpec = load_stack_file(stack_file)
    raw = yaml.safe_load(config_path.read_text())
    cfg = parse(raw, str(config_path))
    workdir = workdir.resolve()
    (workdir / "logs").mkdir(parents=True, exist_ok=True)
    ports = _ports(cfg, free_ports)
    rport = free_port()
    redis = private_redis(rport, workdir, workdir / "logs")
    ensure_keypair(workdir / "keys" / "jwt-private.pem", workdir / "keys" / "jwks.json")
    token = ensure_token(workdir / "admin-token")
    ensure_token(workdir / "internal-token")
    ensure_token(workdir / "session-key")
    databases = resolve_databases(spec, cfg, workdir, own_config_db=True)
    empty(databases)
    config_db = next((databases[n] for n, d in spec.databases.items() if d.from_config), None)
    database_url = config_db.url if config_db else f"sqlite+aiosqlite:///{workdir / 'gateway.db'}"
    redis_url = f"redis://127.0.0.1:{rport}/0"
    doc = _stack_config(raw, cfg, workdir, ports, redis_url, database_url)
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    stack_cfg = parse(doc, "stack config")
    launch = Launch(spec, stack_file.resolve().parent, workdir, path, stack_cfg, redis_url,
                    databases)
    return RunningStack(workdir, path, stack_cfg, token, redis, launch), ports


async def _start_all(stack: RunningStack, ports: dict[str, int]) -> None:
    cfg, logs, launch = stack.config, stack.dir / "logs", stack.launch
    stack.redis.start()
    await stack.redis.until_ready(10)
    await asyncio.to_thread(launch.run_setup, logs)
    for m in members(cfg.legacy.nodes):
        stack.legacy[m.id] = launch.process("legacy", m, logs)
    for m in members(cfg.new.instances):
        port = ports[f"new:{m.id}"]
        stack.new[m.id] = launch.process("new", m, logs, listen_port=port)
        stack.proxies[m.id] = DelayProxy(m.port, port)
    for proc in [*stack.legacy.values(), *stack.new.values()]:
        proc.start()
    await asyncio.gather(*(p.until_ready(launch.spec.legacy.ready_within_s)
                           for p in stack.legacy.values()),
                         *(p.until_ready(launch.spec.new.ready_within_s)
                           for p in stack.new.values()))
    for proxy in stack.proxies.values():
        await proxy.start()
    stack.gateway = launch.gateway(logs)
    stack.gateway.start()
    await stack.gateway.until_ready()
