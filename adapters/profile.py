"""The session profile: everything Strangler knows about a monolith's session.

The ``session:`` section of config.yaml declares it (``ProfileSpec``); ``build``
turns it into a ``SessionProfile``, the port the gateway's bridge, the hook
client and the token minting use. Nothing else anywhere knows a cookie name,
a session key or a merge rule.

- the cookie, how duplicates of it resolve (``first`` / ``last``, as the
  monolith's framework does, or ``reject``), and the response headers through
  which the monolith reports session id, revision and node;
- the identity: key paths (JSON pointers into the exported session) of the
  user id (a string or an integer), the display name and further claims;
- the fields: a key path, a shared name, a rule (``adapters.merge``) and what
  the value must look like;
- every key nobody declared is carried as it is (``Document.extra``) and merged
  key by key with the ``undeclared`` rule.

A session whose export does not fit raises ``SessionUnfit`` with a short
reason; the bridge then leaves that one session to legacy. Values are checked,
never coerced: a field whose type changed is reported, not converted.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, model_validator

from adapters.document import Document, Principal, SessionFormatError, same
from adapters.merge import ABSENT, VALUE_RULES, Outcome, rule_for

ValueType = Literal["string", "integer", "number", "boolean", "object", "array", "any"]
Rule = Literal["counter", "set", "map", "lww", "legacy_wins", "new_wins"]
WholeRule = Literal["lww", "legacy_wins", "new_wins"]
ValueRule = Literal["counter", "lww", "legacy_wins", "new_wins"]
Pointer = Annotated[str, Field(pattern=r"^(/([^~/]|~[01])+)+$")]
"""A JSON pointer to an object member (``/a/b``, ``~1`` for ``/``, ``~0`` for ``~``)."""
Header = Annotated[str, Field(pattern=r"^[A-Za-z0-9-]{1,64}$")]
SharedName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
RESERVED_CLAIMS: Final = frozenset(
    {"iss", "aud", "sub", "exp", "iat", "nbf", "jti", "sid", "sh", "name", "guest", "kid"})
_COOKIE_NAME: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,128}")
_CHECK: Final[dict[str, Any]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: type(v) is int,
    "number": lambda v: type(v) in (int, float),
    "boolean": lambda v: type(v) is bool,
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "any": lambda v: True,
}


class SessionUnfit(SessionFormatError):
    """A session that does not fit its profile: it stays with legacy, alone."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        """A short code for metrics: ``not_json``, ``not_object``, ``oversize``,
        ``identity``, ``type``, ``path``, ``document``."""


# ---------------------------------------------------------------- the spec (config)
class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HeadersSpec(_Spec):
    session_id: Header = "X-Shop-Session-Id"
    """The session a response ended with (a new id after a login)."""
    revision: Header = "X-Shop-Session-Rev"
    """That session's revision; ``0`` when it does not exist."""
    node: Header = "X-Shop-Node"


class UserIdSpec(_Spec):
    path: Pointer
    type: Literal["string", "integer"] = "string"


class NameSpec(_Spec):
    path: Pointer


class ClaimSpec(_Spec):
    path: Pointer
    type: Literal["string", "integer", "number", "boolean"] = "string"


class IdentitySpec(_Spec):
    user_id: UserIdSpec
    name: NameSpec | None = None
    claims: dict[SharedName, ClaimSpec] = {}

    @model_validator(mode="after")
    def _not_reserved(self) -> IdentitySpec:
        taken = sorted(set(self.claims) & RESERVED_CLAIMS)
        if taken:
            raise ValueError(f"claims: {', '.join(taken)} are the token's own claims")
        return self


class EntriesSpec(_Spec):
    """A counter the monolith keeps as a list of ``{key: ..., count: ...}`` objects."""

    key: str = Field(min_length=1)
    count: str = Field(min_length=1)
    key_type: Literal["string", "integer"] = "string"


class FieldSpec(_Spec):
    path: Pointer
    rule: Rule
    type: ValueType = "any"
    """lww, legacy_wins, new_wins: what the value must be."""
    nullable: StrictBool = False
    entries: EntriesSpec | None = None
    """counter: kept as a list of entries (default: an object of key -> count)."""
    items: Literal["string", "integer"] = "string"
    """set: what its members are."""
    values: ValueRule = "lww"
    """map: the rule for each entry's value."""
    value_type: ValueType = "any"
    """map: what each entry's value must be (``counter`` values are integers)."""

    @model_validator(mode="after")
    def _options_fit_rule(self) -> FieldSpec:
        given = self.model_fields_set
        only = {"entries": ("counter",), "items": ("set",), "values": ("map",),
                "value_type": ("map",), "type": ("lww", "legacy_wins", "new_wins"),
                "nullable": ("lww", "legacy_wins", "new_wins")}
        for option, rules in only.items():
            if option in given and self.rule not in rules:
                raise ValueError(f"{option}: only for rule {' or '.join(rules)}")
        return self


class ProfileSpec(_Spec):
    cookie: str
    """The monolith's session cookie."""
    duplicate_cookies: Literal["first", "last", "reject"]
    """Which of two cookies of that name counts -- the one the monolith's framework
    takes -- or ``reject``: a 400 that expires them, and the browser recovers."""
    headers: HeadersSpec = HeadersSpec()
    identity: IdentitySpec
    fields: dict[SharedName, FieldSpec] = {}
    undeclared: WholeRule = "lww"
    """How a key nobody declared merges (per key, never the whole session)."""
    max_export_bytes: StrictInt = Field(256 * 1024, ge=1024)

    @model_validator(mode="after")
    def _consistent(self) -> ProfileSpec:
        if not _COOKIE_NAME.fullmatch(self.cookie):
            raise ValueError(f"cookie: {self.cookie!r} is not a cookie name")
        paths = [("identity.user_id", self.identity.user_id.path)]
        if self.identity.name is not None:
            paths.append(("identity.name", self.identity.name.path))
        paths += [(f"identity.claims.{n}", c.path) for n, c in self.identity.claims.items()]
        paths += [(f"fields.{n}", f.path) for n, f in self.fields.items()]
        for i, (where, path) in enumerate(paths):
            for other, other_path in paths[:i]:
                if _overlaps(pointer(path), pointer(other_path)):
                    raise ValueError(f"{where}.path: {path} overlaps {other} ({other_path})")
        names = [self.headers.session_id, self.headers.revision, self.headers.node]
        if len({n.lower() for n in names}) != 3:
            raise ValueError("headers: session_id, revision and node need three names")
        return self


def pointer(path: str) -> tuple[str, ...]:
    return tuple(p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:])


def _overlaps(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    n = min(len(a), len(b))
    return a[:n] == b[:n]


# ---------------------------------------------------------------- the port
@dataclass(frozen=True, slots=True)
class Merged:
    doc: Document
    conflicts: tuple[str, ...] = ()
    """Where both sides changed a value differently (field, ``field[key]``, ``extra.key``)."""


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    path: tuple[str, ...]
    spec: FieldSpec
    merge: Any = field(compare=False)


class SessionProfile:
    """Translate one monolith's exported sessions to shared documents and back, and
    merge them. Pure: no I/O, no clock."""

    def __init__(self, spec: ProfileSpec) -> None:
        self.spec = spec
        self.cookie = spec.cookie
        self.duplicates = spec.duplicate_cookies
        self.session_id_header = spec.headers.session_id
        self.revision_header = spec.headers.revision
        self.node_header = spec.headers.node
        self.max_export_bytes = spec.max_export_bytes
        ident = spec.identity
        self._uid = pointer(ident.user_id.path)
        self._uid_type = ident.user_id.type
        self._name = pointer(ident.name.path) if ident.name else None
        self._claims = {n: (pointer(c.path), c.type) for n, c in ident.claims.items()}
        self._fields = tuple(_Field(n, pointer(f.path), f, rule_for(f.rule, f.values))
                             for n, f in spec.fields.items())
        self._undeclared = rule_for(spec.undeclared)
        self.field_names = frozenset(spec.fields)

    @property
    def response_headers(self) -> tuple[str, str, str]:
        """The monolith's own session headers: internal, never shown to a client."""
        return (self.session_id_header, self.revision_header, self.node_header)

    # ------------------------------------------------------------ export -> document
    def from_export(self, data: Any) -> Document:
        """The shared document for a monolith session's ``data``; ``SessionUnfit`` if it
        does not fit. ``data`` is not changed."""
        if not isinstance(data, dict):
            raise SessionUnfit("not_object", "the exported session is not an object")
        rest = copy.deepcopy(data)
        user = self._principal(rest)
        fields: dict[str, Any] = {}
        for f in self._fields:
            value = _take(rest, f.path, f.name)
            if value is not ABSENT:
                fields[f.name] = _decode(f, value)
        return Document(user, fields, rest)

    def _principal(self, rest: dict[str, Any]) -> Principal | None:
        uid = _take(rest, self._uid, "identity.user_id")
        name = _take(rest, self._name, "identity.name") if self._name else ABSENT
        claims = {n: _take(rest, p, f"identity.claims.{n}") for n, (p, _) in
                  self._claims.items()}
        if uid is ABSENT or uid is None:
            for what, value in (("name", name), *claims.items()):
                if value is not ABSENT and value is not None:
                    _put_back(rest, self, uid, name, claims)
                    raise SessionUnfit("identity", f"identity: {what} without a user id")
            _put_back(rest, self, uid, name, claims)
            return None
        if not _CHECK[self._uid_type](uid) or uid == "":
            raise SessionUnfit("identity", f"identity.user_id: expected {self._uid_type}, "
                                           f"got {_kind(uid)}")
        if name is not ABSENT and name is not None and not isinstance(name, str):
            raise SessionUnfit("identity", f"identity.name: expected string, got {_kind(name)}")
        kept: dict[str, Any] = {}
        for n, value in claims.items():
            if value is ABSENT:
                continue
            if value is not None and not _CHECK[self._claims[n][1]](value):
                raise SessionUnfit("identity", f"identity.claims.{n}: expected "
                                               f"{self._claims[n][1]}, got {_kind(value)}")
            kept[n] = value
        return Principal(uid, None if name is ABSENT else name, kept)

    # ------------------------------------------------------------ document -> import
    def to_import(self, doc: Document) -> dict[str, Any]:
        """The monolith's ``data`` for a shared document: undeclared keys as they were,
        declared ones at their paths in the monolith's own form."""
        self.check(doc)
        data: dict[str, Any] = copy.deepcopy(dict(doc.extra))
        user = doc.user
        if user is not None:
            _place(data, self._uid, user.id)
            if self._name is not None and user.name is not None:
                _place(data, self._name, user.name)
            for n, value in user.claims.items():
                if n in self._claims:
                    _place(data, self._claims[n][0], value)
        for f in self._fields:
            if f.name in doc.fields:
                _place(data, f.path, _encode(f, doc.fields[f.name]))
        return data

    def check(self, doc: Document) -> None:
        """``SessionUnfit`` if a document (new services write them) breaks the profile."""
        user = doc.user
        if user is not None and not _CHECK[self._uid_type](user.id):
            raise SessionUnfit("document", f"user.id: expected {self._uid_type}")
        for f in self._fields:
            if f.name in doc.fields and not _valid_shared(f, doc.fields[f.name]):
                raise SessionUnfit("document", f"fields.{f.name}: not a valid {f.spec.rule} "
                                               "value")

    # ------------------------------------------------------------ merge
    def merge(self, base: Document, legacy: Document, current: Document, *,
              legacy_later: bool = True) -> Merged:
        """Apply legacy's change (``base`` -> ``legacy``) to ``current``.

        The user follows legacy when legacy changed it (a login there); a logout on
        legacy leaves nothing of the session but legacy's copy. Every field merges by
        its rule, every undeclared key by the ``undeclared`` rule; ``legacy_later``
        says whose write is later when both changed one value (``lww``)."""
        out = Outcome(legacy_later)
        if legacy.user != base.user and legacy.user is None:
            return Merged(legacy)
        if legacy.user != base.user:
            if current.user != base.user and current.user != legacy.user:
                out.conflicts.append("user")
            user = legacy.user
        else:
            user = current.user
        fields: dict[str, Any] = {}
        for f in self._fields:
            value = f.merge(base.fields.get(f.name, ABSENT), legacy.fields.get(f.name, ABSENT),
                            current.fields.get(f.name, ABSENT), out, f.name)
            if value is not ABSENT:
                fields[f.name] = value
        extra: dict[str, Any] = {}
        for key in dict.fromkeys([*current.extra, *legacy.extra, *base.extra]):
            value = self._undeclared(base.extra.get(key, ABSENT), legacy.extra.get(key, ABSENT),
                                     current.extra.get(key, ABSENT), out, f"extra.{key}")
            if value is not ABSENT:
                extra[key] = value
        return Merged(Document(user, fields, extra), tuple(out.conflicts))


def build(spec: ProfileSpec | Mapping[str, Any]) -> SessionProfile:
    if not isinstance(spec, ProfileSpec):
        spec = ProfileSpec.model_validate(spec)
    return SessionProfile(spec)


# ---------------------------------------------------------------- values
def _take(data: dict[str, Any], path: tuple[str, ...] | None, where: str) -> Any:
    """Remove and return the value at ``path`` (``ABSENT`` if missing)."""
    if path is None:
        return ABSENT
    node: Any = data
    for part in path[:-1]:
        node = node.get(part, ABSENT)
        if node is ABSENT:
            return ABSENT
        if not isinstance(node, dict):
            raise SessionUnfit("path", f"{where}: {'/'.join(path)} runs through a "
                                       f"{_kind(node)}")
    return node.pop(path[-1], ABSENT)


def _put_back(rest: dict[str, Any], profile: SessionProfile, uid: Any, name: Any,
              claims: dict[str, Any]) -> None:
    """A guest: whatever the identity paths held (``null``) stays where it was."""
    if uid is not ABSENT:
        _place(rest, profile._uid, uid)
    if name is not ABSENT and profile._name is not None:
        _place(rest, profile._name, name)
    for n, value in claims.items():
        if value is not ABSENT:
            _place(rest, profile._claims[n][0], value)


def _place(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = data
    for part in path[:-1]:
        nxt = node.get(part)
        if not isinstance(nxt, dict):
            nxt = node[part] = {}
        node = nxt
    node[path[-1]] = value


def _decode(f: _Field, value: Any) -> Any:
    spec = f.spec
    if spec.rule == "counter":
        return _decode_counter(f, value)
    if spec.rule == "set":
        if not isinstance(value, list) or not all(_CHECK[spec.items](i) for i in value):
            raise _type(f, f"a list of {spec.items}s", value)
        return sorted(set(value), key=lambda i: (isinstance(i, str), i))
    if spec.rule == "map":
        if not isinstance(value, dict):
            raise _type(f, "an object", value)
        for key, entry in value.items():
            if spec.values == "counter":
                if type(entry) is not int or entry < 0:
                    raise _type(f, "an object of counts", entry, key)
            elif not _CHECK[spec.value_type](entry):
                raise _type(f, f"entries of type {spec.value_type}", entry, key)
        if spec.values == "counter":
            return {k: v for k, v in value.items() if v > 0}
        return value
    if value is None and spec.nullable:
        return None
    if value is None or not _CHECK[spec.type](value):
        raise _type(f, spec.type, value)
    return value


def _decode_counter(f: _Field, value: Any) -> dict[str, int]:
    entries = f.spec.entries
    counts: dict[str, int] = {}
    if entries is None:
        if not isinstance(value, dict):
            raise _type(f, "an object of counts", value)
        items = list(value.items())
    else:
        if not isinstance(value, list):
            raise _type(f, f"a list of {{{entries.key}, {entries.count}}}", value)
        items = []
        for i, line in enumerate(value):
            if not isinstance(line, dict) or set(line) != {entries.key, entries.count}:
                raise _type(f, f"{{{entries.key}, {entries.count}}}", line, str(i))
            key = line[entries.key]
            if not _CHECK[entries.key_type](key):
                raise _type(f, f"{entries.key} of type {entries.key_type}", key, str(i))
            items.append((str(key), line[entries.count]))
    for key, count in items:
        if type(count) is not int or count < 0:
            raise _type(f, "non-negative integer counts", count, key)
        if count:
            counts[key] = counts.get(key, 0) + count
    return counts


def _encode(f: _Field, value: Any) -> Any:
    entries = f.spec.entries
    if f.spec.rule != "counter" or entries is None:
        return copy.deepcopy(value)
    keys = sorted(value, key=int) if entries.key_type == "integer" else sorted(value)
    return [{entries.key: int(k) if entries.key_type == "integer" else k,
             entries.count: value[k]} for k in keys]


def _valid_shared(f: _Field, value: Any) -> bool:
    """A value in a shared document in the form its rule keeps."""
    spec = f.spec
    if spec.rule == "counter":
        if not isinstance(value, dict):
            return False
        if spec.entries is not None and spec.entries.key_type == "integer":
            if not all(k.lstrip("-").isdigit() for k in value):
                return False
        return all(type(v) is int and v > 0 for v in value.values())
    if spec.rule == "set":
        return isinstance(value, list) and all(_CHECK[spec.items](i) for i in value)
    if spec.rule == "map":
        if not isinstance(value, dict):
            return False
        if spec.values == "counter":
            return all(type(v) is int and v > 0 for v in value.values())
        return all(_CHECK[spec.value_type](v) for v in value.values())
    return (value is None and spec.nullable) or (value is not None and _CHECK[spec.type](value))


def _type(f: _Field, wanted: str, value: Any, key: str | None = None) -> SessionUnfit:
    where = f"{f.name}[{key}]" if key is not None else f.name
    return SessionUnfit("type", f"field {where} ({f.spec.path}): expected {wanted}, "
                                f"got {_kind(value)}")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array",
            dict: "object"}.get(type(value), type(value).__name__)


__all__ = ["VALUE_RULES", "Merged", "ProfileSpec", "SessionProfile", "SessionUnfit", "build",
           "same"]
