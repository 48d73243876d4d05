"""``python -m tests.apps.notes --port P --node ID [--host H] --internal-token-file F
[--users-file F]``: run one node until SIGTERM/SIGINT.

Prints ``notes ready on http://HOST:PORT node=ID`` on stdout once it listens
(``--port 0`` picks a free port and prints it), and one line on stderr when it
cannot start (port in use, unreadable file).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from .app import create_app
from .settings import Settings
from .users import Users, load_users


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tests.apps.notes",
                                     description="A small notes monolith (a test app).")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--node", required=True, help="node id reported in X-Notes-Node")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--internal-token-file", type=Path, required=True,
                        help="file holding the internal token (blank: hook answers 503)")
    parser.add_argument("--users-file", type=Path, default=None,
                        help='JSON list of {"id", "username", "name", "password"}')
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        token = args.internal_token_file.read_text(encoding="utf-8").strip() or None
        users = load_users(args.users_file) if args.users_file else Users()
        settings = Settings(node_id=args.node, internal_token=token)
        asyncio.run(serve(settings, users, args.host, args.port))
    except (OSError, ValueError) as exc:  # port in use, unreadable or bad file, bad setting
        print(f"notes: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


async def serve(settings: Settings, users: Users, host: str, port: int) -> None:
    """Listen, say so on stdout, and run until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(create_app(settings, users), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        bound = runner.addresses[0][1]
        print(f"notes ready on http://{host}:{bound} node={settings.node_id}", flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    raise SystemExit(main())
