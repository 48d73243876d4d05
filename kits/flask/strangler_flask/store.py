"""The node's sessions as Flask-Session keeps them, with a revision, fences and one lock.

Flask has no revision, so the kit keeps one in each stored session under the
reserved key ``_strangler``: ``{"revision": R, "imported": [fence, revision] |
null}``. The export hides the key and an import never takes it from its body;
the app should leave it alone (the kit rewrites it at every save anyway).

Storage goes through the Flask-Session interface's own storage methods
(``_retrieve_session_data``, ``_upsert_session``, ``_delete_session``,
``_get_store_id``: the four every Flask-Session backend implements), so the
data is kept exactly as the app's own requests keep it.

One ``threading.Lock`` per process serialises every read-compare-write: an
import's compare-and-set, an app request's save, a delete, a regenerate, and
the fence table. Fences live in this process's memory (they only grow; one
entry per fenced id, kept after a delete), so a node keeping its sessions in
memory (cachelib's ``SimpleCache``) loses both together, as the protocol wants.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from flask import Flask

RESERVED_KEY: Final = "_strangler"

Data = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Meta:
    """A stored session's revision (0: none) and its last fenced import, if any."""

    revision: int
    imported: tuple[int, int] | None = None

    def value(self) -> dict[str, Any]:
        return {"revision": self.revision,
                "imported": list(self.imported) if self.imported else None}


def meta_of(stored: Mapping[str, Any] | None) -> Meta:
    """The revision a stored session carries; 1 for one stored before the kit was there."""
    if stored is None:
        return Meta(0)
    raw = stored.get(RESERVED_KEY)
    if not isinstance(raw, Mapping) or not _count(raw.get("revision")) or raw["revision"] < 1:
        return Meta(1)
    imported = raw.get("imported")
    pair = (imported[0], imported[1]) if isinstance(imported, list | tuple) \
        and len(imported) == 2 and all(_count(x) for x in imported) else None
    return Meta(raw["revision"], pair)


def visible(stored: Mapping[str, Any]) -> Data:
    """The session as the app keeps it: everything but the reserved key."""
    return {k: v for k, v in stored.items() if k != RESERVED_KEY}


@dataclass(frozen=True, slots=True)
class ImportOutcome:
    """``ok``: landed, ``revision`` is the new one; else ``revision`` is the current one
    (0 for none) and ``fenced`` says a higher fence was seen."""

    ok: bool
    revision: int
    fenced: bool = False


class NodeSessions:
    """Sessions by id through a Flask-Session ``ServerSideSessionInterface``."""

    def __init__(self, app: Flask, backend: Any) -> None:
        self.app = app
        self.backend = backend
        self.lock = threading.Lock()
        self._fences: dict[str, int] = {}

    # -- storage (callers hold ``lock`` for anything that writes) ----------

    def load(self, sid: str) -> Data | None:
        stored = self.backend._retrieve_session_data(self.backend._get_store_id(sid))
        return dict(stored) if isinstance(stored, Mapping) else None

    def store(self, sid: str, data: Data) -> None:
        session = self.backend.session_class(data, sid=sid)
        self.backend._upsert_session(self.app.permanent_session_lifetime, session,
                                     self.backend._get_store_id(sid))

    def drop(self, sid: str) -> None:
        self.backend._delete_session(self.backend._get_store_id(sid))

    def new_sid(self) -> str:
        return str(self.backend._generate_sid(self.backend.sid_length))

    # -- the hook ----------------------------------------------------------

    def export(self, sid: str, fence: int | None) -> tuple[Data, Meta] | None:
        """The session and its meta, or ``None``; ``fence`` is noted first (if higher)."""
        with self.lock:
            if fence is not None:
                self._note_fence(sid, fence)
            stored = self.load(sid)
        return None if stored is None else (visible(stored), meta_of(stored))

    def import_session(self, sid: str, data: Data, expected: int | None,
                       fence: int | None) -> ImportOutcome:
        """Fence first, then compare-and-set; ``data`` replaces the session, the id stays."""
        with self.lock:
            current = meta_of(self.load(sid)).revision
            if fence is not None and not self._note_fence(sid, fence):
                return ImportOutcome(False, current, fenced=True)
            if expected is not None and expected != current:
                return ImportOutcome(False, current)
            meta = Meta(current + 1, (fence, current + 1) if fence is not None else None)
            self.store(sid, {**visible(data), RESERVED_KEY: meta.value()})
            return ImportOutcome(True, meta.revision)

    def delete(self, sid: str) -> None:
        with self.lock:
            self.drop(sid)

    def _note_fence(self, sid: str, fence: int) -> bool:
        """Remember ``fence`` if it is the highest seen for ``sid``; False if a higher one was."""
        if fence < self._fences.get(sid, -1):
            return False
        self._fences[sid] = fence
        return True


def _count(value: Any) -> bool:
    return type(value) is int and value >= 0
