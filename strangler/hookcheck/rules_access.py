"""Rules 1, 2 and 10: who may call the hook, and which ids it knows.

Rule 1's refused calls name ``ghost``; should the node wrongly take the PUT,
the session it made is the check's own and is deleted at once, so rule 2
still finds the id unknown.
"""

from __future__ import annotations

from strangler.hookcheck.client import WRONG_TOKEN, Reply, import_body
from strangler.hookcheck.context import Run, marker
from strangler.hookcheck.results import Checks, RuleResult

DISABLED = "503: the node has no internal token configured, so its hook is off"


def _refusal_seen(reply: Reply) -> str:
    return DISABLED if reply.status == 503 else str(reply)


async def token_required(run: Run) -> RuleResult:
    checks = Checks("token")
    landed = False
    for label, token in (("without a token", None), ("with a wrong token", WRONG_TOKEN)):
        replies = {
            "GET": await run.hook.get(run.ghost, token=token),
            "PUT": await run.hook.put(run.ghost, import_body(marker("1"), None), token=token),
            "DELETE": await run.hook.delete(run.ghost, token=token),
        }
        for method, reply in replies.items():
            checks.expect(f"{method} {label}", "403", _refusal_seen(reply), reply.status == 403)
        landed = landed or (replies["PUT"].status or 0) // 100 == 2
    if landed:
        await run.hook.delete(run.ghost)  # the check made it: it goes
        run.ghost_touched = True
    return checks.result("403 for all six")


async def unknown_session(run: Run) -> RuleResult:
    checks = Checks("unknown")
    reply = run.unknown = await run.hook.get(run.ghost)
    checks.expect(f"GET {run.ghost}", "404", reply, reply.status == 404)
    return checks.result("404")


def like_unknown(reply: Reply, unknown: Reply | None) -> bool:
    """Whether ``reply`` is how the node answers an id it never had: 404, or -- when it
    answers unknown ids otherwise (rule 2 fails then) -- that same answer."""
    if reply.status == 404:
        return True
    if unknown is None or reply.status != unknown.status or reply.status is None:
        return False
    return all(reply.field(k) == unknown.field(k) for k in ("revision", "data"))


async def delete(run: Run) -> RuleResult:
    checks = Checks("delete")
    first = await run.hook.delete(run.sid)
    checks.expect("DELETE", "204", first, first.status == 204)
    after = await run.hook.get(run.sid)
    gone = like_unknown(after, run.unknown)
    if gone and first.status is not None and first.status < 300:
        run.created = False
    expected = "404" if run.unknown is None or run.unknown.status == 404 \
        else f"404, or {run.unknown.status} as for an unknown id"
    checks.expect("GET after DELETE", expected, after, gone)
    again = await run.hook.delete(run.sid)
    checks.expect("DELETE again", "204", again, again.status == 204)
    seen_after = "404" if after.status == 404 else f"{after.status}, as for an unknown id"
    return checks.result(f"204, then {seen_after}, then 204")
