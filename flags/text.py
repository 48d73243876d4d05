"""Free text in the migration ledger: what is accepted, and how it is shown.

The ledger keeps text that people write (a change's reason) next to text the
gateway takes from elsewhere (the actor: an admin token's name, ``cli:<user>``).
Whatever it holds ends up on an operator's terminal (``strangler flags
history``, ``explain``), in the dashboard and in JSON; a reason that carries an
ANSI escape, a newline or a bidi override could forge a row there. So:

- **At input** (the admin API and the CLI, both through ``FlagService``), a
  reason is *refused*, never silently changed: more than ``REASON_MAX``
  characters, or any character of ``REFUSED`` (C0 and C1 controls, DEL,
  line/paragraph separators, bidi embeddings/overrides/isolates/marks,
  surrogates), raises ``TextRefused`` naming the field and the rule.
- **At output**, every printer renders ledger text with ``inert``: each such
  character is written as a visible escape (``\\x1b``, ``\\n``, ``\\u202e``), so
  one ledger row is always one line of plain text. Rows written before the
  input check existed are shown that way too.
- Text a program composes (a rehearsal's rollback reason, which must never be
  refused in the middle of a rollback) goes through ``fit``: refused
  characters become spaces and the end is cut to the limit.

This module imports nothing of ours but ``flags.model``.
"""

from __future__ import annotations

import re

from flags.model import FlagError

REASON_MAX = 500
"""Characters (code points) a ledger reason may hold; the dashboard's input says the same."""

REFUSED = re.compile(
    r"[\x00-\x1f\x7f-\x9f"          # C0 controls (newline, tab, ESC...), DEL, C1 controls
    r"\u061c\u200e\u200f"           # bidi marks: ALM, LRM, RLM
    r"\u2028\u2029"                 # line and paragraph separators
    r"\u202a-\u202e\u2066-\u2069"   # bidi embeddings, overrides, isolates
    r"\ud800-\udfff]"               # lone surrogates: not text, and not storable as UTF-8
)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


class TextRefused(FlagError):
    """Ledger text that breaks the input rule; the message names the field and the rule."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


def check(field: str, text: str, limit: int = REASON_MAX) -> str:
    """``text`` unchanged if it may go into the ledger; ``TextRefused`` otherwise."""
    if len(text) > limit:
        raise TextRefused(field, f"at most {limit} characters (got {len(text)})")
    found = REFUSED.search(text)
    if found:
        raise TextRefused(field, f"control or bidi character {_escape(found)} at position "
                                 f"{found.start()} is not allowed (one line of plain text)")
    return text


def fit(text: str, limit: int = REASON_MAX) -> str:
    """``text`` made acceptable to ``check``: for text a program composes, never for input."""
    text = REFUSED.sub(" ", text)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def inert(text: str) -> str:
    """``text`` as one line that no terminal or browser acts on: each refused character
    as a visible escape. Backslashes are left as they are (a reason may name a path)."""
    return REFUSED.sub(_escape, text)


def _escape(found: re.Match[str]) -> str:
    char = found.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
