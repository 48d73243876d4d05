"""What the kit runs with, read once from ``app.config`` at ``init_app``.

=============================== ==================================================
``STRANGLER_NODE_ID``            required: this node's id (the node header, exports)
``STRANGLER_HEADERS``            required: the profile's three header names -- a
                                 list ``[session_id, revision, node]`` or a mapping
                                 with those keys (config.yaml's ``session.headers``)
``STRANGLER_INTERNAL_TOKEN_FILE`` a file holding the internal token (trimmed), or
``STRANGLER_INTERNAL_TOKEN``     the token itself; neither, or a blank one: the
                                 hook is off and answers 503
``STRANGLER_MAX_IMPORT_BYTES``   the largest import body (default 1 MiB); past it 413
=============================== ==================================================
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from .errors import StranglerConfigError

DEFAULT_MAX_IMPORT_BYTES: Final = 1024 * 1024
HEADER_ROLES: Final = ("session_id", "revision", "node")
_NODE_ID = re.compile(r"[\x21-\x7E]{1,128}")  # it goes into a response header
_TOKEN_CHARS = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 field-name


@dataclass(frozen=True, slots=True)
class Headers:
    session_id: str
    revision: str
    node: str


@dataclass(frozen=True, slots=True)
class Settings:
    node_id: str
    headers: Headers
    token: str | None = field(default=None, repr=False)
    """``None``: the hook is off (503)."""
    max_import_bytes: int = DEFAULT_MAX_IMPORT_BYTES


def from_config(config: Mapping[str, Any]) -> Settings:
    """``Settings`` from a Flask config; ``StranglerConfigError`` names the bad key."""
    node_id = config.get("STRANGLER_NODE_ID")
    if not isinstance(node_id, str) or not _NODE_ID.fullmatch(node_id):
        raise StranglerConfigError("STRANGLER_NODE_ID: required, 1-128 visible ASCII "
                                   "characters (this node's id, as the gateway's config "
                                   "names it)")
    limit = config.get("STRANGLER_MAX_IMPORT_BYTES", DEFAULT_MAX_IMPORT_BYTES)
    if type(limit) is not int or limit <= 0:
        raise StranglerConfigError("STRANGLER_MAX_IMPORT_BYTES: must be an int > 0 (bytes)")
    return Settings(node_id=node_id, headers=_headers(config.get("STRANGLER_HEADERS")),
                    token=_token(config), max_import_bytes=limit)


def _headers(value: Any) -> Headers:
    if isinstance(value, Mapping):
        if set(value) != set(HEADER_ROLES):
            raise StranglerConfigError(f"STRANGLER_HEADERS: a mapping needs exactly the keys "
                                       f"{', '.join(HEADER_ROLES)}")
        names = [value[role] for role in HEADER_ROLES]
    elif isinstance(value, list | tuple) and len(value) == 3:
        names = list(value)
    else:
        raise StranglerConfigError(
            "STRANGLER_HEADERS: required, the session profile's three header names: "
            "[session_id, revision, node] (e.g. ['X-Notes-Session', 'X-Notes-Rev', "
            "'X-Notes-Node']) or a mapping with those keys")
    for role, name in zip(HEADER_ROLES, names, strict=True):
        if not isinstance(name, str) or not _TOKEN_CHARS.fullmatch(name):
            raise StranglerConfigError(f"STRANGLER_HEADERS.{role}: {name!r} is not a header name")
    if len({n.lower() for n in names}) != 3:
        raise StranglerConfigError("STRANGLER_HEADERS: the three names must differ")
    return Headers(*names)


def _token(config: Mapping[str, Any]) -> str | None:
    path = config.get("STRANGLER_INTERNAL_TOKEN_FILE")
    token = config.get("STRANGLER_INTERNAL_TOKEN")
    if path is not None and token is not None:
        raise StranglerConfigError("STRANGLER_INTERNAL_TOKEN_FILE and STRANGLER_INTERNAL_TOKEN: "
                                   "set one, not both")
    if path is not None:
        if not isinstance(path, str | Path):
            raise StranglerConfigError("STRANGLER_INTERNAL_TOKEN_FILE: must be a path")
        try:
            token = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise StranglerConfigError(f"STRANGLER_INTERNAL_TOKEN_FILE: cannot read {path}: "
                                       f"{exc}") from exc
    if token is not None and not isinstance(token, str):
        raise StranglerConfigError("STRANGLER_INTERNAL_TOKEN: must be a string")
    return token.strip() or None if token is not None else None
