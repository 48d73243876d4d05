"""``strangler hook check URL --token-file F``: argument parsing, output, exit status.

Needs no config.yaml: everything it needs is on its command line.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from yarl import URL

from strangler.hookcheck import render
from strangler.hookcheck.client import DEFAULT_TIMEOUT_S, AiohttpTransport, HookClient
from strangler.hookcheck.context import OVERSIZE_BYTES, new_session_id
from strangler.hookcheck.runner import CheckImpossible, Report, check_hook

DESCRIPTION = """\
Check a running monolith node's session-export hook against docs/protocol.md
section 4 and print one line per rule: what was expected, what was seen.

The check needs live sessions, and it never touches a session it did not
create: it makes one throwaway session through the hook itself (an import of
an id it generates, with data of its own under keys starting "hookcheck_"),
runs the rules on it and on a second id that must stay unknown, and deletes
it at the end. No request names any other id. A fence is left noted for the
two ids (nodes keep fences in memory). Ids the node would refuse can be
replaced with --session-id; the check refuses to start if one names a session.

Exit status: 0 every rule passes; 1 a rule fails (or could not be run);
2 the check could not be made (bad URL, unreadable token file, no answer,
token refused, a --session-id in use).
"""


class UsageError(Exception):
    """A command line the check cannot run with (exit 2)."""


def add_parser(sub: Any) -> None:
    """Register ``hook check`` on the ``strangler`` sub-command parser."""
    hook = sub.add_parser("hook", help="check a monolith's session-export hook")
    hsub = hook.add_subparsers(dest="hook_command", required=True)
    check = hsub.add_parser("check", help="hold a running node's hook to the protocol",
                            description=DESCRIPTION,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    check.add_argument("url", help="base URL of one node, e.g. http://127.0.0.1:8101 "
                       "(the hook is at URL/_internal/sessions/{sid})")
    check.add_argument("--token-file", required=True, type=Path,
                       help="file holding the node's internal token (X-Internal-Token)")
    check.add_argument("--session-id", action="append", default=[], metavar="SID",
                       help="an id for the throwaway session instead of a generated one; "
                       "given twice, the second is the id that must stay unknown. "
                       "Must not name a live session")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.add_argument("--timeout", type=_seconds, default=DEFAULT_TIMEOUT_S,
                       help="seconds to wait for each answer (default: %(default)s)")
    check.add_argument("--oversize-bytes", type=_size, default=OVERSIZE_BYTES,
                       help="size of the import rule 9 expects a 413 for "
                       "(default: %(default)s, 2 MiB)")


def run(args: argparse.Namespace) -> int:
    try:
        base = parse_url(args.url)
        token = read_token(args.token_file)
        sid, ghost = pick_ids(args.session_id)
    except UsageError as exc:
        return _fail(str(exc))
    try:
        report = asyncio.run(_check(base, token, sid, ghost, args))
    except CheckImpossible as exc:
        return _fail(str(exc))
    if args.json:
        print(render.as_json(report))
    elif sys.stdout.isatty():
        render.table(report, sys.stdout)
    else:
        print(render.plain(report))
    return 0 if report.ok else 1


async def _check(base: URL, token: str, sid: str, ghost: str,
                 args: argparse.Namespace) -> Report:
    async with AiohttpTransport(base, args.timeout) as transport:
        return await check_hook(HookClient(transport, token), str(base), sid, ghost,
                                ids_given=bool(args.session_id),
                                oversize_bytes=args.oversize_bytes)


def parse_url(text: str) -> URL:
    """An http(s) URL with a host and no query or fragment; a path is kept as a prefix."""
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{text!r} is not an http:// or https:// URL with a host")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise UsageError(f"{text!r}: give the node's base URL, without a query, a fragment "
                         "or credentials")
    try:
        _ = parts.port
        return URL(text.rstrip("/"))
    except ValueError as exc:
        raise UsageError(f"{text!r}: {exc}") from None


def read_token(path: Path) -> str:
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the token file {path}: "
                         f"{getattr(exc, 'strerror', None) or exc}") from None
    if not token:
        raise UsageError(f"the token file {path} is empty")
    return token


def pick_ids(given: list[str]) -> tuple[str, str]:
    """(the throwaway session's id, the id that must stay unknown)."""
    if len(given) > 2:
        raise UsageError("--session-id: at most two (the session to create, an unknown id)")
    for sid in given:
        if not sid or not sid.isprintable() or any(c.isspace() or c == "/" for c in sid):
            raise UsageError(f"--session-id {sid!r}: not a usable session id")
    if len(given) == 2 and given[0] == given[1]:
        raise UsageError("--session-id: the two ids must differ")
    ids = [*given, new_session_id(), new_session_id()]
    return ids[0], ids[1]


def _fail(message: str) -> int:
    print(f"strangler hook check: {message}", file=sys.stderr)
    return 2


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 < value <= 600:
        raise argparse.ArgumentTypeError("must be > 0 and <= 600")
    return value


def _size(text: str) -> int:
    value = int(text)
    if value < 1024:
        raise argparse.ArgumentTypeError("must be >= 1024")
    return value
