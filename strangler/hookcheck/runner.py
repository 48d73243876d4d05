"""The check from start to end: a first look, the rules in order, the clean-up.

The first look (an export of ``ghost`` with the token) tells a check that
cannot be made (no answer, token refused: ``CheckImpossible``) from a hook
that is off (503: rule 1 fails, the others are not run). Rules 4-10 need the
throwaway session rule 3 creates; without it they are not run, which counts
as failing. At the end -- also when the check is cancelled (Ctrl-C) --
whatever the check created and still finds is deleted, and what it could not
delete is reported.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from strangler.hookcheck import rules_access, rules_data, rules_race, rules_revision
from strangler.hookcheck.client import HookClient
from strangler.hookcheck.context import OVERSIZE_BYTES, Run
from strangler.hookcheck.results import RULES, Checks, RuleResult, skipped

RuleFn = Callable[[Run], Awaitable[RuleResult]]
ORDER: tuple[tuple[str, RuleFn, bool], ...] = (
    # (the rule, its function, whether it needs the throwaway session)
    ("token", rules_access.token_required, False),
    ("unknown", rules_access.unknown_session, False),
    ("create", rules_revision.create, False),
    ("increment", rules_revision.increment, True),
    ("stale", rules_revision.stale, True),
    ("roundtrip", rules_data.roundtrip, True),
    ("race", rules_race.one_winner, True),
    ("fences", rules_race.fences, True),
    ("limits", rules_data.limits, True),
    ("delete", rules_access.delete, True),
)


class CheckImpossible(Exception):
    """The check could not be made as asked (exit 2): no answer, token refused, id in use."""


@dataclass(frozen=True, slots=True)
class Report:
    url: str
    sid: str
    ghost: str
    results: tuple[RuleResult, ...]
    node: str | None = None
    left_behind: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results) and not self.left_behind

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url, "ok": self.ok, "node": self.node,
                "session_ids": {"created": self.sid, "unknown": self.ghost},
                "passed": sum(r.ok for r in self.results), "rules": len(self.results),
                "results": [r.to_dict() for r in self.results],
                "left_behind": list(self.left_behind)}


async def check_hook(hook: HookClient, url: str, sid: str, ghost: str, *,
                     ids_given: bool = False, oversize_bytes: int = OVERSIZE_BYTES) -> Report:
    """Run every rule against the hook behind ``hook``; see the module docstring."""
    run = Run(hook, sid, ghost, oversize_bytes)
    first = await hook.get(ghost)
    if first.status is None:
        raise CheckImpossible(f"cannot reach the hook at {url}: {first.problem}")
    if first.status in (401, 403):
        raise CheckImpossible(f"the node refused the token ({first.status}): is the token file "
                              "this node's internal token?")
    if first.status == 503:
        return Report(url, sid, ghost, _hook_off())
    if ids_given:
        await _unused(hook, first.status, ghost, sid)
    results = []
    try:
        for name, rule, needs_session in ORDER:
            if needs_session and not run.created:
                results.append(skipped(name, "needs the throwaway session rule 3 creates"))
            else:
                results.append(await _guarded(rule, run, name))
    except asyncio.CancelledError:  # Ctrl-C: no report, but no session left behind either
        await _clean_up(run)
        raise
    return Report(url, sid, ghost, tuple(results), run.node, tuple(await _clean_up(run)))


async def _unused(hook: HookClient, ghost_status: int, ghost: str, sid: str) -> None:
    """Ids from ``--session-id`` must not name sessions: the check touches only its own."""
    for given, status in ((ghost, ghost_status), (sid, (await hook.get(sid)).status)):
        if status == 200:
            raise CheckImpossible(f"--session-id {given}: the node has a session by this id "
                                  "(or answers 200 for any id); hook check touches only "
                                  "sessions it creates: give an id nobody uses")


def _hook_off() -> tuple[RuleResult, ...]:
    checks = Checks("token")
    checks.expect("GET with the token", "the hook on (a token configured on the node)",
                  rules_access.DISABLED, False)
    why = "the hook is off (503)"
    return (checks.result(), *(skipped(r.name, why) for r in RULES[1:]))


async def _guarded(rule: RuleFn, run: Run, name: str) -> RuleResult:
    try:
        return await rule(run)
    except Exception as exc:  # a reply no rule foresaw must not hide the other lines
        checks = Checks(name)
        checks.expect("the check itself", "to finish", f"stopped: {exc!r}", False)
        return checks.result()


async def _clean_up(run: Run) -> list[str]:
    """Delete what the check created; the ids still there after that."""
    left = []
    for sid, ours in ((run.sid, run.created), (run.ghost, run.ghost_touched)):
        if not ours:
            continue
        await run.hook.delete(sid)
        after = await run.hook.get(sid)
        if after.status == 200 and not rules_access.like_unknown(after, run.unknown):
            left.append(sid)
    return left
