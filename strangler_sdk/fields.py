"""A session's declared fields, read and written by their shared names and rules.

The deployment's ``session:`` profile (``adapters.profile``) says which fields
exist and how each merges; ``SessionData`` reads them in their shared form and
makes new documents with a field changed in that form -- a ``counter`` by
deltas, a ``set`` by members (kept sorted and unique), a ``map`` by entries, an
``lww`` field (and ``legacy_wins`` / ``new_wins``) whole. Every write is checked
against the profile: a value of the wrong type is refused (``FieldError``),
never written for the gateway to find. ``user`` and ``extra`` are carried as
they were read.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from adapters.document import Document, Principal
from adapters.profile import SessionProfile, SessionUnfit

from .errors import BadRequest


class FieldError(BadRequest):
    """A write that names no declared field, uses the wrong rule or breaks its type."""


_EMPTY: dict[str, Any] = {"counter": {}, "set": [], "map": {}}


@dataclass(frozen=True, slots=True)
class SessionData:
    """One session document seen through a profile. Immutable: writes return a copy."""

    doc: Document
    profile: SessionProfile

    @property
    def user(self) -> Principal | None:
        return self.doc.user

    def get(self, name: str) -> Any:
        """The field's value; when absent, its rule's empty value (``{}``, ``[]``) or
        ``None``."""
        rule = self._rule(name)
        if name in self.doc.fields:
            return self.doc.fields[name]
        empty = _EMPTY.get(rule)
        return type(empty)() if empty is not None else None

    # -- whole values (any rule; checked against the profile) --
    def set(self, name: str, value: Any) -> SessionData:
        """The field replaced by ``value`` (in its rule's shared form)."""
        rule = self._rule(name)
        if rule == "set" and isinstance(value, list):
            value = sorted(set(value), key=_order)
        if rule in ("counter", "map") and isinstance(value, dict) and not value \
                and name not in self.doc.fields:
            return self
        return self._with(name, value)

    def delete(self, name: str) -> SessionData:
        self._rule(name)
        if name not in self.doc.fields:
            return self
        fields = {k: v for k, v in self.doc.fields.items() if k != name}
        return replace(self, doc=Document(self.doc.user, fields, self.doc.extra))

    # -- counter --
    def count(self, name: str, key: str, delta: int) -> SessionData:
        """Add ``delta`` (may be negative) to a counter's key; at 0 or below it goes."""
        self._rule(name, "counter")
        counts = dict(self.get(name))
        left = counts.get(key, 0) + delta
        if left > 0:
            counts[key] = left
        else:
            counts.pop(key, None)
        return self._with(name, counts)

    # -- set --
    def add(self, name: str, item: str | int) -> SessionData:
        self._rule(name, "set")
        return self._with(name, sorted({*self.get(name), item}, key=_order))

    def discard(self, name: str, item: str | int) -> SessionData:
        self._rule(name, "set")
        return self._with(name, [i for i in self.get(name) if i != item or type(i) is not
                                 type(item)])

    # -- map --
    def put(self, name: str, key: str, value: Any) -> SessionData:
        self._rule(name, "map")
        return self._with(name, {**self.get(name), key: value})

    def pop(self, name: str, key: str) -> SessionData:
        self._rule(name, "map")
        return self._with(name, {k: v for k, v in self.get(name).items() if k != key})

    # -- the document --
    def replace_doc(self, doc: Document) -> SessionData:
        """Another document for the same profile, checked against it."""
        _check(self.profile, doc)
        return replace(self, doc=doc)

    def _rule(self, name: str, wanted: str | None = None) -> str:
        spec = self.profile.spec.fields.get(name)
        if spec is None:
            raise FieldError(f"session field {name!r} is not declared by the profile")
        if wanted is not None and spec.rule != wanted:
            raise FieldError(f"session field {name!r} is a {spec.rule}, not a {wanted}")
        return spec.rule

    def _with(self, name: str, value: Any) -> SessionData:
        doc = self.doc.with_fields(**{name: value}) if value is not None else Document(
            self.doc.user, {**self.doc.fields, name: None}, self.doc.extra)
        _check(self.profile, doc)
        return replace(self, doc=doc)


def readable(profile: SessionProfile, doc: Document) -> bool:
    """Does ``doc`` keep the types its profile declares?"""
    try:
        profile.check(doc)
    except SessionUnfit:
        return False
    return True


def _check(profile: SessionProfile, doc: Document) -> None:
    try:
        profile.check(doc)
    except SessionUnfit as exc:
        raise FieldError(f"refused: {exc}") from None


def _order(item: Any) -> tuple[int, Any]:
    """Integers first by value, then strings by code point (docs/protocol.md section 5)."""
    return (0, item) if isinstance(item, int) else (1, item)
