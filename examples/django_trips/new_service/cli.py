"""``python -m examples.django_trips.new_service``: run one instance until SIGTERM.

::

    python -m examples.django_trips.new_service --port 8211 --instance-id t1 \\
        --config examples/django_trips/config.yaml \\
        --database-url sqlite+aiosqlite:///.strangler/trips.db \\
        --redis-url redis://127.0.0.1:6379/0 --jwks-url http://127.0.0.1:8091/.well-known/jwks.json

The session profile, ``redis.key_prefix``, ``redis.session_ttl_s``,
``tokens.issuer`` and ``tokens.jwks_file`` come from ``--config`` (the
gateway's own config.yaml); the flags override them.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import signal
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from strangler_sdk.config import ConfigError, SdkSettings

from .app import Options, make_app

log = structlog.get_logger("trips.new_service")
SHUTDOWN_TIMEOUT_S = 10.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m examples.django_trips.new_service",
                                     description="the trips example's new service")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8211)
    parser.add_argument("--instance-id", default="t1")
    parser.add_argument("--config", type=Path, required=True,
                        help="the deployment's config.yaml (its session: profile)")
    parser.add_argument("--database-url", required=True,
                        help="Django's database, e.g. sqlite+aiosqlite:///path/trips.db")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--key-prefix", help="default: the config's redis.key_prefix")
    parser.add_argument("--jwks-url", help="the gateway's /.well-known/jwks.json")
    parser.add_argument("--jwks-file", type=Path,
                        help="default: the config's tokens.jwks_file, if it exists")
    return parser


def settings_from(args: argparse.Namespace) -> Options:
    overrides: dict[str, Any] = {"jwks_url": args.jwks_url}
    if args.key_prefix:
        overrides["key_prefix"] = args.key_prefix
    sdk = SdkSettings.from_config(args.config, **overrides)
    jwks_file = args.jwks_file or sdk.jwks_file
    if args.jwks_file is None and jwks_file is not None and not jwks_file.exists() \
            and args.jwks_url:
        jwks_file = None  # not written yet: the URL gives the keys
    return Options(args.instance_id, args.database_url, args.redis_url,
                   dataclasses.replace(sdk, jwks_file=jwks_file))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        options = settings_from(args)
    except (ConfigError, ValueError) as exc:
        log.error("bad_settings", error=str(exc))
        return 2
    try:
        asyncio.run(_serve(make_app(options), options.instance_id, args.host, args.port))
    except Exception:
        log.exception("service_failed", instance=options.instance_id)
        return 1
    return 0


async def _serve(app: web.Application, instance: str, host: str, port: int) -> None:
    runner = web.AppRunner(app, access_log=None, handle_signals=False,
                           shutdown_timeout=SHUTDOWN_TIMEOUT_S)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        log.info("service_started", instance=instance, host=host, port=port)
        await stop.wait()
    finally:
        await runner.cleanup()
    log.info("service_stopped", instance=instance)
