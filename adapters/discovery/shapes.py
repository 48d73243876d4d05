"""Statistics per key path of sampled sessions -- shapes only, never values.

``SessionShapes.add(sid, at, data)`` folds one exported session ``data`` (the
JSON object of the export hook) into figures per key path, a JSON pointer:
``/basket`` for a member, ``/basket/*`` for an array's items (so an array of
objects is described by ``/basket/*/sku``...), and ``/visits/*`` for the
members of an object keyed by data rather than by names (member names that
look like ids, emails or tokens, or past ``MAX_NAMES`` distinct names at one
path; a literal ``*`` key counts among them). Per path:

- the JSON types seen and how often (each occurrence: array items count one each);
- presence: in how many sampled sessions, and samples, the path occurred;
- changes: of the pairs of consecutive samples of one session that had the
  path in either, in how many it differed (appearing or going counts);
- value sizes in bytes (as compact UTF-8 JSON): max and average;
- for strings, how many looked like ``uuid`` / ``email`` / ``digits`` /
  ``timestamp`` / ``token`` (else ``text``); for integers, how many were negative;
- for objects, how many members and of which types; for arrays, how many items,
  and for arrays of scalars how often they were out of order or repeated one.

What is kept of a value: its type, size, class and a keyed 8-byte digest (to
see that it changed; the key is random per ``SessionShapes`` and the digests
never leave it). Session ids are kept only as such digests, too. Nothing
else: the statistics can be shown to anyone who may see key names.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import secrets
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any, Final

from adapters.discovery.summary import ANY, KINDS, Path, PathSummary, Summary

MAX_NAMES: Final = 64
"""Distinct member names kept at one path; further ones count under ``ANY``."""
MAX_DEPTH: Final = 32
"""Nesting below this depth is measured as a whole, not walked."""
_DATE = r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?"
_LIKE: Final = (
    ("uuid", re.compile(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")),
    ("email", re.compile(r"[^@\s]{1,64}@[^@\s.]+(\.[^@\s.]+)+")),
    ("digits", re.compile(r"-?[0-9]{1,40}")),
    ("timestamp", re.compile(_DATE)),
)
_HEX = re.compile(r"[0-9a-fA-F]{16,}")
_OPAQUE = re.compile(r"[A-Za-z0-9_\-+/]{16,}={0,2}")


def like(text: str) -> str:
    """What a string looks like: uuid, email, digits, timestamp, token or text."""
    if len(text) > 256:
        return "text"
    for name, pattern in _LIKE:
        if pattern.fullmatch(text):
            return name
    if _HEX.fullmatch(text) or (_OPAQUE.fullmatch(text) and any(c.isupper() for c in text)
                                and any(c.islower() for c in text)
                                and any(c.isdigit() for c in text)):
        return "token"
    return "text"


def nameable(name: str) -> bool:
    """A member name that reads as a key a developer chose, safe to show: short,
    printable, not ``*`` and not data (an id, an email, a token...)."""
    return 0 < len(name) <= 64 and name.isprintable() and name != ANY and like(name) == "text"


def kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array",
            dict: "object"}.get(type(value), "unknown")


@dataclass(slots=True)
class _Acc:
    """The running figures of one path."""

    types: Counter[str] = field(default_factory=Counter)
    samples: int = 0
    sessions: int = 0
    repeats: int = 0
    changes: int = 0
    size_max: int = 0
    size_total: int = 0
    strings: Counter[str] = field(default_factory=Counter)
    negative: int = 0
    members_min: int | None = None
    members_max: int = 0
    members_total: int = 0
    member_types: Counter[str] = field(default_factory=Counter)
    names: dict[str, None] = field(default_factory=dict)
    keyed: int = 0
    items_max: int = 0
    items_total: int = 0
    unsorted: int = 0
    duplicates: int = 0


@dataclass(slots=True)
class _Seen:
    """One session: the digest of each path in its last sample, and every path it had."""

    last: dict[Path, bytes]
    paths: set[Path]


class SessionShapes:
    """Accumulates samples of exported sessions; ``summary()`` reads the figures.

    Bounded: at most ``max_paths`` paths and ``max_sessions`` sessions remembered
    (the least recently sampled one is forgotten first)."""

    def __init__(self, *, max_paths: int = 1000, max_sessions: int = 10_000) -> None:
        self._key = secrets.token_bytes(16)
        self._paths: dict[Path, _Acc] = {}
        self._seen: OrderedDict[bytes, _Seen] = OrderedDict()
        self._max_paths = max_paths
        self._max_sessions = max_sessions
        self.samples = 0
        self.sessions = 0
        self.not_objects = 0
        self.untracked = 0
        self.first_at: float | None = None
        self.last_at: float | None = None

    def add(self, sid: str, at: float, data: Any) -> None:
        """Fold in one sample: session ``sid``'s exported ``data`` at time ``at``.
        Samples of one session are compared in the order they are added."""
        if not isinstance(data, dict):
            self.not_objects += 1
            return
        found: dict[Path, list[bytes]] = {}
        self._walk(data, (), found, 0)
        self.samples += 1
        self.first_at = at if self.first_at is None else min(self.first_at, at)
        self.last_at = at if self.last_at is None else max(self.last_at, at)
        now = {p: ds[0] if len(ds) == 1 else self._digest(b"".join(ds))
               for p, ds in found.items()}
        seen = self._session(self._digest(sid.encode("utf-8", "surrogatepass")))
        for path in now:
            acc = self._paths[path]
            acc.samples += 1
            if path not in seen.paths:
                acc.sessions += 1
                seen.paths.add(path)
        if seen.last:
            for path in now.keys() | seen.last.keys():
                prev = self._paths.get(path)
                if prev is not None:
                    prev.repeats += 1
                    prev.changes += now.get(path) != seen.last.get(path)
        seen.last = now

    def summary(self) -> Summary:
        paths = []
        for segments, a in sorted(self._paths.items()):
            n = sum(a.types.values())
            objects, arrays = a.types["object"], a.types["array"]
            paths.append(PathSummary(
                segments, {k: a.types[k] for k in KINDS if a.types[k]}, a.sessions, a.samples,
                a.repeats, a.changes, a.size_max, a.size_total / n if n else 0.0,
                dict(sorted(a.strings.items())), a.negative,
                (a.members_min or 0, a.members_max, a.members_total / objects) if objects
                else None,
                {k: a.member_types[k] for k in KINDS if a.member_types[k]}, a.keyed,
                (a.items_max, a.items_total / arrays) if arrays else None,
                a.unsorted, a.duplicates))
        return Summary(self.samples, self.sessions, tuple(paths), self.first_at, self.last_at,
                       self.not_objects, self.untracked)

    # ------------------------------------------------------------ the walk
    def _session(self, key: bytes) -> _Seen:
        seen = self._seen.get(key)
        if seen is None:
            seen = self._seen[key] = _Seen({}, set())
            self.sessions += 1
            if len(self._seen) > self._max_sessions:
                self._seen.popitem(last=False)
        self._seen.move_to_end(key)
        return seen

    def _acc(self, path: Path) -> _Acc | None:
        acc = self._paths.get(path)
        if acc is None and len(self._paths) < self._max_paths:
            acc = self._paths[path] = _Acc()
        return acc

    def _digest(self, data: bytes) -> bytes:
        return hashlib.blake2b(data, key=self._key, digest_size=8).digest()

    def _walk(self, value: Any, path: Path, found: dict[Path, list[bytes]],
              depth: int) -> tuple[int, bytes]:
        """Measure ``value`` at ``path`` (and below); returns its size and digest."""
        acc = self._acc(path)
        k = kind(value)
        if acc is None:
            self.untracked += 1
            return self._whole(value)
        if k == "object" and depth < MAX_DEPTH:
            size, digest = self._object(value, path, acc, found, depth)
        elif k == "array" and depth < MAX_DEPTH:
            size, digest = self._array(value, path, acc, found, depth)
        else:
            size, digest = self._whole(value)
            if k == "string":
                acc.strings[like(value)] += 1
            elif k == "integer" and value < 0:
                acc.negative += 1
        acc.types[k] += 1
        acc.size_max = max(acc.size_max, size)
        acc.size_total += size
        found.setdefault(path, []).append(digest)
        return size, digest

    def _object(self, value: dict[str, Any], path: Path, acc: _Acc,
                found: dict[Path, list[bytes]], depth: int) -> tuple[int, bytes]:
        h = hashlib.blake2b(b"{", key=self._key, digest_size=8)
        size = 2 + max(len(value) - 1, 0)
        for name in sorted(value):  # member order is no change
            child = value[name]
            acc.member_types[kind(child)] += 1
            s, d = self._walk(child, (*path, self._segment(acc, name)), found, depth + 1)
            encoded = _encode(name)
            size += len(encoded) + 1 + s
            h.update(encoded + d)
        n = len(value)
        acc.members_min = n if acc.members_min is None else min(acc.members_min, n)
        acc.members_max = max(acc.members_max, n)
        acc.members_total += n
        return size, h.digest()

    def _array(self, value: list[Any], path: Path, acc: _Acc,
               found: dict[Path, list[bytes]], depth: int) -> tuple[int, bytes]:
        h = hashlib.blake2b(b"[", key=self._key, digest_size=8)
        size = 2 + max(len(value) - 1, 0)
        digests = []
        for item in value:
            s, d = self._walk(item, (*path, ANY), found, depth + 1)
            size += s
            h.update(d)
            digests.append(d)
        acc.items_max = max(acc.items_max, len(value))
        acc.items_total += len(value)
        kinds = {kind(i) for i in value}
        if kinds in ({"string"}, {"integer"}, {"number"}, {"integer", "number"}):
            if any(a > b for a, b in itertools.pairwise(value)):
                acc.unsorted += 1
        if len(set(digests)) < len(digests):
            acc.duplicates += 1
        return size, h.digest()

    def _segment(self, acc: _Acc, name: str) -> str:
        if name in acc.names:
            return name
        if len(acc.names) < MAX_NAMES and nameable(name):
            acc.names[name] = None
            return name
        acc.keyed += 1
        return ANY

    def _whole(self, value: Any) -> tuple[int, bytes]:
        encoded = _encode(value)
        return len(encoded), self._digest(kind(value).encode() + b":" + encoded)


def _encode(value: Any) -> bytes:
    """Compact UTF-8 JSON (a lone surrogate as JSON allows it)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True,
                      allow_nan=True).encode("utf-8", "surrogatepass")
