"""The keys the kit keeps inside each session, which no export shows and no import takes.

Django sessions have no revision, so the kit keeps one in the session itself
(``REV_KEY``): it travels with the session to whatever store the engine uses,
and survives ``cycle_key`` (a login keeps the data under a new id). The fence
and revision of the session's last fenced import live beside it
(``IMPORTED_KEY``). Neither is session data as the app or the gateway sees it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

REV_KEY = "_strangler_rev"
IMPORTED_KEY = "_strangler_imported"
RESERVED = frozenset({REV_KEY, IMPORTED_KEY})


def revision_of(data: Mapping[str, Any], exists: bool) -> int:
    """The revision of a session holding ``data``: 0 when it does not exist; 1 for one
    that exists but was saved before the kit was installed."""
    return revision_value(data.get(REV_KEY)) if exists else 0


def revision_value(value: object) -> int:
    """The revision of an existing session whose ``REV_KEY`` is ``value``."""
    return value if type(value) is int and value > 0 else 1


def imported_of(data: Mapping[str, Any]) -> tuple[int, int] | None:
    """(fence, revision) of the last fenced import, if the session has one."""
    value = data.get(IMPORTED_KEY)
    if isinstance(value, list | tuple) and len(value) == 2 \
            and all(type(v) is int for v in value):
        return value[0], value[1]
    return None


def visible(data: Mapping[str, Any]) -> dict[str, Any]:
    """The session as the export shows it: everything but the kit's own keys."""
    return {k: v for k, v in data.items() if k not in RESERVED}
