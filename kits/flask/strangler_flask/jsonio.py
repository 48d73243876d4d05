"""JSON in and out of the hook, exactly: what an import brings is what an export gives back.

In: RFC 8259 only. ``NaN``/``Infinity`` and numbers that overflow a double are
refused (they could not be written back as JSON), bad UTF-8 too, and so is
nesting past ``MAX_DEPTH`` (left to Python, the limit would be wherever the
interpreter's recursion runs out, a little differently in each code path).
Integers stay Python ints, every digit; a float is parsed from its text into
the one double that text names, and written back as the shortest text naming
that same double (``1E+300`` returns as ``1e+300``: the same typed value).

Out: only what JSON can say without a change of type. A session that holds a
tuple, a datetime, bytes or a non-string key cannot be exported as it is: it is
refused (``NotJson``) rather than silently turned into something else.
"""

from __future__ import annotations

import json
import math
from typing import Any, Final

MAX_DEPTH: Final = 100
"""The deepest an import body may nest (its envelope included)."""


class BadJson(ValueError):
    """Bytes that are not one strict JSON value (or nest too deep)."""


class NotJson(ValueError):
    """A session value JSON cannot carry as it is; the message says where."""


def parse(raw: bytes) -> Any:
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant,
                           parse_float=_finite_float)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise BadJson(str(exc) or type(exc).__name__) from exc
    if depth(value) > MAX_DEPTH:
        raise BadJson(f"nested deeper than {MAX_DEPTH} levels")
    return value


def dumps(value: Any) -> str:
    """Strict JSON text: ASCII (a lone surrogate survives as its escape), no NaN."""
    check(value)
    return json.dumps(value, ensure_ascii=True, allow_nan=False)


def depth(value: Any) -> int:
    """How deeply arrays and objects nest in ``value`` (a scalar: 0), without recursing."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else \
            item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children)
    return deepest


_SCALARS: Final = (str, int, bool, type(None))


def check(value: Any) -> None:
    """``NotJson`` unless ``value`` is made of exactly dict/list/str/int/float/bool/None,
    with string keys and finite floats (subclasses are refused: they would lose their type)."""
    stack: list[tuple[Any, str]] = [(value, "data")]
    while stack:
        item, path = stack.pop()
        kind = type(item)
        if kind is dict:
            for key, child in item.items():
                if type(key) is not str:
                    raise NotJson(f"{path}: key {key!r} is not a string")
                stack.append((child, f"{path}[{key!r}]"))
        elif kind is list:
            stack.extend((child, f"{path}[{i}]") for i, child in enumerate(item))
        elif kind is float:
            if not math.isfinite(item):
                raise NotJson(f"{path}: {item!r} is not a JSON number")
        elif kind not in _SCALARS:
            raise NotJson(f"{path}: a {kind.__name__} is not a JSON value")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} overflows a double")
    return value
