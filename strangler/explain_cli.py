"""``strangler explain METHOD PATH [--session SID] [--cid CID]``: asks a running gateway why.

The decision depends on live state only the gateway holds (breakers, health,
the flag view it is using), so this reads the admin API rather than
recomputing it here.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request

from gateway.routing.explain import UNBUCKETED
from gateway.settings import Config


def run(cfg: Config, args: argparse.Namespace) -> int:
    a = cfg.gateway.admin_listen
    base = (args.admin or f"http://{a.host}:{a.port}").rstrip("/")
    query = {"method": args.method.upper(), "path": args.path}
    if args.session:
        query["session"] = args.session
    if args.cid:
        query["cid"] = args.cid
    url = f"{base}/api/explain?{urllib.parse.urlencode(query)}"
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 (admin URL)
            body = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        print(f"strangler explain: {exc.code} {exc.read().decode(errors='replace')}",
              file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"strangler explain: cannot reach the gateway's admin API at {base}: {exc}",
              file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(body, indent=2))
        return 0
    who = (f"  (session {args.session[:8]}...)" if args.session
           else f"  (cid {args.cid[:8]}...)" if args.cid else "")
    print(f"{body['method']} {body['path']}{who}")
    for i, step in enumerate(body["steps"], 1):
        print(f"  {i}. {step}")
    unknown = "depends on the cid it gets" if body["reason"] == UNBUCKETED else "refused"
    print(f"=> {body['backend'] or unknown} ({body['reason']})")
    if body.get("set_by"):
        print(f"   stage set by: {body['set_by']}")
    return 0
