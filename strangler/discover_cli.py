"""``strangler session discover``: propose the ``session:`` block of a monolith.

Two sources of samples, both read only:

- ``--admin URL``: ask a running gateway (``GET /api/session/schema``), whose
  sampler has watched the sessions its bridge exported anyway;
- ``--hook URL --session-id SID...``: export the given sessions straight from
  the monolith's hook (``GET /_internal/sessions/{sid}`` with the internal
  token, docs/protocol.md section 4), ``--samples`` times, ``--interval-s``
  apart, trying each ``--hook`` node in turn. Never with a fence, never a
  ``PUT`` or ``DELETE``: the monolith's sessions are only read.

The hook exports JSON; nothing native (pickles, PHP-serialised blobs...) is
ever decoded. Prints the proposed YAML block (with ``--stats``, the table per
key path first, as YAML comments, so the output still pastes); values of
sessions are never printed, only key names and figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from adapters.discovery import Proposal, SessionShapes, Summary, propose
from adapters.document import SessionFormatError, loads
from adapters.profile import ProfileSpec
from adapters.wire import INTERNAL_SESSIONS_PATH, INTERNAL_TOKEN_HEADER
from gateway.settings import Config
from strangler.shadow_cli import admin_url

_MAX_EXPORT = 4 * 1024 * 1024


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """The internal token goes to the URL given, never where a redirect points."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


# no proxy from the environment either: the hook and the admin API are internal
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect)


class Refused(Exception):
    """The command cannot go on: the message says why (exit 1 or 2)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def add_parser(sub: Any) -> None:
    """Register ``session discover`` on the ``strangler`` sub-command parser."""
    session = sub.add_parser("session", help="the monolith's session: discover its shape")
    ssub = session.add_subparsers(dest="session_command", required=True)
    d = ssub.add_parser("discover", help="sample sessions and propose the session: block "
                        "of config.yaml (shapes and counts only, never values)")
    src = d.add_mutually_exclusive_group()
    src.add_argument("--admin", help="admin URL of a running gateway "
                     "(default: gateway.admin_listen of the config)")
    src.add_argument("--hook", action="append", metavar="URL",
                     help="base URL of a monolith node with the export hook (repeat for "
                          "several nodes: each session is asked of each in turn)")
    d.add_argument("--token-file", type=Path, help="--hook: file holding the internal token "
                   "(default: legacy.internal_token of the config)")
    d.add_argument("--session-id", action="extend", nargs="+", metavar="SID", default=[],
                   help="--hook: sessions to sample")
    d.add_argument("--samples", type=_count, default=2,
                   help="--hook: rounds of exports (default: %(default)s; two or more show "
                        "what changes)")
    d.add_argument("--interval-s", type=float, default=10.0,
                   help="--hook: seconds between rounds (default: %(default)s)")
    d.add_argument("--cookie", help="the monolith's session cookie (else a placeholder to edit; "
                   "with --admin, the gateway's)")
    d.add_argument("--duplicate-cookies", choices=("first", "last", "reject"),
                   help="which of two such cookies the monolith's framework reads")
    d.add_argument("--headers", type=_headers, metavar="SESSION_ID,REVISION,NODE",
                   help="the monolith's session response headers (else the defaults, marked "
                        "to check; with --admin, the gateway's)")
    d.add_argument("--stats", action="store_true", help="also print the table per key path")
    d.add_argument("--json", action="store_true", help="print statistics and proposal as JSON")


def _count(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _headers(text: str) -> dict[str, str]:
    names = [n.strip() for n in text.split(",")]
    if len(names) != 3 or not all(names):
        raise argparse.ArgumentTypeError("three header names: SESSION_ID,REVISION,NODE")
    return dict(zip(("session_id", "revision", "node"), names, strict=True))


def run(cfg: Config | None, args: argparse.Namespace) -> int:
    try:
        _check_given(args)
        if args.hook:
            summary, proposal = _from_hooks(cfg, args)
        else:
            summary, proposal = _from_gateway(cfg, args)
    except Refused as exc:
        print(f"strangler session discover: {exc}", file=sys.stderr)
        return exc.code
    except ValueError as exc:  # a --cookie or --headers the profile refuses
        print(f"strangler session discover: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"stats": summary.to_json(), "proposal": proposal.to_json()}, indent=2))
        return 0
    if args.stats:
        print("\n".join(f"# {line}" for line in table(summary).splitlines()))
        print("#")
    print(proposal.yaml, end="")
    return 0


def _check_given(args: argparse.Namespace) -> None:
    """A --cookie or --headers the profile would refuse fails before any sampling."""
    spec: dict[str, Any] = {"cookie": args.cookie or "x", "duplicate_cookies": "last",
                            "identity": {"user_id": {"path": "/x"}}}
    if args.headers:
        spec["headers"] = args.headers
    try:
        ProfileSpec.model_validate(spec)
    except ValueError as exc:
        raise Refused(str(exc), 2) from None


# ---------------------------------------------------------------- through the hook
def _from_hooks(cfg: Config | None, args: argparse.Namespace) -> tuple[Summary, Proposal]:
    if not args.session_id:
        raise Refused("--hook needs at least one --session-id", 2)
    token = _token(cfg, args.token_file)
    shapes = SessionShapes()
    found: set[str] = set()
    for round_ in range(args.samples):
        if round_:
            time.sleep(args.interval_s)
        for sid in args.session_id:
            data = _export(args.hook, token, sid)
            if data is not None:
                shapes.add(sid, time.time(), data)
                found.add(sid)
    missing = [s for s in args.session_id if s not in found]
    if missing:
        print(f"strangler session discover: {len(missing)} of {len(args.session_id)} sessions "
              "were never found on the hook nodes", file=sys.stderr)
    if not found:
        raise Refused("no session could be sampled")
    summary = shapes.summary()
    return summary, propose(summary, cookie=args.cookie,
                            duplicate_cookies=args.duplicate_cookies, headers=args.headers)


def _token(cfg: Config | None, token_file: Path | None) -> str:
    if token_file is not None:
        try:
            token = token_file.read_text().strip()
        except OSError as exc:
            raise Refused(f"--token-file: {exc}", 2) from None
    else:
        token = (cfg.legacy.internal_token.read() if cfg is not None else None) or ""
    if not token:
        raise Refused("no internal token: give --token-file (or set legacy.internal_token)", 2)
    return token


def _export(hooks: list[str], token: str, sid: str) -> Any:
    """The session's ``data`` from the first node that holds it; None if none does."""
    path = INTERNAL_SESSIONS_PATH.format(sid=urllib.parse.quote(sid, safe=""))
    for base in hooks:
        request = urllib.request.Request(_http(base) + path,  # noqa: S310 (checked: http(s))
                                         headers={INTERNAL_TOKEN_HEADER: token})
        try:
            with _OPENER.open(request, timeout=10) as resp:
                raw = resp.read(_MAX_EXPORT + 1)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                continue
            raise Refused(f"{base}: the hook answered {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise Refused(f"{base}: cannot reach the hook: {exc}") from None
        if len(raw) > _MAX_EXPORT:
            raise Refused(f"{base}: an export over {_MAX_EXPORT} bytes")
        try:
            body = loads(raw, "the export")
        except SessionFormatError as exc:
            raise Refused(f"{base}: {exc} (the hook must export JSON)") from None
        if not isinstance(body, dict) or "data" not in body:
            raise Refused(f"{base}: an export without data (docs/protocol.md section 4)")
        return body["data"]
    return None


def _http(url: str) -> str:
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise Refused(f"{url}: not an http(s) URL", 2)
    return url.rstrip("/")


# ---------------------------------------------------------------- through a gateway
def _from_gateway(cfg: Config | None, args: argparse.Namespace) -> tuple[Summary, Proposal]:
    if args.session_id or args.token_file:
        raise Refused("--session-id and --token-file go with --hook", 2)
    if args.admin:
        base = _http(args.admin)
    elif cfg is not None:
        base = admin_url(cfg)
    else:
        raise Refused("give --admin URL or --hook URL (the config did not load)", 2)
    try:
        with _OPENER.open(f"{base}/api/session/schema", timeout=30) as resp:
            body = json.load(resp)
    except urllib.error.HTTPError as exc:
        raise Refused(f"{base}: {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise Refused(f"cannot read the admin API at {base}: {exc}") from None
    try:
        summary = Summary.from_json(body["stats"])
        running = body["proposal"]["session"]
        headers = {k: str(running["headers"][k]) for k in ("session_id", "revision", "node")}
        cookie, duplicates = str(running["cookie"]), str(running["duplicate_cookies"])
    except (KeyError, TypeError, ValueError) as exc:
        raise Refused(f"{base}: not a session schema answer ({exc!r})") from None
    given = [o for o, v in (("cookie", args.cookie), ("duplicate_cookies",
                                                       args.duplicate_cookies),
                            ("headers", args.headers)) if v]
    note = (f"Sampled by the gateway at {base}; cookie, duplicate_cookies and headers as it "
            "runs them")
    if given:
        note += f" (but {' and '.join(given)} as given)"
    return summary, propose(summary, cookie=args.cookie or cookie,
                            duplicate_cookies=args.duplicate_cookies or duplicates,
                            headers=args.headers or headers, note=note)


# ---------------------------------------------------------------- the table
def table(summary: Summary) -> str:
    """The statistics per key path as text (pure, for tests)."""
    total = max(summary.sessions, 1)
    rows = [("path", "types", "sessions", "changed", "bytes max/avg", "strings like")]
    for p in summary.paths:
        if not p.segments:
            continue
        rows.append((
            p.path, " ".join(f"{k}:{v}" for k, v in p.types.items()),
            f"{p.sessions}/{total} {100 * p.sessions / total:.0f}%",
            f"{p.changes}/{p.repeats}", f"{p.size_max}/{p.size_avg:.0f}",
            " ".join(f"{k}:{v}" for k, v in p.strings.items())))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [f"{summary.samples} samples of {summary.sessions} sessions"
             + (f"; {summary.not_objects} exports were not objects" if summary.not_objects
                else "")]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
              for r in rows]
    return "\n".join(lines)
