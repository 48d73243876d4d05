"""The shared session document: what the gateway keeps in Redis and new services read.

It knows no application. A session profile (``adapters.profile``) translates a
monolith's own session into it and back::

    {"schema": 2,
     "user": {"id": "u-1001", "name": "Ann", "claims": {"email": "..."}} | null,
     "fields": {"<declared field name>": <value in its rule's form>, ...},
     "extra": {"<undeclared top-level key of the monolith's session>": <as exported>}}

``user`` is the identity (``id`` a string or an integer, as the monolith keeps
it; ``null`` for a guest). ``fields`` holds the declared fields under their
shared names -- a counter as ``{key: count > 0}``, a set as a sorted list, a
map as an object, anything else as the monolith had it. ``extra`` carries
every key nobody declared, value for value, so that a round trip through the
store gives the monolith back exactly what it exported.

Values are compared strictly (``same``): JSON's ``true`` is not ``1`` and
``1`` is not ``1.0``, so a change of type is a change.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

SCHEMA: Final = 2


class SessionFormatError(ValueError):
    """A shared document or an export that does not have the agreed shape."""


@dataclass(frozen=True, slots=True, eq=False)
class Principal:
    """Who the session belongs to."""

    id: str | int
    name: str | None = None
    claims: Mapping[str, Any] = field(default_factory=dict)
    """Further identity values the profile turns into token claims."""

    def to_obj(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "claims": dict(self.claims)}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Principal) and same(self.to_obj(), other.to_obj())

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True, slots=True, eq=False)
class Document:
    """One session in the shared form. Treat the mappings as read-only."""

    user: Principal | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_obj(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "user": self.user.to_obj() if self.user else None,
                "fields": dict(self.fields), "extra": dict(self.extra)}

    def to_json(self) -> str:
        # ASCII: a lone surrogate a monolith exported (JSON allows "\ud800") survives
        # the trip through Redis, which takes UTF-8.
        return json.dumps(self.to_obj(), separators=(",", ":"), allow_nan=False)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Document) and same(self.to_obj(), other.to_obj())

    __hash__ = None  # type: ignore[assignment]

    def with_fields(self, **changes: Any) -> Document:
        """A copy with some fields replaced (``None`` removes a field)."""
        fields = dict(self.fields)
        for name, value in changes.items():
            if value is None:
                fields.pop(name, None)
            else:
                fields[name] = value
        return Document(self.user, fields, self.extra)

    @classmethod
    def from_json(cls, raw: str | bytes) -> Document:
        obj = loads(raw, "shared document")
        if not isinstance(obj, dict) or obj.get("schema") != SCHEMA:
            raise SessionFormatError("shared document: missing or unknown 'schema'")
        fields, extra = obj.get("fields", {}), obj.get("extra", {})
        if not isinstance(fields, dict) or not isinstance(extra, dict):
            raise SessionFormatError("shared document: 'fields' and 'extra' must be objects")
        return cls(_principal(obj.get("user")), fields, extra)


EMPTY: Final = Document()


def loads(raw: str | bytes, what: str) -> Any:
    """JSON as the standard says it: no NaN or Infinity."""
    try:
        return json.loads(raw, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SessionFormatError(f"{what} is not JSON: {exc}") from exc


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _principal(value: Any) -> Principal | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise SessionFormatError("shared document: 'user' must be an object or null")
    uid, name, claims = value.get("id"), value.get("name"), value.get("claims", {})
    if not (isinstance(uid, str) and uid) and type(uid) is not int:
        raise SessionFormatError("shared document: user.id must be a string or an integer")
    if name is not None and not isinstance(name, str):
        raise SessionFormatError("shared document: user.name must be a string or null")
    if not isinstance(claims, dict):
        raise SessionFormatError("shared document: user.claims must be an object")
    return Principal(uid, name, claims)


def same(a: Any, b: Any) -> bool:
    """JSON values equal in type and value (``True`` is not ``1``, ``1`` is not ``1.0``)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(v, b[k]) for k, v in a.items())
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)
