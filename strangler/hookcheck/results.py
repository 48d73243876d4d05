"""The rules the check holds a hook to, and what each one saw.

A rule is a promise of docs/protocol.md §4 (``Rule``); running it gives a
``RuleResult``: one line of the report, made of the ``Check``s behind it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final


@dataclass(frozen=True, slots=True)
class Rule:
    number: int
    name: str
    title: str
    expected: str
    """The promise, in one line: what a hook that keeps it answers."""


RULES: Final = (
    Rule(1, "token", "token required",
         "403 for GET, PUT and DELETE without a token and with a wrong one"),
    Rule(2, "unknown", "unknown session",
         "404 for an id the node never had"),
    Rule(3, "create", "create and export",
         'PUT with expected_revision null -> 200 {"revision": 1}; the export has '
         "session_id, revision 1, node and the data imported"),
    Rule(4, "increment", "revision +1 per import",
         "every import answers the revision before it +1 (compare-and-set, the same "
         "data again, expected_revision null), and the export agrees"),
    Rule(5, "stale", "stale revision refused",
         'expected_revision other than the current one -> 409 {"revision": current, '
         '"fenced": false}; nothing changes'),
    Rule(6, "roundtrip", "unknown keys round-trip",
         "keys the node does not know come back identical (as JSON values and "
         "re-serialised), also after the export is imported again"),
    Rule(7, "race", "one winner",
         "concurrent imports with the same expected_revision: exactly one 200, the "
         "rest 409, and the winner's data stays"),
    Rule(8, "fences", "fences",
         'an export with X-Strangler-Fence F notes F (also for an unknown id); fence < F '
         '-> 409 "fenced": true; fence >= F -> 200 and "imported": {fence, revision}; '
         "a malformed fence header -> 400"),
    Rule(9, "limits", "body limits",
         "an oversize import -> 413, a body that is not JSON -> 400; nothing changes"),
    Rule(10, "delete", "delete",
         "DELETE -> 204, then the id answers as one the node never had (404); "
         "DELETE again -> 204"),
)
BY_NAME: Final = {r.name: r for r in RULES}
SHOWN: Final = 3
"""Failed checks a report line spells out; JSON has them all."""


@dataclass(frozen=True, slots=True)
class Check:
    """One request (or comparison) inside a rule."""

    what: str
    expected: str
    seen: str
    ok: bool

    def to_dict(self) -> dict[str, Any]:
        return {"what": self.what, "expected": self.expected, "seen": self.seen, "ok": self.ok}


@dataclass(frozen=True, slots=True)
class RuleResult:
    rule: Rule
    checks: tuple[Check, ...] = ()
    summary: str = ""
    """What was seen, in one line, when every check passed."""
    skipped: str | None = None
    """Why the rule could not be run (it then counts as failed)."""

    @property
    def ok(self) -> bool:
        return self.skipped is None and bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def verdict(self) -> str:
        return "skip" if self.skipped is not None else "pass" if self.ok else "fail"

    @property
    def seen(self) -> str:
        if self.skipped is not None:
            return f"not run: {self.skipped}"
        failed = [c for c in self.checks if not c.ok]
        if not failed:
            return self.summary or "; ".join(c.seen for c in self.checks)
        shown = [f"{c.what}: {c.seen} (expected {c.expected})" for c in failed[:SHOWN]]
        if len(failed) > SHOWN:
            shown.append(f"and {len(failed) - SHOWN} more (--json lists them)")
        return "; ".join(shown)

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule.number, "name": self.rule.name, "title": self.rule.title,
                "result": self.verdict, "expected": self.rule.expected, "seen": self.seen,
                "checks": [c.to_dict() for c in self.checks]}


class Checks:
    """Collects a rule's checks; ``expect`` returns whether this one held."""

    def __init__(self, rule: str) -> None:
        self._rule = BY_NAME[rule]
        self._checks: list[Check] = []

    def expect(self, what: str, expected: str, seen: object, ok: bool) -> bool:
        self._checks.append(Check(what, expected, str(seen), ok))
        return ok

    @property
    def failed(self) -> bool:
        return any(not c.ok for c in self._checks)

    def result(self, summary: str = "") -> RuleResult:
        return RuleResult(self._rule, tuple(self._checks), summary)


def skipped(rule: str, why: str) -> RuleResult:
    return RuleResult(BY_NAME[rule], skipped=why)
