"""Rules 3, 4 and 5: creating the throwaway session, and its revision.

Each rule reads the revision it starts from, and judges the step it is about
(rule 4: +1) against what the node itself answered, so one broken promise
fails one line, not every line after it.
"""

from __future__ import annotations

import json
from typing import Any

from strangler.hookcheck.client import import_body
from strangler.hookcheck.context import Run, marker, revision_of
from strangler.hookcheck.jsondiff import kept, own_keys
from strangler.hookcheck.results import Checks, RuleResult


async def create(run: Run) -> RuleResult:
    checks = Checks("create")
    data = marker("3")
    reply = await run.hook.put(run.sid, import_body(data, None))
    run.created = reply.status == 200
    checks.expect("PUT expected_revision null", '200 {"revision": 1}', reply,
                  reply.status == 200 and revision_of(reply) == 1)
    if not run.created:
        return checks.result()
    export = await run.hook.get(run.sid)
    body = export.json()
    if not checks.expect("GET", "200 with a JSON object", export,
                         export.status == 200 and isinstance(body, dict)):
        return checks.result()
    node = body.get("node")
    run.node = node if isinstance(node, str) else None
    checks.expect("export session_id", repr(run.sid), repr(body.get("session_id")),
                  body.get("session_id") == run.sid)
    checks.expect("export revision", "1", body.get("revision"), revision_of(export) == 1)
    checks.expect("export node", "a non-empty string", repr(node), bool(run.node))
    diff = kept(data, body.get("data"))
    checks.expect("export data", "what was imported", diff or "as imported", diff is None)
    checks.expect('export "imported"', "absent (no fenced import yet)",
                  repr(body.get("imported")), body.get("imported") is None)
    added = own_keys(data, body.get("data"))
    also = f" plus the node's own keys ({', '.join(added)})" if added else ""
    return checks.result(f'200 {{"revision": 1}}; export of node {json.dumps(node)}: '
                         f"revision 1, data as imported{also}")


async def increment(run: Run) -> RuleResult:
    checks = Checks("increment")
    start = await run.state()
    if start.revision is None:
        checks.expect("GET", "200 with a revision", start.reply, False)
        return checks.result()
    steps: list[tuple[str, dict[str, Any], bool]] = [
        ("import (compare-and-set)", marker("4a"), True),
        ("the same data again", marker("4a"), True),
        ("import with expected_revision null", marker("4b"), False),
    ]
    revision, seen = start.revision, [str(start.revision)]
    for what, data, cas in steps:
        reply = await run.hook.put(run.sid, import_body(data, revision if cas else None))
        answered = revision_of(reply)
        checks.expect(what, f'200 {{"revision": {revision + 1}}}', reply,
                      reply.status == 200 and answered == revision + 1)
        if reply.status != 200 or answered is None:
            return checks.result()
        revision = answered  # judge the next step from where the node says it is
        seen.append(str(answered))
    end = await run.state()
    checks.expect("export revision", str(revision), end.revision, end.revision == revision)
    return checks.result(" -> ".join(seen) + ", and the export agrees")


async def stale(run: Run) -> RuleResult:
    checks = Checks("stale")
    start = await run.state()
    if start.revision is None:
        checks.expect("GET", "200 with a revision", start.reply, False)
        return checks.result()
    current = start.revision
    wrong = sorted({0, current - 1, current + 1} - {current, -1})
    for expected in wrong:
        reply = await run.hook.put(run.sid, import_body(marker("5"), expected))
        want = {"revision": current, "fenced": False}
        ok = reply.status == 409 and revision_of(reply) == current \
            and reply.field("fenced") is False
        checks.expect(f"expected_revision {expected}", f"409 {json.dumps(want)}", reply, ok)
        if reply.status == 200 and revision_of(reply) is not None:
            current = revision_of(reply) or current  # it took it: judge the rest from here
    end = await run.state()
    unchanged = end.same_as(start)
    checks.expect("the session after", f"revision {start.revision}, data unchanged",
                  f"revision {end.revision}" + ("" if unchanged else ", data changed"),
                  unchanged)
    tried = ", ".join(str(e) for e in wrong)
    return checks.result(f"409 with revision {start.revision} for expected_revision {tried}; "
                         "nothing changed")
