"""A ``session:`` block guessed from the statistics of ``shapes`` -- for a person to check.

- identity: the path whose name reads like a user id (``uid``, ``user_id``,
  ``_auth_user_id``, ``userId``...) and holds strings or integers; a name path
  beside it (``uname``, ``username``, ``_auth_user_name``...);
- fields, by shape: an object of non-negative integers is a ``counter``; an
  array of strings or of integers a ``set`` (unless an array repeated an item);
  an array of two-member objects, one a non-negative integer named like a count
  (``quantity``, ``qty``, ``count``...) and one a string or integer key, a
  ``counter`` with ``entries``; an object of scalars a ``map``; a scalar seen to
  change within a session ``lww``. An object of anything else is looked into.
- everything else -- constant scalars, keys whose name says secret (csrf,
  token...), lists of records, mixed types -- is left to ``undeclared`` and
  listed in comments, so a person decides.

Each guess carries the figures behind it as comments. No value is shown: the
statistics hold none. The cookie and ``duplicate_cookies`` cannot be seen in a
session; unless given they are placeholders that ``adapters.profile.build``
refuses until someone fills them in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from adapters.discovery.render import (
    COOKIE_PLACEHOLDER,
    DUPLICATES_PLACEHOLDER,
    figures,
    render,
)
from adapters.discovery.summary import ANY, SCALARS, Path, PathSummary, Summary, pointer
from adapters.profile import HeadersSpec, ProfileSpec

UNKNOWN_USER_ID: Final = "/EDIT_ME_user_id"
_SECRET = re.compile(r"csrf|xsrf|token|secret|nonce|passw|salt|otp|hmac|signature|api_?key|"
                     r"private|credential")
_COUNT_NAMES = ("count", "qty", "quantity", "times", "hits")
"""A member of a ``{key, count}`` entry is its count if its name ends so, or is ``n``."""


@dataclass(frozen=True, slots=True)
class Guess:
    """What became of one path, and why (comment lines: figures, then the reason)."""

    segments: Path
    decision: str
    """``user_id``, ``name``, ``field``, ``undeclared``."""
    why: tuple[str, ...]
    spec: Mapping[str, Any] | None = None
    name: str | None = None
    """The shared name of a field."""

    @property
    def path(self) -> str:
        return pointer(self.segments)


@dataclass(frozen=True, slots=True)
class Proposal:
    session: dict[str, Any]
    """The block as data; placeholders where a person must fill it in."""
    yaml: str
    """``session:`` and its block, with comments: what to paste into config.yaml."""
    guesses: tuple[Guess, ...]
    complete: bool
    """No placeholder is left: ``adapters.profile.build`` takes ``session`` as it is."""

    def to_json(self) -> dict[str, Any]:
        return {"yaml": self.yaml, "session": self.session, "complete": self.complete,
                "guesses": [{"path": g.path, "decision": g.decision, "name": g.name,
                             "why": list(g.why)} for g in self.guesses]}


def propose(summary: Summary, *, cookie: str | None = None,
            duplicate_cookies: str | None = None,
            headers: Mapping[str, str] | None = None, note: str | None = None) -> Proposal:
    """The ``session:`` block the statistics suggest. ``headers``: the monolith's session
    headers (``session_id``, ``revision``, ``node``) if known; ``note``: a line for the
    comment at the top (where the given values come from)."""
    kids = _children(summary)
    total = max(summary.sessions, 1)
    guesses = _identity(summary, kids, total)
    taken = [g.segments for g in guesses]
    names: set[str] = set()
    for child in kids.get((), []):
        guesses += _decide(child, kids, total, taken, names)
    session = _block(guesses, cookie, duplicate_cookies, headers)
    filled = {**session, "cookie": cookie or "sessionid",
              "duplicate_cookies": duplicate_cookies or "last"}
    # a guess that does not build would be a bug here; a given cookie or header name
    # that does not is the caller's (pydantic's ValidationError is a ValueError)
    ProfileSpec.model_validate(filled)
    complete = cookie is not None and duplicate_cookies is not None
    text = render(session, guesses, summary, cookie=cookie is not None,
                  duplicates=duplicate_cookies is not None, headers=headers is not None,
                  note=note)
    return Proposal(session, text, tuple(guesses), complete)


# ---------------------------------------------------------------- identity
def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _user_id_like(name: str) -> bool:
    n = _norm(name)
    return n in ("uid", "userid", "accountid", "customerid", "memberid", "loginid",
                 "principalid", "userpk") or n.endswith("userid")


def _name_like(name: str) -> bool:
    n = _norm(name)
    return n in ("uname", "username", "name", "displayname", "fullname", "nickname") or \
        n.endswith(("username", "displayname", "fullname"))


def _identity(summary: Summary, kids: dict[Path, list[PathSummary]],
              total: int) -> list[Guess]:
    def usable(p: PathSummary) -> bool:
        return bool(p.segments) and ANY not in p.segments and _through_objects(p, summary)

    uids = [p for p in summary.paths if usable(p) and _user_id_like(p.segments[-1])
            and set(p.types) - {"null"} in ({"string"}, {"integer"})]
    if not uids:
        return [Guess(tuple(UNKNOWN_USER_ID[1:].split("/")), "user_id", (
            "EDIT: no key looked like a user id (uid, user_id, _auth_user_id, userId...) "
            "holding strings or integers; until you name the right path every session "
            "counts as a guest's",))]
    uid = max(uids, key=lambda p: (p.sessions, -len(p.segments)))
    kind = "integer" if "integer" in uid.types else "string"
    out = [Guess(uid.segments, "user_id", (
        figures(uid, total),
        f"user_id: its name reads like a user id and it holds {kind}s"
        + ("; null for guests" if "null" in uid.types else "")), {"type": kind})]
    names = [p for p in summary.paths if usable(p) and _name_like(p.segments[-1])
             and set(p.types) - {"null"} == {"string"} and p.segments != uid.segments]
    if names:
        name = max(names, key=lambda p: (p.segments[:-1] == uid.segments[:-1], p.sessions))
        out.append(Guess(name.segments, "name", (
            figures(name, total),
            "name: its name reads like a user's name and it holds strings (a name "
            "without a user id makes a session unfit: check they come together)")))
    return out


# ---------------------------------------------------------------- fields
def _decide(p: PathSummary, kids: dict[Path, list[PathSummary]], total: int,
            taken: list[Path], names: set[str]) -> list[Guess]:
    """The guesses for ``p`` and, when it is looked into, below it."""
    if p.segments[-1] == ANY:
        return [Guess(p.segments, "undeclared", (figures(p, total),
                      "members keyed by data (ids, emails, tokens) or too many names"))]
    if any(t == p.segments for t in taken):
        return []
    if any(t[:len(p.segments)] == p.segments for t in taken):  # holds the identity
        return _descend(p, kids, total, taken, names)
    kinds = set(p.types)
    if _SECRET.search(p.segments[-1].lower()):
        rule, why = None, "its name says secret: kept as it is, never a shared field"
    elif kinds == {"object"}:
        rule, why = _object_rule(p, kids)
        if rule is None and not why:
            inner = _descend(p, kids, total, taken, names)
            if any(g.decision != "undeclared" for g in inner):
                return inner
            why = (f"an object of {', '.join(p.member_types)} values: nothing in it looks "
                   "like a field")
    elif kinds == {"array"}:
        rule, why = _array_rule(p, kids)
    elif kinds - {"null"} and kinds <= SCALARS | {"null"}:
        rule, why = _scalar_rule(p)
    else:
        rule, why = None, f"its type varies ({', '.join(sorted(kinds))})"
    if rule is None:
        return [Guess(p.segments, "undeclared", (figures(p, total), why))]
    return [Guess(p.segments, "field", (figures(p, total), why), rule,
                  _shared_name(p.segments, names))]


def _descend(p: PathSummary, kids: dict[Path, list[PathSummary]], total: int,
             taken: list[Path], names: set[str]) -> list[Guess]:
    out: list[Guess] = []
    for child in kids.get(p.segments, []):
        out += _decide(child, kids, total, taken, names)
    return out


def _object_rule(p: PathSummary, kids: dict[Path, list[PathSummary]]
                 ) -> tuple[dict[str, Any] | None, str]:
    """A rule, or (None, reason); (None, "") means: look into its members."""
    members = p.members or (0, 0, 0.0)
    values = set(p.member_types)
    if members[1] == 0:
        return None, "always empty: nothing to tell its rule by"
    negative = sum(k.negative for k in kids.get(p.segments, []))
    if values == {"integer"} and not negative:
        return {"rule": "counter"}, ("counter: an object of non-negative integers (counts "
                                     "added on both sides add up)")
    if values <= SCALARS:
        vtype = _scalar_type(values)
        return {"rule": "map", "values": "lww", "value_type": vtype}, (
            f"map: an object of {vtype} values, merged key by key (latest write per key)")
    if p.keyed:
        return None, "an object keyed by data, of values that are not all scalars"
    return None, ""


def _array_rule(p: PathSummary, kids: dict[Path, list[PathSummary]]
                ) -> tuple[dict[str, Any] | None, str]:
    item = next((k for k in kids.get(p.segments, []) if k.segments[-1] == ANY), None)
    if item is None or not p.items or p.items[0] == 0:
        return None, "always empty: nothing to tell its rule by"
    kinds = set(item.types)
    if kinds in ({"string"}, {"integer"}):
        items = next(iter(kinds))
        if p.duplicates:
            return None, (f"an array of {items}s that repeated an item in {p.duplicates} "
                          "samples: a list, which a set would shorten")
        order = (f"; {p.unsorted} were out of order (a set keeps them sorted)"
                 if p.unsorted else "")
        return {"rule": "set", "items": items}, (
            f"set: an array of {items}s, never a repeated item{order}")
    if kinds == {"object"}:
        return _entries(item, kids)
    return None, f"an array of {', '.join(sorted(kinds))}"


def _entries(item: PathSummary, kids: dict[Path, list[PathSummary]]
             ) -> tuple[dict[str, Any] | None, str]:
    members = [k for k in kids.get(item.segments, []) if k.segments[-1] != ANY]
    every = item.occurrences
    if item.keyed or item.members is None or item.members[:2] != (2, 2) or \
            len(members) != 2 or any(m.occurrences != every for m in members):
        return None, "an array of records (not {key, count} pairs)"
    counts = [m for m in members if set(m.types) == {"integer"} and not m.negative
              and (_norm(m.segments[-1]) == "n" or _norm(m.segments[-1]).endswith(_COUNT_NAMES))]
    if len(counts) != 1:
        return None, ("an array of pairs, but not one member is clearly the count (a non-"
                      "negative integer named like count, qty or quantity)")
    count = counts[0]
    key = next(m for m in members if m is not count)
    if set(key.types) not in ({"string"}, {"integer"}):
        return None, "an array of pairs whose key is not a string or an integer"
    key_type = next(iter(key.types))
    entries = {"key": key.segments[-1], "count": count.segments[-1], "key_type": key_type}
    return {"rule": "counter", "entries": entries}, (
        f"counter: an array of {{{key.segments[-1]}, {count.segments[-1]}}} entries, "
        f"{count.segments[-1]} a non-negative integer, {key.segments[-1]} {_a(key_type)}")


def _scalar_rule(p: PathSummary) -> tuple[dict[str, Any] | None, str]:
    if not p.repeats:
        return None, "never sampled twice in one session: cannot tell whether it changes"
    if not p.changes:
        return None, f"never changed in {p.repeats} repeat samples: the monolith's own"
    rule: dict[str, Any] = {"rule": "lww", "type": _scalar_type(set(p.types) - {"null"})}
    if "null" in p.types:
        rule["nullable"] = True
    return rule, f"lww: {_a(rule['type'])} that changes (the latest write wins)"


def _a(word: str) -> str:
    return ("an " if word[:1] in "aeiou" else "a ") + word


def _scalar_type(kinds: set[str]) -> str:
    if len(kinds) == 1:
        return next(iter(kinds))
    return "number" if kinds == {"integer", "number"} else "any"


# ---------------------------------------------------------------- helpers
def _children(summary: Summary) -> dict[Path, list[PathSummary]]:
    kids: dict[Path, list[PathSummary]] = {}
    for p in summary.paths:
        if p.segments:
            kids.setdefault(p.segments[:-1], []).append(p)
    return kids


def _through_objects(p: PathSummary, summary: Summary) -> bool:
    """Every parent of ``p`` was always an object (else the profile cannot reach it)."""
    for i in range(1, len(p.segments)):
        parent = summary.get(p.segments[:i])
        if parent is None or set(parent.types) != {"object"}:
            return False
    return True


def _shared_name(segments: Path, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_]", "_", "_".join(segments))[:60]
    if not re.search(r"[A-Za-z0-9]", base):
        base = "field"
    if base[0].isdigit():
        base = "f_" + base[:58]
    name, n = base, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


def _block(guesses: list[Guess], cookie: str | None, duplicates: str | None,
           headers: Mapping[str, str] | None) -> dict[str, Any]:
    identity: dict[str, Any] = {}
    fields: dict[str, Any] = {}
    for g in guesses:
        if g.decision == "user_id":
            identity["user_id"] = {"path": g.path, "type": (g.spec or {}).get("type", "string")}
        elif g.decision == "name":
            identity["name"] = {"path": g.path}
        elif g.decision == "field" and g.name is not None:
            fields[g.name] = {"path": g.path, **(g.spec or {})}
    head = dict(headers) if headers is not None else HeadersSpec().model_dump()
    return {"cookie": cookie or COOKIE_PLACEHOLDER,
            "duplicate_cookies": duplicates or DUPLICATES_PLACEHOLDER,
            "headers": head, "identity": identity, "fields": fields, "undeclared": "lww"}
