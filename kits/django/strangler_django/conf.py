"""The kit's settings (``settings.STRANGLER``) and the checks it makes at start.

```python
STRANGLER = {
    "NODE_ID": "a",                             # required: this node's id
    "INTERNAL_TOKEN_FILE": "/run/secrets/tok",  # or "INTERNAL_TOKEN": "..."; none: hook off (503)
    "HEADERS": {"session_id": "X-App-Session", "revision": "X-App-Rev", "node": "X-App-Node"},
    "MAX_IMPORT_BYTES": 262144,
}
```

Refused with ``ImproperlyConfigured`` at start: the signed-cookie session
engine (its sessions already live in the client's cookie),
``SESSION_SAVE_EVERY_REQUEST`` (it would write back stale sessions), a ``MIDDLEWARE``
without Django's ``SessionMiddleware`` or without the kit's middleware right
after it, and settings of the wrong shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

SIGNED_COOKIES = "django.contrib.sessions.backends.signed_cookies"
SESSION_MIDDLEWARE = "django.contrib.sessions.middleware.SessionMiddleware"
KIT_MIDDLEWARE = "strangler_django.middleware.RevisionMiddleware"
DEFAULT_HEADERS = {"session_id": "X-Session-Id", "revision": "X-Session-Rev",
                   "node": "X-Session-Node"}
DEFAULT_MAX_IMPORT_BYTES = 256 * 1024
_KNOWN = {"NODE_ID", "INTERNAL_TOKEN_FILE", "INTERNAL_TOKEN", "HEADERS", "MAX_IMPORT_BYTES"}


@dataclass(frozen=True, slots=True)
class KitSettings:
    node_id: str
    token: str | None
    """``None``: no token configured, so the hook answers 503."""
    session_header: str
    revision_header: str
    node_header: str
    max_import_bytes: int


def _fail(message: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"strangler_django: {message}")


def check_environment() -> None:
    """Refuse a session engine or middleware order the kit cannot work with."""
    engine = getattr(settings, "SESSION_ENGINE", "django.contrib.sessions.backends.db")
    if engine == SIGNED_COOKIES:
        raise _fail(
            f"SESSION_ENGINE = {SIGNED_COOKIES!r} keeps sessions in the client's cookie, so "
            "there is nothing on the server to export, and they are already shared by "
            "every node: use a server-side engine (db, cache, cached_db, file) with "
            "Strangler, or no Strangler session bridge at all")
    if getattr(settings, "SESSION_SAVE_EVERY_REQUEST", False):
        raise _fail("SESSION_SAVE_EVERY_REQUEST = True saves each request's session as it "
                    "loaded it, which would silently undo an import that landed during the "
                    "request: set it to False")
    middleware = list(getattr(settings, "MIDDLEWARE", None) or [])
    if SESSION_MIDDLEWARE not in middleware:
        raise _fail(f"MIDDLEWARE has no {SESSION_MIDDLEWARE!r}: the kit works on Django's "
                    "sessions and needs it")
    if KIT_MIDDLEWARE not in middleware:
        raise _fail(f"MIDDLEWARE has no {KIT_MIDDLEWARE!r}: put it right after "
                    f"{SESSION_MIDDLEWARE!r}")
    if middleware.index(KIT_MIDDLEWARE) != middleware.index(SESSION_MIDDLEWARE) + 1:
        raise _fail(f"{KIT_MIDDLEWARE!r} must come right after {SESSION_MIDDLEWARE!r} in "
                    "MIDDLEWARE, so the revision it adds is in the session SessionMiddleware "
                    "saves and the headers name the session id it saved under")


def parse(raw: Any) -> KitSettings:
    """``settings.STRANGLER`` -> ``KitSettings``, or ``ImproperlyConfigured`` naming the key."""
    if not isinstance(raw, dict):
        raise _fail("settings.STRANGLER must be a dict")
    unknown = sorted(set(raw) - _KNOWN)
    if unknown:
        raise _fail(f"STRANGLER: unknown keys {unknown} (known: {sorted(_KNOWN)})")
    node = raw.get("NODE_ID")
    if not isinstance(node, str) or not node or not node.isprintable():
        raise _fail("STRANGLER['NODE_ID'] must be a non-empty printable string")
    headers = raw.get("HEADERS", {})
    if not isinstance(headers, dict) or set(headers) - set(DEFAULT_HEADERS):
        raise _fail(f"STRANGLER['HEADERS'] must be a dict with keys among "
                    f"{sorted(DEFAULT_HEADERS)}")
    names = {**DEFAULT_HEADERS, **headers}
    for key, name in names.items():
        if not isinstance(name, str) or not name or not all(
                c.isascii() and (c.isalnum() or c in "-_") for c in name):
            raise _fail(f"STRANGLER['HEADERS'][{key!r}] must be a header name")
    limit = raw.get("MAX_IMPORT_BYTES", DEFAULT_MAX_IMPORT_BYTES)
    if type(limit) is not int or limit < 1024:
        raise _fail("STRANGLER['MAX_IMPORT_BYTES'] must be an int >= 1024")
    return KitSettings(node, _token(raw), names["session_id"], names["revision"],
                       names["node"], limit)


def _token(raw: dict[str, Any]) -> str | None:
    if raw.get("INTERNAL_TOKEN_FILE") and raw.get("INTERNAL_TOKEN"):
        raise _fail("STRANGLER: give INTERNAL_TOKEN_FILE or INTERNAL_TOKEN, not both")
    path = raw.get("INTERNAL_TOKEN_FILE")
    if path:
        try:
            from_file = Path(path).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise _fail(f"cannot read STRANGLER['INTERNAL_TOKEN_FILE'] {path}: {exc}") from None
        if not from_file:
            raise _fail(f"STRANGLER['INTERNAL_TOKEN_FILE'] {path} is empty")
        return from_file
    given = raw.get("INTERNAL_TOKEN")
    if given is not None and not isinstance(given, str):
        raise _fail("STRANGLER['INTERNAL_TOKEN'] must be a string")
    return given or None


@lru_cache(maxsize=1)
def get() -> KitSettings:
    """The settings, read once (the token file too)."""
    return parse(getattr(settings, "STRANGLER", None))
