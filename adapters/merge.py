"""Three-way merge rules: legacy's change, made against ``base``, applied to ``current``.

``base`` is what both sides last agreed on (the document as the legacy node
held it when it was last synced); ``legacy`` is the node's copy now;
``current`` is the shared document now (new services may have written it).
``ABSENT`` stands for a field or entry that is not there.

- ``counter``: ``{key: count}``; each side's change is a delta per key, so two
  concurrent "add one" give two; a key at or below zero goes away.
- ``set``: a sorted list; what either side added is in, what either side
  removed is out (an add and a remove of the same item: the add wins).
- ``map``: an object merged entry by entry, each with the map's value rule.
- ``lww``: the side that changed wins; both changed to different values: a
  conflict, and the later write wins.
- ``legacy_wins`` / ``new_wins``: the side that changed wins; both changed:
  the named side wins (a conflict all the same, so it is counted).

A rule never sees a wrong type: the profile checks values before merging.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from adapters.document import same


class _Absent:
    __slots__ = ()

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Final[Any] = _Absent()

RULES: Final = ("counter", "set", "map", "lww", "legacy_wins", "new_wins")
VALUE_RULES: Final = ("counter", "lww", "legacy_wins", "new_wins")
"""Rules a map may give its entries."""


@dataclass(slots=True)
class Outcome:
    """What a merge found besides its result."""

    legacy_later: bool = True
    """Which side's write is the later one when both changed the same value."""
    conflicts: list[str] = field(default_factory=list)
    """Where both sides changed the same value differently (field or ``field[key]``)."""


Rule = Callable[[Any, Any, Any, Outcome, str], Any]


def scalar(rule: str) -> Rule:
    """A rule for one value taken whole (``lww``, ``legacy_wins``, ``new_wins``)."""
    def merge(base: Any, legacy: Any, current: Any, out: Outcome, where: str) -> Any:
        if same(legacy, base):
            return current
        if same(current, base) or same(legacy, current):
            return legacy
        out.conflicts.append(where)
        if rule == "legacy_wins":
            return legacy
        if rule == "new_wins":
            return current
        return legacy if out.legacy_later else current
    return merge


def _count_value(base: Any, legacy: Any, current: Any, out: Outcome, where: str) -> Any:
    """A map entry under ``counter``: deltas on one number."""
    total = _num(current) + _num(legacy) - _num(base)
    return total if total > 0 else ABSENT


def _num(value: Any) -> int:
    return 0 if value is ABSENT else int(value)


def set_rule(base: Any, legacy: Any, current: Any, out: Outcome, where: str) -> Any:
    if legacy is ABSENT and current is ABSENT:
        return ABSENT
    b = _members(base)
    lg = _members(legacy)
    removed = b - lg
    merged = (_members(current) - removed) | (lg - b)
    return sorted(merged, key=_order)


def map_rule(values: str) -> Rule:
    entry = _count_value if values == "counter" else scalar(values)

    def merge(base: Any, legacy: Any, current: Any, out: Outcome, where: str) -> Any:
        if legacy is ABSENT and current is ABSENT:
            return ABSENT
        b, lg, c = _obj(base), _obj(legacy), _obj(current)
        merged: dict[str, Any] = {}
        for key in _keys(c, lg, b):
            value = entry(b.get(key, ABSENT), lg.get(key, ABSENT), c.get(key, ABSENT), out,
                          f"{where}[{key}]")
            if value is not ABSENT:
                merged[key] = value
        return merged
    return merge


counter = map_rule("counter")
"""``{key: count}``: a map whose entries merge as deltas (``_count_value``)."""


def rule_for(name: str, values: str = "lww") -> Rule:
    if name == "counter":
        return counter
    if name == "set":
        return set_rule
    if name == "map":
        return map_rule(values)
    return scalar(name)


def _obj(value: Any) -> dict[str, Any]:
    return {} if value is ABSENT else value


def _keys(*maps: dict[str, Any]) -> list[str]:
    """Every key, in the order the maps give them (current's first)."""
    seen: dict[str, None] = {}
    for m in maps:
        seen.update(dict.fromkeys(m))
    return list(seen)


def _members(value: Any) -> set[Any]:
    return set() if value is ABSENT else set(value)


def _order(item: Any) -> tuple[int, Any]:
    return (0, item) if isinstance(item, int) else (1, item)
