"""``python -m legacy_shop serve|init-db``; ``main`` is reusable by another CLI."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import structlog
from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from legacy_shop.app import create_app
from legacy_shop.log import configure_logging
from legacy_shop.seed import init_db
from legacy_shop.settings import DEFAULT_DATABASE_URL, DEFAULT_SESSION_IDLE_S, Settings

TOKEN_ENV = "STRANGLER_INTERNAL_TOKEN"  # noqa: S105 (a variable name, not a secret)
SHUTDOWN_TIMEOUT_S = 10.0

log = structlog.get_logger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="legacy_shop", description="The monolith shop.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run one node")
    serve.add_argument("--node-id", default="a")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8081)
    serve.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    serve.add_argument("--internal-token-file", type=Path, default=None,
                       help=f"file holding the internal token (else ${TOKEN_ENV}; none: off)")
    serve.add_argument("--session-idle-seconds", type=float, default=DEFAULT_SESSION_IDLE_S)
    serve.add_argument("--log-level", default="info",
                       choices=["debug", "info", "warning", "error"])
    init = sub.add_parser("init-db", help="create tables and seed (idempotent)")
    init.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    init.add_argument("--log-level", default="info",
                      choices=["debug", "info", "warning", "error"])
    return parser


def read_token(path: Path | None, env: dict[str, str] | os._Environ[str] = os.environ
               ) -> str | None:
    """The internal token from ``path`` if given, else from the environment; blank -> None."""
    raw = path.read_text(encoding="utf-8") if path is not None else env.get(TOKEN_ENV, "")
    return raw.strip() or None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command in ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
    try:
        if args.command == "init-db":
            asyncio.run(init_db(args.database_url))
            return 0
        settings = Settings(node_id=args.node_id, database_url=args.database_url,
                            internal_token=read_token(args.internal_token_file),
                            session_idle_s=args.session_idle_seconds)
        serve(settings, args.host, args.port)
        return 0
    except (SQLAlchemyError, OSError, ValueError) as exc:
        # Unreachable database, port in use, unreadable token file, bad setting:
        # one line that says so beats a traceback.
        log.error("startup_failed", command=args.command, error=f"{type(exc).__name__}: {exc}")
        print(f"legacy_shop {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def serve(settings: Settings, host: str, port: int) -> None:
    """Run a node until SIGTERM/SIGINT, then finish in-flight requests and exit."""
    if settings.internal_token is None:
        log.warning("internal_endpoints_disabled", reason="no internal token configured")
    log.info("node_listening", node=settings.node_id, host=host, port=port)
    web.run_app(create_app(settings), host=host, port=port, loop=_new_loop(),
                access_log=None, print=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S,
                handle_signals=True)
    log.info("node_stopped", node=settings.node_id)


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency, but optional here
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
