"""What one virtual user believes: a JSON document (its *model*), and what it is unsure of.

A plan's steps change the model with four operations on a dotted path
(``cart.3``): ``set``, ``add`` (append to a list, or add to a number; a
missing value counts as 0), ``remove`` (delete the key, or with a value, every
equal element of a list) and ``merge`` (update an object).

A request that got no answer (5xx, timeout, reset) may or may not have done
its work. The top-level keys its operations touch become *uncertain*: the
model keeps every value the key may hold (each unanswered operation applied
or not, in order). The next read of that key (an HTTP check, an assertion
with ``model:``) is accepted if it is one of them, and the model adopts it;
anything else is an integrity failure -- the app lost or invented a change.
So a correct gateway yields no failures however many requests fail, and a
broken one is caught.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Literal

Op = Literal["set", "add", "remove", "merge"]
MAX_OUTCOMES = 64
"""Beyond this many possible values a key is accepted as anything once (and adopted)."""
ANYTHING: None = None


class ModelError(ValueError):
    """An operation that does not fit the model (adding to text, merging into a list)."""


@dataclass(frozen=True, slots=True)
class Change:
    """One rendered operation: ``path`` split into keys, ``value`` already evaluated."""

    op: Op
    path: tuple[str, ...]
    value: Any = None
    has_value: bool = True

    def apply(self, doc: dict[str, Any]) -> dict[str, Any]:
        """A copy of ``doc`` with the change made."""
        out = copy.deepcopy(doc)
        parent: Any = out
        for key in self.path[:-1]:
            nxt = parent.get(key)
            if not isinstance(nxt, dict):
                nxt = parent[key] = {}
            parent = nxt
        last = self.path[-1]
        old = parent.get(last)
        if self.op == "set":
            parent[last] = copy.deepcopy(self.value)
        elif self.op == "add":
            parent[last] = _added(old, self.value, self.path)
        elif self.op == "remove":
            if not self.has_value:
                parent.pop(last, None)
            elif isinstance(old, list):
                parent[last] = [v for v in old if v != self.value]
            elif old is not None:
                raise ModelError(f"remove a value from {'.'.join(self.path)}: not a list")
        else:
            if not isinstance(self.value, dict) or not isinstance(old, dict | None):
                raise ModelError(f"merge into {'.'.join(self.path)}: both must be objects")
            parent[last] = {**(old or {}), **copy.deepcopy(self.value)}
        return out


def _added(old: Any, value: Any, path: tuple[str, ...]) -> Any:
    if isinstance(old, list):
        return [*old, copy.deepcopy(value)]
    numbers = (int, float)
    if (old is None or isinstance(old, numbers)) and isinstance(value, numbers) \
            and not isinstance(value, bool) and not isinstance(old, bool):
        return (old or 0) + value
    raise ModelError(f"add {value!r} to {'.'.join(path)} ({old!r}): needs a list, "
                     "or a number and a number")


def split(path: str) -> tuple[str, ...]:
    parts = tuple(path.split("."))
    if not all(parts):
        raise ModelError(f"{path!r}: an empty key in the path")
    return parts


class Model:
    """The user's document and, per uncertain top-level key, every value it may hold."""

    def __init__(self, initial: dict[str, Any]) -> None:
        self.initial = copy.deepcopy(initial)
        self.doc: dict[str, Any] = copy.deepcopy(initial)
        self.doubt: dict[str, list[Any] | None] = {}
        """key -> its possible values (``ANYTHING``: too many to list)."""

    @property
    def uncertain(self) -> set[str]:
        return set(self.doubt)

    def reset(self, keys: tuple[str, ...]) -> None:
        """A new session: these keys back to their initial values, known again."""
        for key in keys:
            self.doc[key] = copy.deepcopy(self.initial.get(key))
            self.doubt.pop(key, None)

    def apply(self, change: Change) -> None:
        """A change the app confirmed (made to every value an uncertain key may hold)."""
        key = change.path[0]
        options = self.doubt.get(key, [])
        if key in self.doubt and options is not ANYTHING:
            self.doubt[key] = _unique([change.apply({key: v})[key] for v in options])
        self.doc = change.apply(self.doc)

    def unknown(self, changes: list[Change]) -> None:
        """Changes of a request that got no answer: made or not, all of them or none."""
        keys = {c.path[0] for c in changes}
        for key in keys:
            if key not in self.doubt:
                self.doubt[key] = [copy.deepcopy(self.doc.get(key))]
        applied = {k: self.doubt[k] for k in keys}
        for key, options in applied.items():
            if options is ANYTHING:
                continue
            after = []
            for value in options:
                doc = {key: value}
                for change in changes:
                    if change.path[0] == key:
                        doc = change.apply(doc)
                after.append(doc[key])
            both = _unique(options + after)
            self.doubt[key] = both if len(both) <= MAX_OUTCOMES else ANYTHING

    def anything(self, key: str) -> None:
        """A value that cannot be known until read (a capture from an answer never seen)."""
        self.doubt[key] = ANYTHING

    def options(self, key: str) -> list[Any] | None:
        """Every value ``key`` may hold (``None``: anything)."""
        if key in self.doubt:
            return self.doubt[key]
        return [self.doc.get(key)]

    def reconcile(self, path: tuple[str, ...], observed: Any) -> bool:
        """Adopt what the app holds at ``path``; False when no possible value explains it."""
        key = path[0]
        options = self.options(key)
        ok = options is ANYTHING or any(_at(v, path[1:]) == observed for v in options)
        if len(path) == 1:
            self.doubt.pop(key, None)
        self.doc = Change("set", path, observed).apply(self.doc)
        return ok

    def expected_text(self, path: tuple[str, ...]) -> str:
        options = self.options(path[0])
        if options is ANYTHING:
            return "anything"
        shown = _unique([_at(v, path[1:]) for v in options])
        text = " or ".join(show(v) for v in shown[:4])
        return text + (" ..." if len(shown) > 4 else "")


def _at(value: Any, rest: tuple[str, ...]) -> Any:
    for key in rest:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _unique(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if v not in out:
            out.append(v)
    return out


def show(value: Any) -> str:
    """Compact JSON-ish text of a model value, for findings."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {show(v)}" for k, v in sorted(value.items())) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(show(v) for v in value) + "]"
    return "null" if value is None else str(value)


def contains(big: Any, small: Any) -> bool:
    """``small`` is part of ``big``: every element of a list, every key of an object."""
    if isinstance(small, list) and isinstance(big, list):
        return all(any(contains(b, s) for b in big) for s in small)
    if isinstance(small, dict) and isinstance(big, dict):
        return all(k in big and big[k] == v for k, v in small.items())
    return bool(big == small)
