"""``--stack``: the whole demo stack, started by the rehearsal itself.

Built from ``strangler demo``'s pieces (its child processes, its private
Redis, its key and token helpers) and the user's config.yaml -- routes,
groups, breakers, timeouts as they are -- with what a throw-away stack needs
instead: a fresh SQLite database, a private Redis (so ``stop_redis`` can stop
it), secrets in files of the run's own directory, the debug backend header on,
the local flag provider, and a ``DelayProxy`` in front of each new instance
(the gateway's config names the proxy). Ports are config.yaml's, or free ones
with ``free_ports`` (what tests use, so two runs never collide).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from gateway.settings import Config, ConfigError, parse
from strangler.demo import Child, _check_ports, _healthy, _redis_answers, _redis_binary
from strangler.keys import ensure_keypair, ensure_token
from strangler.rehearse.faults import DelayProxy
from testkit.net import free_port


class StackError(Exception):
    """The stack could not be started; the message ends with the failing log's tail."""


@dataclass
class StackProcess(Child):
    log_dir: Path = Path(".")
    probe: Callable[[], bool] | None = None

    @property
    def log(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    def ready(self) -> bool:
        if self.probe is not None:
            return self.probe()
        return self.health is None or _healthy(self.health)

    async def wait_ready(self, within_s: float = 30) -> None:
        deadline = asyncio.get_running_loop().time() + within_s
        while not await asyncio.to_thread(self.ready):
            if not self.alive():
                raise StackError(f"{self.name} exited; last log lines:\n{self.tail()}")
            if asyncio.get_running_loop().time() > deadline:
                raise StackError(f"{self.name} not ready after {within_s:g} s:\n{self.tail()}")
            await asyncio.sleep(0.1)

    def _signal(self, sig: signal.Signals) -> None:
        if self.alive() and self.popen is not None:
            os.killpg(self.popen.pid, sig)

    async def kill(self) -> None:
        """SIGKILL: everything in the process's memory is gone, as in a crash."""
        self._signal(signal.SIGKILL)
        if self.popen is not None:
            await asyncio.to_thread(self.popen.wait)

    async def pause(self) -> None:
        """SIGSTOP: it keeps its sockets and answers nothing (a hung server)."""
        self._signal(signal.SIGSTOP)

    async def resume(self) -> None:
        self._signal(signal.SIGCONT)

    async def restart(self) -> None:
        await self.kill()
        self.start()
        await self.wait_ready()

    def terminate(self) -> None:
        self._signal(signal.SIGCONT)  # a paused process must wake to exit
        self.stop()


@dataclass
class RunningStack:
    dir: Path
    config_path: Path
    config: Config
    admin_token: str
    redis: StackProcess
    legacy: dict[str, StackProcess] = field(default_factory=dict)
    new: dict[str, StackProcess] = field(default_factory=dict)
    proxies: dict[str, DelayProxy] = field(default_factory=dict)
    gateway: StackProcess | None = None

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.config.gateway.listen.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.config.gateway.admin_listen.port}"

    @property
    def database_url(self) -> str:
        return self.config.database.url

    def processes(self) -> list[StackProcess]:
        gw = [self.gateway] if self.gateway else []
        return [*gw, *self.new.values(), *self.legacy.values(), self.redis]

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
        _check_ports(cfg)
    ports.update({f"new:{n.id}": free_port() for n in cfg.new.instances})
    return ports


def _stack_config(raw: dict[str, Any], cfg: Config, workdir: Path, ports: dict[str, int],
                  redis_url: str) -> dict[str, Any]:
    doc = {k: v for k, v in raw.items()}
    local = "http://127.0.0.1:{}"
    gateway = dict(doc.get("gateway") or {})
    gateway.update({"listen": {"host": "127.0.0.1", "port": ports["gateway"]},
                    "admin_listen": {"host": "127.0.0.1", "port": ports["admin"]},
                    "admin_token": {"file": str(workdir / "admin-token")},
                    "debug_backend_header": True})
    doc["gateway"] = gateway
    doc["redis"] = {**(doc.get("redis") or {}), "url": redis_url, "key_prefix": "rehearsal"}
    doc["database"] = {"url": f"sqlite+aiosqlite:///{workdir / 'shop.db'}"}
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


async def start_stack(config_path: Path, workdir: Path, free_ports: bool) -> RunningStack:
    """Start every process of the demo stack; stops what it started if one fails."""
    stack, ports = await asyncio.to_thread(prepare, config_path, workdir, free_ports)
    try:
        await _start_all(stack, ports)
    except BaseException:
        await stack.stop()
        raise
    return stack


def prepare(config_path: Path, workdir: Path, free_ports: bool
            ) -> tuple[RunningStack, dict[str, int]]:
    """Ports, secrets and the stack's config file; nothing started yet."""
    raw = yaml.safe_load(config_path.read_text())
    cfg = parse(raw, str(config_path))
    workdir = workdir.resolve()
    (workdir / "logs").mkdir(parents=True, exist_ok=True)
    ports = _ports(cfg, free_ports)
    binary = _redis_binary()
    if binary is None:
        raise ConfigError("--stack needs a redis-server on PATH (apt install redis-server)")
    rport = free_port()
    redis = StackProcess("redis", [binary, "--port", str(rport), "--bind", "127.0.0.1",
                                   "--save", "", "--appendonly", "no", "--dir", str(workdir)],
                         None, log_dir=workdir / "logs", probe=lambda: _redis_answers(rport))
    ensure_keypair(workdir / "keys" / "jwt-private.pem", workdir / "keys" / "jwks.json")
    token = ensure_token(workdir / "admin-token")
    ensure_token(workdir / "internal-token")
    ensure_token(workdir / "session-key")
    doc = _stack_config(raw, cfg, workdir, ports, f"redis://127.0.0.1:{rport}/0")
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return RunningStack(workdir, path, parse(doc, "stack config"), token, redis), ports


async def _start_all(stack: RunningStack, ports: dict[str, int]) -> None:
    cfg, logs = stack.config, stack.dir / "logs"
    base = [sys.executable, "-m", "strangler", "--config", str(stack.config_path)]
    redis_url = str(cfg.redis.url)
    stack.redis.start()
    await stack.redis.wait_ready(10)
    init = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "legacy_shop", "init-db", "--database-url",
                         cfg.database.url], capture_output=True, text=True, check=False)
    if init.returncode:
        raise StackError(f"could not initialise the shop database:\n{init.stderr[-2000:]}")
    for n in cfg.legacy.nodes:
        stack.legacy[n.id] = StackProcess(f"legacy-{n.id}", [*base, "legacy", "--node-id", n.id],
                                          n.url + cfg.health.path, log_dir=logs)
    for n in cfg.new.instances:
        port = ports[f"new:{n.id}"]
        stack.new[n.id] = StackProcess(
            f"services-{n.id}", [*base, "services", "--instance-id", n.id, "--port", str(port),
                                 "--redis-url", redis_url],
            f"http://127.0.0.1:{port}{cfg.health.path}", log_dir=logs)
        stack.proxies[n.id] = DelayProxy(ports[f"proxy:{n.id}"], port)
    backends = [*stack.legacy.values(), *stack.new.values()]
    for proc in backends:
        proc.start()
    await asyncio.gather(*(p.wait_ready() for p in backends))
    for proxy in stack.proxies.values():
        await proxy.start()
    stack.gateway = StackProcess("gateway", [*base, "gateway", "--redis-url", redis_url],
                                 f"{stack.admin_url}/readyz", log_dir=logs)
    stack.gateway.start()
    await stack.gateway.wait_ready()
