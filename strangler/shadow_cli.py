"""``strangler shadow report ROUTE``: what the shadow stage of a running gateway has seen.

Reads the admin API (``GET /api/routes/{name}/shadow``) of one gateway --
by default the one at ``gateway.admin_listen`` in the config. Each gateway
process keeps its own figures; with several gateways, ask each one.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from gateway.settings import Config


def add_parser(sub: Any) -> None:
    """Register ``shadow report`` on the ``strangler`` sub-command parser."""
    shadow = sub.add_parser("shadow", help="what the shadow stage has compared")
    ssub = shadow.add_subparsers(dest="shadow_command", required=True)
    report = ssub.add_parser("report", help="consistency rate, differing paths, learned noise "
                             "and the latest sampled differences of one route")
    report.add_argument("route")
    report.add_argument("--admin", help="admin URL of a running gateway "
                        "(default: gateway.admin_listen of the config)")
    report.add_argument("--json", action="store_true", help="print the admin API's JSON")
    report.add_argument("--entries", type=int, default=5,
                        help="latest sampled differences shown (default: %(default)s)")


def admin_url(cfg: Config) -> str:
    listen = cfg.gateway.admin_listen
    host = listen.host
    if host in ("", "0.0.0.0"):  # noqa: S104 (reading the config, not binding)
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{listen.port}"


def run(cfg: Config, args: argparse.Namespace) -> int:
    base = (args.admin or admin_url(cfg)).rstrip("/")
    route = urllib.parse.quote(args.route, safe="")
    try:
        report = _get(f"{base}/api/routes/{route}/shadow")
    except urllib.error.HTTPError as exc:
        detail = _detail(exc)
        print(f"strangler shadow: {base}: {exc.code} {detail}", file=sys.stderr)
        return 2 if exc.code == 404 else 1
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"strangler shadow: cannot read the admin API at {base}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(render(report, base, _stage(base, args.route), args.entries))
    return 0


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 (http(s) admin URL)
        return json.load(resp)


def _detail(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read()).get("detail", exc.reason))
    except (ValueError, AttributeError):
        return str(exc.reason)


def _stage(base: str, route: str) -> str | None:
    try:
        routes = _get(f"{base}/api/routes")["routes"]
    except (urllib.error.URLError, OSError, ValueError, KeyError, TypeError):
        return None
    found = next((r for r in routes if r.get("name") == route), None)
    return None if found is None else str(found.get("effective") or found.get("stage"))


def render(r: dict[str, Any], base: str, stage: str | None, entries: int = 5) -> str:
    """The report as text (pure, for tests)."""
    lines = [f"shadow report: {r['route']}  (gateway {base}"
             + (f", stage {stage})" if stage else ")")]
    if not r["compared"]:
        lines.append("no comparisons yet: is the route at stage shadow and receiving GET "
                     "or HEAD requests?")
    else:
        lines.append(f"consistency     {100 * r['consistency_rate']:.2f} %  "
                     f"({r['consistent']} of {r['compared']} compared answers matched, "
                     f"{r['inconsistent']} differed)")
    lines.append(f"not compared    errors {r['errors']}{_reasons(r['errors_by_reason'])}; "
                 f"skipped {r['skipped']}{_reasons(r['skipped_by_reason'])}; "
                 f"left out by sample_rate {r['unsampled']}")
    if r.get("last_compared_at"):
        lines.append(f"last compared   {r['last_compared_at']}")
    lines += ["", "top differing paths (inconsistent comparisons)"]
    lines += [f"  {t['count']:>7}  {t['path']}" for t in r["top_differences"]] or ["  none"]
    noise = r["noise"]
    rules = r.get("rules", {})
    learning = "on" if rules.get("learn_noise", True) else "off"
    missed = sum(noise.get("missed_samples", {}).values())
    lines += ["", f"learned noise (learning {learning}: {noise['samples']} legacy-vs-legacy "
              f"samples{f', {missed} missed' if missed else ''}; a path is noise after "
              f"differing {noise['threshold']} times)"]
    lines += [f"  {n['count']:>7}  {n['path']}" for n in noise["learned"]] or ["  none"]
    if noise["candidates"]:
        lines.append("  below the threshold: " + ", ".join(
            f"{n['path']} ({n['count']})" for n in noise["candidates"][:10]))
    if rules.get("ignore_paths") or rules.get("ignore_headers"):
        lines.append("  ignored by config: " + ", ".join(
            [*rules.get("ignore_paths", []), *(f"header {h}" for h in
                                               rules.get("ignore_headers", []))]))
    log = r["diff_log"]["entries"]
    lines += ["", f"latest sampled differences ({min(entries, len(log))} of {len(log)} kept)"]
    for e in log[:entries]:
        lines.append(f"  {e['time']}  {e['method']} {e['path']}  legacy {e['legacy_status']} "
                     f"/ new {e['new_status']}  request {e['request_id']}")
        lines += [f"      {d['text']}" for d in e["differences"]]
        if e.get("more"):
            lines.append(f"      ... and {e['more']} more")
    if not log:
        lines.append("  none")
    return "\n".join(lines)


def _reasons(counts: dict[str, int]) -> str:
    if not counts:
        return ""
    return " (" + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + ")"
