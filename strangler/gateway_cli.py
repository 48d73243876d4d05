"""``strangler gateway``: one process, or ``--workers N`` under a supervisor."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable

from gateway.settings import Config, Listen


def add_options(g: argparse.ArgumentParser) -> None:
    g.add_argument("--workers", type=int, default=1,
                   help="gateway processes sharing the ports (SO_REUSEPORT); default 1")
    g.add_argument("--worker-admin-ports", type=int, metavar="BASE",
                   help="with --workers: worker i also serves the admin API on BASE+i "
                        "(per-worker /metrics)")
    g.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)


def run(cfg: Config, args: argparse.Namespace, reload_config: Callable[[], Config],
        run_loop: Callable[[object], None]) -> int:
    """``reload_config`` loads the file again with the same command-line overrides."""
    from gateway.observe import log
    from gateway.runtime.process import serve
    from gateway.runtime.workers import role_from_env
    from gateway.session.tokens import SigningKeyError

    if args.workers < 1:
        print("strangler: --workers must be at least 1", file=sys.stderr)
        return 2
    try:
        if args.workers > 1 and args.worker_index is None:
            return _supervise(cfg, args)
        if args.worker_index is None:
            log.configure(cfg.gateway.log_level)
            run_loop(serve(cfg, load=reload_config))
            return 0
        admin = None
        if args.worker_admin_ports:
            admin = Listen(host=cfg.gateway.admin_listen.host,
                           port=args.worker_admin_ports + args.worker_index)
        log.configure(cfg.gateway.log_level, static={"worker": args.worker_index})
        run_loop(serve(cfg, load=reload_config, worker=role_from_env(args.worker_index, admin)))
    except SigningKeyError as exc:
        print(f"strangler: {exc}", file=sys.stderr)
        return 2
    return 0


def _supervise(cfg: Config, args: argparse.Namespace) -> int:
    """Refuse before forking what would fail in every worker; then start the workers."""
    from gateway.observe import log
    from gateway.runtime.app import Gateway
    from gateway.runtime.workers import Supervisor, check_ports

    Gateway(cfg)  # reads the secrets and the signing key: ConfigError / SigningKeyError
    g = cfg.gateway
    listens = {"gateway.listen": g.listen, "gateway.admin_listen": g.admin_listen}
    for i in range(args.workers if args.worker_admin_ports else 0):
        listens[f"--worker-admin-ports (worker {i})"] = Listen(
            host=g.admin_listen.host, port=args.worker_admin_ports + i)
    check_ports(listens)
    log.configure(g.log_level, static={"role": "supervisor"})

    def argv(index: int) -> list[str]:
        out = [sys.executable, "-m", "strangler", "--config", args.config, "gateway",
               "--worker-index", str(index), "--workers", str(args.workers)]
        for flag, value in (("--port", args.port), ("--admin-port", args.admin_port),
                            ("--redis-url", args.redis_url),
                            ("--worker-admin-ports", args.worker_admin_ports)):
            if value is not None:
                out += [flag, str(value)]
        return out

    grace = g.shutdown.drain_s + g.shutdown.timeout_s + 10
    return asyncio.run(Supervisor(args.workers, argv, stop_grace_s=grace).run())
