"""Sessions by id in process memory: one process is one node, and a restart loses them all.

Every session has a revision: 1 when created, +1 on every change of its data
(a write that changes nothing keeps it). "Changed" is decided on the JSON text,
so ``1`` -> ``true`` or a reordered object is a change, as it is on the wire.

Fences (docs/protocol.md section 4): the gateway's exports and imports carry
the fence of the sync lock it holds. The store remembers the highest fence seen
per session id -- also for ids it holds no session for, and after a session is
deleted -- and refuses an import with a lower one. Each session remembers the
fence and the revision of its last fenced import, so the gateway can tell its
own import from a change the app made since. Sessions do not expire: they live
until logout, an internal DELETE, or the end of the process (a test app; the
fences dict grows by one entry per fenced id).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

Data = dict[str, Any]


def new_session_id() -> str:
    return secrets.token_urlsafe(32)


def canonical(data: Any) -> str:
    """The JSON text of ``data``: what the app answers, and what "changed" compares.

    ASCII-only on purpose: a lone surrogate (valid in a JSON string escape)
    survives as its escape instead of failing to encode.
    """
    return json.dumps(data, ensure_ascii=True, allow_nan=False)


@dataclass(slots=True, eq=False)
class Session:
    """One session. Change it only through ``SessionStore``: it keeps the revision honest."""

    sid: str
    revision: int
    data: Data
    imported: tuple[int, int] | None = None
    """(fence, revision) of the last import that carried a fence."""


@dataclass(frozen=True, slots=True)
class ImportOutcome:
    """``ok``: the import landed and ``revision`` is the new one; else ``revision`` is the
    current one (0 for none) and ``fenced`` says a newer fence was seen."""

    ok: bool
    revision: int
    fenced: bool = False


class SessionStore:
    """Not thread-safe: one event loop owns it, and no caller awaits between read and write."""

    def __init__(self) -> None:
        self._sessions: dict[str, Session] = {}
        self._fences: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, sid: str | None) -> Session | None:
        return self._sessions.get(sid) if sid else None

    def revision(self, sid: str | None) -> int:
        """The revision of ``sid``, 0 when it does not exist (any more)."""
        session = self.get(sid)
        return session.revision if session else 0

    def create(self, data: Data) -> Session:
        """A new session under a fresh random id, at revision 1."""
        sid = new_session_id()
        while sid in self._sessions:  # pragma: no cover - 256 random bits
            sid = new_session_id()
        session = self._sessions[sid] = Session(sid, 1, data)
        return session

    def login(self, old_sid: str | None, data: Data) -> Session:
        """Destroy the old session and create the new one (a fixed id is worthless after login)."""
        self.destroy(old_sid)
        return self.create(data)

    def change(self, session: Session, data: Data) -> bool:
        """Replace the data; bumps the revision and returns True if anything changed."""
        if canonical(data) == canonical(session.data):
            return False
        session.data = data
        session.revision += 1
        return True

    def destroy(self, sid: str | None) -> bool:
        return bool(sid) and self._sessions.pop(sid or "", None) is not None

    def note_fence(self, sid: str, fence: int) -> bool:
        """Remember ``fence`` if it is the highest seen for ``sid``; False if a higher one was."""
        if fence < self._fences.get(sid, -1):
            return False
        self._fences[sid] = fence
        return True

    def put(self, sid: str, data: Data, expected_revision: int | None,
            fence: int | None) -> ImportOutcome:
        """Import ``data`` under ``sid`` (the id is kept): fence first, then compare-and-set."""
        current = self.revision(sid)
        if fence is not None and not self.note_fence(sid, fence):
            return ImportOutcome(False, current, fenced=True)
        if expected_revision is not None and expected_revision != current:
            return ImportOutcome(False, current)
        imported = (fence, current + 1) if fence is not None else None
        self._sessions[sid] = Session(sid, current + 1, data, imported)
        return ImportOutcome(True, current + 1)
