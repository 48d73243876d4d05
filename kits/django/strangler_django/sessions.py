"""Export, import and delete one session through the engine's own ``SessionStore``.

Only Django's public session API is used (``load``, ``save``, ``delete``,
``session_key``), so any server-side engine works -- db, cache, cached_db,
file, or a third-party one that keeps Django's contract: ``load()`` of a
missing session leaves ``session_key`` as ``None``, ``save(must_create=True)``
raises ``CreateError`` when the key is taken and ``save()`` raises
``UpdateError`` when it has vanished. An import keeps the session's id
(``SessionStore(session_key=sid)`` then ``save(must_create=...)``).

Each step runs under the session's lock (``locks``), so the threads of one
process see imports one at a time, and never in the middle of an app request's
save (``middleware``). With a database engine an import is also one
transaction with the session's row locked, so imports in several processes
are compare-and-set too; what else holds across processes: README.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.sessions.backends.base import CreateError, SessionBase, UpdateError
from django.db import OperationalError, router, transaction

from strangler_django import fences, locks
from strangler_django.revision import IMPORTED_KEY, REV_KEY, imported_of, revision_of, visible

_SID = re.compile(r"[a-z0-9]{8,40}")
"""Ids as Django makes them (32 of ``[a-z0-9]``) and every engine can store: the db
engine's column holds 40, the file engine refuses other characters."""


def valid_id(sid: str) -> bool:
    return _SID.fullmatch(sid) is not None


def store_for(sid: str | None = None) -> SessionBase:
    """A ``SessionStore`` of ``settings.SESSION_ENGINE`` for ``sid``."""
    engine = import_module(settings.SESSION_ENGINE)
    store: SessionBase = engine.SessionStore(session_key=sid)
    return store


@dataclass(frozen=True, slots=True)
class Exported:
    revision: int
    data: dict[str, Any]
    imported: tuple[int, int] | None


@dataclass(frozen=True, slots=True)
class Outcome:
    """``ok``: the import landed at ``revision``; else ``revision`` is the current one
    (0 for none) and ``fenced`` says a newer fence was seen."""

    ok: bool
    revision: int
    fenced: bool = False


def _load(sid: str) -> tuple[SessionBase, dict[str, Any] | None]:
    """The store for ``sid`` and its data, ``None`` when the session does not exist."""
    store = store_for(sid)
    data = store.load()
    return store, (data if store.session_key is not None else None)


def stored(sid: str) -> dict[str, Any] | None:
    """What the engine holds for ``sid`` now (``None``: no such session)."""
    return _load(sid)[1]


def stored_revision(sid: str) -> int:
    """The revision the engine holds for ``sid`` now (0: none)."""
    data = stored(sid)
    return revision_of(data or {}, data is not None)


def export(sid: str, fence: int | None) -> Exported | None:
    """The session as JSON-able data, ``None`` when unknown; ``fence`` is noted first."""
    with locks.held(sid):
        if fence is not None:
            fences.note(sid, fence)  # a lower one is only not noted, never refused
        _, data = _load(sid)
    if data is None:
        return None
    return Exported(revision_of(data, True), visible(data), imported_of(data))


def import_(sid: str, data: dict[str, Any], expected: int | None,
            fence: int | None) -> Outcome:
    """``data`` replaces the session under ``sid`` (created if absent): fence first, then
    compare-and-set on the revision; the kit's own keys are never taken from ``data``."""
    new = visible(data)
    with locks.held(sid), _engine_transaction(sid):
        store, current_data = _load(sid)
        exists = current_data is not None
        current = revision_of(current_data or {}, exists)
        if fence is not None and not fences.note(sid, fence):
            return Outcome(False, current, fenced=True)
        if expected is not None and expected != current:
            return Outcome(False, current)
        new[REV_KEY] = current + 1
        if fence is not None:
            new[IMPORTED_KEY] = [fence, current + 1]
        target = store if exists else store_for(sid)
        target.clear()
        target.update(new)
        _check_expiry(target)
        try:
            target.save(must_create=not exists)
        except (CreateError, UpdateError):
            # another process created or deleted it since the read: it lost the race
            return Outcome(False, stored_revision(sid))
    return Outcome(True, current + 1)


@contextmanager
def _engine_transaction(sid: str) -> Iterator[None]:
    """For engines keeping sessions in a database (db, cached_db): one transaction around
    an import's read-check-write, the session's row locked (``SELECT ... FOR UPDATE``
    where the database has it; SQLite serialises writers with ``BEGIN IMMEDIATE``), so
    imports in other processes wait their turn. Other engines: nothing to do.

    A database too busy to answer is ``locks.Busy`` (a 503 the gateway retries), never a 500.
    """
    get_model = getattr(store_for(), "get_model_class", None)
    if get_model is None:
        yield
        return
    model = get_model()
    using = router.db_for_write(model)
    try:
        with transaction.atomic(using=using):
            rows = model.objects.using(using).select_for_update().filter(session_key=sid)
            list(rows.values_list("pk", flat=True))
            yield
    except OperationalError as exc:  # "database is locked" and the like
        raise locks.Busy(sid) from exc


class BadSessionData(ValueError):
    """Data Django's session machinery cannot take (a malformed ``_session_expiry``)."""


def _check_expiry(store: SessionBase) -> None:
    try:
        store.get_expiry_age()
    except (TypeError, ValueError) as exc:
        raise BadSessionData(f"_session_expiry is not a Django session expiry: {exc}") from None


def delete(sid: str) -> None:
    with locks.held(sid):
        store_for().delete(sid)
