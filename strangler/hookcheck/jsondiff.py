"""The values rule 6 sends through a hook, and how what came back is compared.

``ROUNDTRIP_DATA`` is written by hand, not by ``json.dumps``, so the bytes on
the wire mix raw UTF-8 with ``\\u`` escapes (surrogate pairs, U+2028, control
characters) and spell numbers as people do (``1e-7``, ``1E+300``). Python's
``==`` is too kind to compare it (``1 == 1.0 == True``, and ``2**64`` equals its
float), so ``first_difference`` compares types too, and floats by their bits.
"""

from __future__ import annotations

import json
from typing import Any, Final

PREFIX: Final = "hookcheck_"
"""Every key the check puts in a session starts with this: no monolith declares it."""

ROUNDTRIP_DATA: Final = (
    '{"hookcheck_nested": {"a": {"b": {"c": {"d": [1, [2, [3, {"e": "deep", "f": {}}]]]}}}},'
    ' "hookcheck_floats": [0.1, 1e-7, 1E+300, -2.5, 3.141592653589793, 5e-324,'
    ' 1.7976931348623157e308],'
    ' "hookcheck_ints": [0, -1, 9007199254740993, 18446744073709551616,'
    ' -9223372036854775809, 123456789012345678901234567890],'
    ' "hookcheck_text": ["plain", "é日本😀", "\\u00e9\\u65e5\\u672c\\ud83d\\ude00",'
    ' "\\u2028\\u2029", "\\u0000\\u001f\\u007f", "\\"\\\\\\/\\b\\f\\n\\r\\t", ""],'
    ' "hookcheck_\\u043a\\u043b\\u044e\\u0447_ü": "a key spelt with escapes and raw UTF-8",'
    ' "hookcheck_empty": {"object": {}, "array": [], "string": ""},'
    ' "hookcheck_null": null,'
    ' "hookcheck_bools": [true, false],'
    ' "hookcheck_mixed": [null, true, false, 0, -0.5, "", {}, [], [[]], {"x": {"y": null}}]}'
)


def roundtrip_data() -> dict[str, Any]:
    value = json.loads(ROUNDTRIP_DATA)
    assert isinstance(value, dict)
    return value


def canonical(value: Any) -> str:
    """One text per JSON value: sorted keys, ASCII escapes, no spaces."""
    return json.dumps(value, sort_keys=True, ensure_ascii=True, separators=(",", ":"))


def first_difference(sent: Any, got: Any, path: str = "data") -> str | None:
    """Where ``got`` is not the JSON value ``sent`` is, or ``None`` when it is the same."""
    if type(sent) is not type(got):
        return f"{path}: sent {_short(sent)}, got {_short(got)}"
    if isinstance(sent, dict):
        for key in sent:
            if key not in got:
                return f"{_at(path, key)}: missing"
        for key in got:
            if key not in sent:
                return f"{_at(path, key)}: added ({_short(got[key])})"
        for key, value in sent.items():
            if (found := first_difference(value, got[key], _at(path, key))) is not None:
                return found
        return None
    if isinstance(sent, list):
        if len(sent) != len(got):
            return f"{path}: sent {len(sent)} items, got {len(got)}"
        for i, (a, b) in enumerate(zip(sent, got, strict=True)):
            if (found := first_difference(a, b, f"{path}[{i}]")) is not None:
                return found
        return None
    same = sent.hex() == got.hex() if isinstance(sent, float) else sent == got
    return None if same else f"{path}: sent {_short(sent)}, got {_short(got)}"


def kept(sent: dict[str, Any], got: Any) -> str | None:
    """Whether every key of ``sent`` is in ``got`` with the same value; the node may add
    keys of its own. ``None`` when kept, else where the first difference is."""
    if not isinstance(got, dict):
        return f"data: sent an object, got {_short(got)}"
    ours = {k: got[k] for k in sent if k in got}
    if (found := first_difference(sent, ours)) is not None:
        return found
    if canonical(sent) != canonical(ours):
        return "data: the same values, re-serialised differently"
    return None


def own_keys(sent: dict[str, Any], got: Any) -> list[str]:
    """The keys the node added to what it was sent (its own session keys)."""
    return sorted(k for k in got if k not in sent) if isinstance(got, dict) else []


def _at(path: str, key: str) -> str:
    return f"{path}.{key}" if key.isidentifier() and key.isascii() else f"{path}[{_short(key)}]"


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=True) if _dumpable(value) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _dumpable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True
