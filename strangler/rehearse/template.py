"""Expressions and templates of a plan: how a step reads the response and the user's model.

Expressions are JMESPath (https://jmespath.org), evaluated against the step's
context::

    {"user": {"n": 3, "username": "alice"}, "run": {"id": "1f2e3d4c"},
     "model": {...the user's model...}, "vars": {...the step's vars...},
     "response": <JSON body, once answered>, "status": 200}

with four functions added for virtual users: ``choice(array)`` (a random
element, ``null`` for an empty array), ``random_int(lo, hi)`` (inclusive),
``uuid()`` (a random UUID, from the user's seeded generator) and
``to_object(pairs)`` (``[[k, v], ...]`` to an object with text keys, which
JMESPath cannot build otherwise).

A template is a string with ``{expression}`` placeholders (``{{`` and ``}}``
for literal braces; an expression inside a template holds no braces). A
string that is one placeholder alone keeps the value's type (``"{vars.qty}"``
is the number 3); otherwise values are joined as text. Bodies are templates
all the way down: every string of a mapping or list is rendered.
"""

from __future__ import annotations

import json
import random
import re
import uuid
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import jmespath
from jmespath import functions
from jmespath.exceptions import JMESPathError

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")


class ExpressionError(ValueError):
    """An expression or template that does not parse; the message says where."""


class _Functions(functions.Functions):
    def __init__(self, rng: random.Random) -> None:
        super().__init__()
        self.rng = rng

    @functions.signature({"types": ["array"]})
    def _func_choice(self, items: list[Any]) -> Any:
        return self.rng.choice(items) if items else None

    @functions.signature({"types": ["number"]}, {"types": ["number"]})
    def _func_random_int(self, lo: float, hi: float) -> int:
        return self.rng.randint(int(lo), int(hi))

    @functions.signature()
    def _func_uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    @functions.signature({"types": ["array"]})
    def _func_to_object(self, pairs: list[Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for pair in pairs:
            if not isinstance(pair, list) or len(pair) != 2:
                raise ValueError(f"to_object: {pair!r} is not a [key, value] pair")
            out[text(pair[0])] = pair[1]
        return out


class Evaluator:
    """Evaluates expressions and renders templates for one virtual user (its own random)."""

    def __init__(self, rng: random.Random) -> None:
        self.options = jmespath.Options(custom_functions=_Functions(rng))

    def search(self, expression: str, context: Any) -> Any:
        try:
            return compiled(expression).search(context, options=self.options)
        except (JMESPathError, ValueError) as exc:
            raise ExpressionError(f"{expression!r}: {exc}") from None

    def truthy(self, expression: str, context: Any) -> bool:
        value = self.search(expression, context)
        return value not in (None, False, "", [], {})

    def render(self, template: Any, context: Any) -> Any:
        if isinstance(template, str):
            whole = _PLACEHOLDER.fullmatch(template)
            if whole is not None and whole[1] is not None:
                return self.search(whole[1], context)
            return _PLACEHOLDER.sub(lambda m: self._piece(m, context), template)
        if isinstance(template, dict):
            return {self.render(k, context) if isinstance(k, str) else k:
                    self.render(v, context) for k, v in template.items()}
        if isinstance(template, list):
            return [self.render(v, context) for v in template]
        return template

    def _piece(self, m: re.Match[str], context: Any) -> str:
        if m[0] in ("{{", "}}"):
            return m[0][0]
        return text(self.search(m[1], context))


@lru_cache(maxsize=1024)
def compiled(expression: str) -> Any:
    try:
        return jmespath.compile(expression)
    except JMESPathError as exc:
        raise ExpressionError(f"{expression!r} is not a JMESPath expression: "
                              f"{str(exc).splitlines()[0]}") from None


def text(value: Any) -> str:
    """A value as it goes into a path or a header: text as is, null as '', else JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, separators=(",", ":"))


def placeholders(template: Any) -> Iterator[str]:
    """Every expression a template holds (to validate them when the plan is read)."""
    if isinstance(template, str):
        for m in _PLACEHOLDER.finditer(template):
            if m[1] is not None:
                yield m[1]
        rest = _PLACEHOLDER.sub("", template)
        if "{" in rest or "}" in rest:
            raise ExpressionError(f"{template!r}: an unmatched brace (write {{{{ or }}}} for a "
                                  "literal one)")
    elif isinstance(template, dict):
        for k, v in template.items():
            yield from placeholders(k)
            yield from placeholders(v)
    elif isinstance(template, list):
        for v in template:
            yield from placeholders(v)


def check_template(template: Any) -> None:
    """Raise ExpressionError for a template with an expression that does not parse."""
    for expression in placeholders(template):
        if not expression.strip():
            raise ExpressionError(f"{template!r}: an empty placeholder {{}}")
        compiled(expression)
