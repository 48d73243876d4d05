"""Legacy's answer against new's: status, chosen headers, JSON bodies -- minus noise.

Pure: no I/O, no clock, no randomness. ``diff(legacy, new, rules, noise)``
walks both answers and returns what differs, after the filters:

- **ignore paths** (configured): JSON-pointer patterns, ``*`` one segment (or
  part of one: ``*_at``), ``**`` any number of segments. A pattern covers the
  subtree below what it matches: ``/meta`` ignores ``/meta/build`` too.
- **ignore headers** (configured) win over **compare headers** (configured
  names, or ``*``: every header but those that differ by nature -- ``Date``,
  ``X-Request-Id``, framing and internal headers). ``Set-Cookie`` is compared
  by cookie *names*; its values are never read.
- **noise** (learned, Diffy-style, by the caller): *shapes* seen differing
  between two legacy answers to the same request.

Where a difference is:

- ``status``; ``header:<lower-case name>``; ``body`` (the bodies as a whole,
  when either side is not JSON);
- a JSON pointer (RFC 6901) into the body: ``/items/0/qty``. Its *shape* has
  array indices replaced by ``*`` (``/items/*/qty``): noise is learned and
  differences are counted by shape, so a timestamp in every order of a list is
  one noise path, not one per index.

Values are kept short (``MAX_VALUE_CHARS``) and values under keys that look
like secrets (``token``, ``password``, ``session``...) are never shown.
"""

from __future__ import annotations

import hashlib
import json
import re
import zlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from multidict import MultiMapping

from adapters.wire import INTERNAL_HEADERS

Kind = Literal["value", "type", "missing", "added", "length", "status", "header", "body"]
"""``missing``: only legacy has it; ``added``: only new has it."""

MAX_DIFFERENCES = 100
"""A comparison stops collecting here (``Diff.truncated``): one broken answer is enough."""
MAX_VALUE_CHARS = 60
MAX_DEPTH = 64
"""Below this depth, subtrees are compared whole (one difference), not walked."""
MAX_DECODED_BYTES = 4 * 1024 * 1024
"""A compressed body is inflated for comparison up to this size, no further."""

NEVER_COMPARED = frozenset({
    "date", "x-request-id", "age", "expires", "last-modified", "server", "via",
    "content-length", "content-encoding", "transfer-encoding", "connection", "keep-alive",
})
"""Headers that differ by nature or say how bytes were framed, not what was answered."""
REFUSED_COMPARE = frozenset({"date", "x-request-id"})
"""Naming these in ``compare_headers`` is a config error: they differ on every response."""
_SENSITIVE = re.compile(r"token|secret|passw|session|cookie|authoriz|api.?key|jwt|csrf", re.I)
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")


# ---------------------------------------------------------------- what is compared
@dataclass(frozen=True, slots=True)
class Answer:
    """One backend's response, body read whole."""

    status: int
    headers: Mapping[str, str]
    """A plain mapping (lower-case keys) or a case-insensitive multidict."""
    body: bytes


@dataclass(frozen=True, slots=True)
class Difference:
    path: str
    shape: str
    kind: Kind
    legacy: str | None = None
    """Short, redacted; None where legacy has nothing."""
    new: str | None = None

    def __str__(self) -> str:
        where = self.path or "(root)"
        if self.kind == "missing":
            return f"{where}: only in legacy ({self.legacy})"
        if self.kind == "added":
            return f"{where}: only in new ({self.new})"
        if self.kind == "length":
            return f"{where}: length {self.legacy} != {self.new}"
        return f"{where}: {self.legacy} != {self.new}"

    def to_dict(self) -> dict[str, str | None]:
        return {"path": self.path, "shape": self.shape, "kind": self.kind,
                "legacy": self.legacy, "new": self.new, "text": str(self)}


@dataclass(frozen=True, slots=True)
class Diff:
    differences: tuple[Difference, ...]
    truncated: bool = False

    @property
    def same(self) -> bool:
        return not self.differences

    @property
    def shapes(self) -> frozenset[str]:
        return frozenset(d.shape for d in self.differences)


# ---------------------------------------------------------------- path patterns
def pattern_problem(pattern: str) -> str | None:
    """Why ``pattern`` is not a valid ignore path, or None."""
    if not pattern.startswith("/"):
        return "an ignore path is a JSON pointer pattern starting with '/'"
    for seg in pattern.split("/")[1:]:
        if "**" in seg and seg != "**":
            return "'**' must be a whole segment ('/**/id', not '/a**')"
    if len(pattern) > 512:
        return "longer than 512 characters"
    return None


class PathFilter:
    """Ignore patterns, matched segment by segment (no regex backtracking across '/')."""

    def __init__(self, patterns: Collection[str]) -> None:
        for p in patterns:
            problem = pattern_problem(p)
            if problem:
                raise ValueError(f"{p!r}: {problem}")
        self.patterns = tuple(patterns)
        self._compiled = tuple(tuple(_segment(s) for s in p.split("/")[1:]) for p in patterns)
        self._cache: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return bool(self._compiled)

    def matches(self, path: str) -> bool:
        """True if ``path`` (a JSON pointer) is at or below something a pattern names."""
        if not self._compiled or not path.startswith("/"):
            return False
        hit = self._cache.get(path)
        if hit is None:
            segs = path.split("/")[1:]
            hit = any(_covers(p, segs) for p in self._compiled)
            if len(self._cache) < 4096:
                self._cache[path] = hit
        return hit


_ANY_DEPTH = None


def _segment(seg: str) -> re.Pattern[str] | None:
    if seg == "**":
        return _ANY_DEPTH
    parts = [re.escape(piece) for piece in seg.split("*")]
    return re.compile("[^/]*".join(parts))


def _covers(pattern: tuple[re.Pattern[str] | None, ...], segs: list[str]) -> bool:
    """Does the pattern match some prefix of ``segs`` (that prefix's subtree is covered)?"""
    states = {0}  # positions in segs reachable after matching pattern[:i]
    for part in pattern:
        if part is _ANY_DEPTH:
            states = set(range(min(states), len(segs) + 1)) if states else set()
        else:
            states = {j + 1 for j in states if j < len(segs) and part.fullmatch(segs[j])}
        if not states:
            return False
    return True


# ---------------------------------------------------------------- rules
@dataclass(frozen=True)
class Rules:
    """What one route compares. Build with ``Rules.build``."""

    compare_headers: frozenset[str] | None = frozenset({"content-type"})
    """Lower-case names; None: every header but ``NEVER_COMPARED`` and internal ones."""
    ignore_headers: frozenset[str] = frozenset()
    ignore: PathFilter = field(default_factory=lambda: PathFilter(()))

    @classmethod
    def build(cls, *, compare_headers: Collection[str] = ("Content-Type",),
              ignore_headers: Collection[str] = (), ignore_paths: Collection[str] = ()
              ) -> Rules:
        names = {h.lower() for h in compare_headers}
        for h in (*compare_headers, *ignore_headers):
            if h != "*" and not _HEADER_NAME.match(h):
                raise ValueError(f"{h!r} is not a header name")
        return cls(None if "*" in names else frozenset(names - REFUSED_COMPARE),
                   frozenset(h.lower() for h in ignore_headers), PathFilter(ignore_paths))

    def header_names(self, legacy: Answer, new: Answer) -> list[str]:
        if self.compare_headers is not None:
            names = sorted(self.compare_headers - self.ignore_headers)
        else:
            seen = {k.lower() for k in legacy.headers} | {k.lower() for k in new.headers}
            names = sorted(n for n in seen if n not in NEVER_COMPARED
                           and n not in INTERNAL_HEADERS and n not in self.ignore_headers
                           and not n.startswith("x-strangler-"))
        return names


# ---------------------------------------------------------------- the comparison
def diff(legacy: Answer, new: Answer, rules: Rules,
         noise: Collection[str] = frozenset()) -> Diff:
    """Every difference between the two answers that no rule or noise shape explains."""
    out = _Collector(rules.ignore, noise)
    if legacy.status != new.status:
        out.add(Difference("status", "status", "status", str(legacy.status), str(new.status)))
    for name in rules.header_names(legacy, new):
        key = f"header:{name}"
        a, b = _header(legacy.headers, name), _header(new.headers, name)
        if a != b and key not in noise:
            out.add(Difference(key, key, "header", a, b))
    _bodies(legacy, new, out)
    return Diff(tuple(out.found), out.truncated)


class _Collector:
    def __init__(self, ignore: PathFilter, noise: Collection[str]) -> None:
        self.ignore = ignore
        self.noise = noise
        self.found: list[Difference] = []
        self.truncated = False

    def skip(self, path: str, shape: str) -> bool:
        return shape in self.noise or (bool(self.ignore) and self.ignore.matches(path))

    def add(self, d: Difference) -> None:
        if len(self.found) >= MAX_DIFFERENCES:
            self.truncated = True
        else:
            self.found.append(d)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    values = _getall(headers, name)
    if not values:
        return None
    if name == "set-cookie":  # names only: a cookie's value is a secret
        return ", ".join(sorted({v.split("=", 1)[0].strip() for v in values}))
    joined = ", ".join(" ".join(v.split()) for v in values)
    if name == "content-type":
        joined = joined.lower().replace("; ", ";")
    return _clip(joined)


def _getall(headers: Mapping[str, str], name: str) -> list[str]:
    if isinstance(headers, MultiMapping):
        return list(headers.getall(name, ()))
    return [v for k, v in headers.items() if k.lower() == name]


_NOT_JSON = object()


def _bodies(legacy: Answer, new: Answer, out: _Collector) -> None:
    raw_a, raw_b = _decoded(legacy), _decoded(new)
    if raw_a == raw_b:
        return
    a, b = _parse(raw_a), _parse(raw_b)
    if a is _NOT_JSON or b is _NOT_JSON:
        if "body" not in out.noise:
            out.add(Difference("body", "body", "body", _describe_raw(raw_a, a),
                               _describe_raw(raw_b, b)))
        return
    _walk(a, b, "", "", False, out, 0)


def _decoded(answer: Answer) -> bytes | None:
    """The body with gzip/deflate undone (bounded); None if it cannot be decoded."""
    encoding = (_header(answer.headers, "content-encoding") or "identity").lower()
    if encoding in ("identity", ""):
        return answer.body
    if encoding not in ("gzip", "x-gzip", "deflate"):
        return None
    wbits = 16 + zlib.MAX_WBITS if "gzip" in encoding else zlib.MAX_WBITS
    try:
        inflater = zlib.decompressobj(wbits)
        data = inflater.decompress(answer.body, MAX_DECODED_BYTES)
    except zlib.error:
        return None
    return None if inflater.unconsumed_tail else data


def _parse(raw: bytes | None) -> Any:
    if not raw:
        return _NOT_JSON
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return _NOT_JSON


def _describe_raw(raw: bytes | None, parsed: Any) -> str:
    if raw is None:
        return "undecodable body"
    if parsed is not _NOT_JSON:
        return f"JSON {_kind(parsed)}"
    if not raw:
        return "empty"
    return f"non-JSON, {len(raw)} bytes, sha256 {hashlib.sha256(raw).hexdigest()[:12]}"


def _walk(a: Any, b: Any, path: str, shape: str, secret: bool, out: _Collector,
          depth: int) -> None:
    if out.truncated or out.skip(path, shape):
        return
    ka, kb = _kind(a), _kind(b)
    if ka != kb:
        out.add(Difference(path, shape, "type", f"{ka} {_show(a, secret)}",
                           f"{kb} {_show(b, secret)}"))
    elif ka in ("object", "array") and depth >= MAX_DEPTH:
        try:
            same = a == b
        except RecursionError:
            same = False
        if not same:
            out.add(Difference(path, shape, "value", _show(a, secret), _show(b, secret)))
    elif ka == "object":
        _objects(a, b, path, shape, secret, out, depth + 1)
    elif ka == "array":
        if len(a) != len(b):
            out.add(Difference(path, shape, "length", str(len(a)), str(len(b))))
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            _walk(x, y, f"{path}/{i}", f"{shape}/*", secret, out, depth + 1)
    elif a != b:
        out.add(Difference(path, shape, "value", _show(a, secret), _show(b, secret)))


def _objects(a: dict[str, Any], b: dict[str, Any], path: str, shape: str, secret: bool,
             out: _Collector, depth: int) -> None:
    for key, x in a.items():
        token = _escape(key)
        hidden = secret or bool(_SENSITIVE.search(key))
        p, s = f"{path}/{token}", f"{shape}/{token}"
        if key in b:
            _walk(x, b[key], p, s, hidden, out, depth)
        elif not out.skip(p, s):
            out.add(Difference(p, s, "missing", _show(x, hidden), None))
    for key, y in b.items():
        if key not in a:
            token = _escape(key)
            p, s = f"{path}/{token}", f"{shape}/{token}"
            if not out.skip(p, s):
                hidden = secret or bool(_SENSITIVE.search(key))
                out.add(Difference(p, s, "added", None, _show(y, hidden)))


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _show(value: Any, secret: bool) -> str:
    if secret:
        return "<redacted>"
    if isinstance(value, dict):
        return f"{{{len(value)} keys}}"
    if isinstance(value, list):
        return f"[{len(value)} items]"
    return _clip(json.dumps(value, ensure_ascii=False))


def _clip(text: str) -> str:
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


__all__ = ["Answer", "Diff", "Difference", "PathFilter", "Rules", "diff", "pattern_problem"]
