"""``python -m new_services serve ...``: run one service instance until SIGTERM.

``main(argv)`` is the entry point another CLI (``strangler services``) delegates to.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from strangler_sdk.redis_client import (
    PASSWORD_ENV,
    SENTINEL_PASSWORD_ENV,
    parse_nodes,
    parse_sentinel,
)

from .app import make_app
from .log import configure_logging
from .settings import DEFAULT_JWT_ISSUER, DEFAULT_SESSION_TTL_S, Settings

log = structlog.get_logger("new_services.cli")

SHUTDOWN_TIMEOUT_S = 10.0
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
SESSION_KEY_ENV = "STRANGLER_SESSION_KEY"
"""The gateway's session key (``tokens.session_key``): names the sessions a login here makes."""


def _checked(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse ``type`` whose ValueError becomes a usage error that says why."""
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return convert


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="new_services", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve catalog, cart, checkout, orders and auth")
    serve.add_argument("--instance-id", default="n1")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8201)
    serve.add_argument("--database-url", default="sqlite+aiosqlite:///.strangler/shop.db")
    redis = serve.add_mutually_exclusive_group()
    redis.add_argument("--redis-url", help=f"one server (default: {DEFAULT_REDIS_URL})")
    redis.add_argument("--redis-sentinel", type=_checked(parse_sentinel),
                       metavar="NAME@HOST:PORT[,HOST:PORT...]",
                       help="the master NAME, found through these sentinels")
    redis.add_argument("--redis-cluster", type=_checked(parse_nodes),
                       metavar="HOST:PORT[,HOST:PORT...]", help="startup nodes of a cluster")
    serve.add_argument("--key-prefix", default="strangler")
    serve.add_argument("--session-ttl", type=int, default=DEFAULT_SESSION_TTL_S,
                       help="seconds a session record lives after its last write")
    serve.add_argument("--jwks", type=Path, required=True,
                       help="JWKS file with the gateway's Ed25519 public key(s)")
    serve.add_argument("--jwt-issuer", default=DEFAULT_JWT_ISSUER)
    serve.add_argument("--jwks-url", help="the gateway's /.well-known/jwks.json, for keys "
                       "rotated after start (each service checks aud = its own name)")
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings(
        instance_id=args.instance_id, database_url=args.database_url,
        redis_url=args.redis_url or DEFAULT_REDIS_URL, redis_sentinel=args.redis_sentinel,
        redis_cluster=args.redis_cluster or (),
        redis_password=os.environ.get(PASSWORD_ENV) or None,
        redis_sentinel_password=os.environ.get(SENTINEL_PASSWORD_ENV) or None,
        jwks_path=args.jwks, key_prefix=args.key_prefix, session_ttl_s=args.session_ttl,
        session_key=os.environ.get(SESSION_KEY_ENV, "").strip().encode(),
        jwt_issuer=args.jwt_issuer, jwks_url=args.jwks_url,
    )


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: the process's) and run the command; returns the exit code."""
    args = build_parser().parse_args(argv)
    configure_logging()
    try:
        settings = settings_from(args)
    except ValueError as exc:
        log.error("bad_settings", error=str(exc))
        return 2
    return serve(settings, args.host, args.port)


def serve(settings: Settings, host: str, port: int) -> int:
    """Run until SIGTERM or SIGINT, then finish in-flight requests and close the stores."""
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(_serve(make_app(settings), settings, host, port))
    except Exception:
        log.exception("service_failed", instance=settings.instance_id)
        return 1
    return 0


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


async def _serve(app: web.Application, settings: Settings, host: str, port: int) -> None:
    runner = web.AppRunner(app, access_log=None, handle_signals=False,
                           shutdown_timeout=SHUTDOWN_TIMEOUT_S)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        log.info("service_started", instance=settings.instance_id, host=host, port=port)
        await stop.wait()
        log.info("service_stopping", instance=settings.instance_id)
    finally:
        await runner.cleanup()
    log.info("service_stopped", instance=settings.instance_id)
