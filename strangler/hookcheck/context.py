"""What the rules share: the hook, the two ids the check owns, and what earlier rules learnt.

``sid`` is the throwaway session the check creates (rule 3) and deletes (rule
10); ``ghost`` is an id that must stay unknown to the node. Both are the
check's own: generated here, or given with ``--session-id``. No rule sends a
request naming any other id.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass, field
from typing import Any, Final

from strangler.hookcheck.client import HookClient, Reply
from strangler.hookcheck.jsondiff import PREFIX, kept

ID_ALPHABET: Final = string.ascii_lowercase + string.digits
ID_LENGTH: Final = 32
"""32 of [a-z0-9] fits most frameworks' session ids (Django's among them, and the shop's)."""
OVERSIZE_BYTES: Final = 2 * 1024 * 1024
"""Rule 9's import: well over what a session should weigh (the gateway's default limit
on an export is 256 KiB)."""
FENCE: Final = 1_000_000
"""The fence rule 8 notes: above any a gateway could have used for a fresh id."""


def new_session_id() -> str:
    """``hkchk`` and 27 random characters: recognisable in a node's logs, never guessed."""
    return "hkchk" + "".join(secrets.choice(ID_ALPHABET) for _ in range(ID_LENGTH - 5))


def marker(step: str) -> dict[str, Any]:
    """Session data that says who wrote it and at which step (strings only, on purpose:
    only rule 6 sends values a hook could get wrong)."""
    return {f"{PREFIX}by": "strangler hook check (a throwaway session)", f"{PREFIX}step": step}


@dataclass(frozen=True, slots=True)
class State:
    """The throwaway session as its export shows it."""

    reply: Reply
    revision: int | None
    data: Any

    def same_as(self, before: State) -> bool:
        """Whether nothing changed since ``before`` (revision, and every key it had)."""
        if self.revision != before.revision:
            return False
        return not isinstance(before.data, dict) or kept(before.data, self.data) is None


@dataclass(slots=True)
class Run:
    hook: HookClient
    sid: str
    ghost: str
    oversize_bytes: int = OVERSIZE_BYTES
    created: bool = False
    """The node holds ``sid`` because of the check (set by rule 3, cleared by rule 10)."""
    ghost_touched: bool = False
    """A refused-by-contract import may have created ``ghost``: delete it at the end."""
    unknown: Reply | None = None
    """How the node answered ``ghost`` (rule 2), for rule 10 to compare with."""
    node: str | None = None
    notes: list[str] = field(default_factory=list)

    async def state(self) -> State:
        reply = await self.hook.get(self.sid)
        revision = reply.field("revision") if reply.status == 200 else None
        return State(reply, revision if type(revision) is int else None,
                     reply.field("data") if reply.status == 200 else None)


def revision_of(reply: Reply) -> int | None:
    """``{"revision": int}`` -> the int (not a bool, not a float), else ``None``."""
    value = reply.field("revision")
    return value if type(value) is int else None
