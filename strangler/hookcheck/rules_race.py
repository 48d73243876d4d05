"""Rules 7 and 8: when two writers meet, which one lands.

Rule 7 opens one connection per writer first (a burst of exports), so the
imports leave together rather than one connect after another. Rule 8 uses
fences above any a gateway could have used for a fresh id, and one more
fence on ``ghost``: a fence is noted also for an id without a session.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter

from strangler.hookcheck.client import Reply, import_body
from strangler.hookcheck.context import FENCE, Run, marker, revision_of
from strangler.hookcheck.jsondiff import kept
from strangler.hookcheck.results import Checks, RuleResult

WRITERS = 8
MALFORMED_FENCES = ("-1", "abc", "1.5", "0x10")


def _tally(replies: list[Reply]) -> str:
    counts = Counter(str(r.status) if r.status is not None else "no answer" for r in replies)
    return ", ".join(f"{n} x {status}" for status, n in sorted(counts.items()))


async def one_winner(run: Run) -> RuleResult:
    checks = Checks("race")
    start = await run.state()
    if start.revision is None:
        checks.expect("GET", "200 with a revision", start.reply, False)
        return checks.result()
    await asyncio.gather(*(run.hook.get(run.sid) for _ in range(WRITERS)))
    datas = [marker(f"7.{i}") for i in range(WRITERS)]
    replies = list(await asyncio.gather(
        *(run.hook.put(run.sid, import_body(d, start.revision)) for d in datas)))
    wins = [i for i, r in enumerate(replies) if r.status == 200]
    lost = sum(r.status == 409 for r in replies)
    if not checks.expect(f"{WRITERS} concurrent imports, expected_revision {start.revision}",
                         f"1 x 200, {WRITERS - 1} x 409", _tally(replies),
                         len(wins) == 1 and lost == WRITERS - 1):
        return checks.result()
    winner = revision_of(replies[wins[0]])
    end = await run.state()
    same = end.revision == winner and kept(datas[wins[0]], end.data) is None
    checks.expect("the session after", f"the winner's data at revision {winner}",
                  f"revision {end.revision}" + ("" if same else ", other data"), same)
    return checks.result(f"1 x 200, {WRITERS - 1} x 409 of {WRITERS} at once; "
                         "the winner's data stays")


def _imported(fence: int, revision: int | None) -> str:
    return json.dumps({"fence": fence, "revision": revision})


class _Fences:
    """Rule 8's steps, each an import or an export judged against the protocol. The
    revisions are the node's own answers: +1 is rule 4's business."""

    def __init__(self, run: Run, checks: Checks) -> None:
        self.run, self.checks, self.step = run, checks, 0

    def _data(self) -> dict[str, str]:
        self.step += 1
        return marker(f"8.{self.step}")  # never the same data twice

    async def refused(self, what: str, sid: str, expected: int | None, fence: int,
                      current: int) -> int:
        """The revision after the import: ``current``, unless the node wrongly took it."""
        reply = await self.run.hook.put(sid, import_body(self._data(), expected, fence))
        want = {"revision": current, "fenced": True}
        self.checks.expect(what, f"409 {json.dumps(want)}", reply, reply.status == 409
                           and revision_of(reply) == current and reply.field("fenced") is True)
        taken = revision_of(reply) if reply.status == 200 else None
        return current if taken is None else taken

    async def taken(self, what: str, expected: int, fence: int | None) -> int | None:
        reply = await self.run.hook.put(self.run.sid, import_body(self._data(), expected, fence))
        revision = revision_of(reply) if reply.status == 200 else None
        self.checks.expect(what, '200 {"revision": ...}', reply, revision is not None)
        return revision

    async def export_says(self, what: str, imported: str | None) -> None:
        reply = await self.run.hook.get(self.run.sid)
        found = reply.field("imported")
        seen = str(reply) if reply.status != 200 else "absent" if found is None \
            else json.dumps(found)
        want = "absent" if imported is None else imported
        ok = reply.status == 200 and (found is None if imported is None
                                      else json.dumps(found, sort_keys=True) == imported)
        self.checks.expect(what, f'"imported" {want}', seen, ok)


async def fences(run: Run) -> RuleResult:
    checks = Checks("fences")
    steps = _Fences(run, checks)
    first = await run.hook.get(run.sid, fence=FENCE)
    r0 = revision_of(first)
    checks.expect(f"GET with fence {FENCE}", '200 without "imported"', first,
                  first.status == 200 and r0 is not None and first.field("imported") is None)
    if r0 is None:
        return checks.result()
    r0 = await steps.refused(f"import with fence {FENCE - 1}", run.sid, r0, FENCE - 1, r0)
    r1 = await steps.taken(f"import with fence {FENCE}", r0, FENCE)
    if r1 is None:
        return checks.result()
    await steps.export_says("export after it", _imported(FENCE, r1))
    r2 = await steps.taken(f"import with fence {FENCE + 1}", r1, FENCE + 1)
    if r2 is None:
        return checks.result()
    r2 = await steps.refused(f"import with fence {FENCE} after that", run.sid, r2, FENCE, r2)
    await steps.export_says("export after those", _imported(FENCE + 1, r2))
    if await steps.taken("import without a fence", r2, None) is not None:
        await steps.export_says("export after that", None)
    for raw in MALFORMED_FENCES:
        reply = await run.hook.get(run.sid, fence=raw)
        checks.expect(f"GET with fence {raw!r}", "400", reply, reply.status == 400)
    await run.hook.get(run.ghost, fence=FENCE)
    if await steps.refused(f"unknown id: export with fence {FENCE}, then import with fence "
                           f"{FENCE - 1}", run.ghost, None, FENCE - 1, 0) != 0:
        await run.hook.delete(run.ghost)  # the check made it: it goes
        run.ghost_touched = True
    return checks.result(f"{FENCE - 1} refused after an export with {FENCE}, also for an "
                         'unknown id; higher fences taken and reported in "imported"; '
                         "malformed fences 400")
