"""The proposed ``session:`` block as YAML with comments (PyYAML writes no comments).

Every string is written plain only when YAML cannot read it as anything else,
and double-quoted (JSON escapes, which YAML reads alike) otherwise; comment
lines hold key names and figures, never a value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from adapters.discovery.summary import PathSummary, Summary

if TYPE_CHECKING:
    from adapters.discovery.propose import Guess

COOKIE_PLACEHOLDER: Final = "<EDIT: the session cookie's name>"
DUPLICATES_PLACEHOLDER: Final = "<EDIT: first | last | reject>"
_PLAIN = re.compile(r"/[A-Za-z0-9_./~-]*|[A-Za-z_][A-Za-z0-9_-]*")
_WORDS = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null", "none"})
_UNREADABLE = re.compile("[\x7f-\x84\x86-\x9f\ud800-\udfff\ufffe\uffff]")
"""Characters YAML will not read raw, even inside double quotes."""


def render(session: Mapping[str, Any], guesses: Sequence[Guess], summary: Summary, *,
           cookie: bool, duplicates: bool, headers: bool, note: str | None = None) -> str:
    """``cookie`` / ``duplicates`` / ``headers``: given, rather than placeholders or defaults."""
    out = [f"# Proposed by Strangler's session discovery from {summary.samples} samples of "
           f"{summary.sessions} sessions ({when(summary.first_at)} .. {when(summary.last_at)}).",
           "# A guess from shapes and counts (no value was kept): check every line, then",
           "# paste it into config.yaml and run `strangler check-config`."]
    if note:
        out.append(f"# {_line(note)}")
    if not (cookie and duplicates):
        out.append("# Fill in the lines marked EDIT: a session does not tell its cookie.")
    out.append("session:")
    out.append(f"  cookie: {quote(session['cookie'])}"
               + ("" if cookie else "  # EDIT: the monolith's session cookie"))
    out.append(f"  duplicate_cookies: {quote(session['duplicate_cookies'])}"
               + ("" if duplicates else "  # EDIT: which of two such cookies your framework "
                                        "reads (aiohttp, Django: last)"))
    out.append("  headers:" + ("" if headers else "  # CHECK: the session headers your monolith "
                               "adds to each response (docs/protocol.md section 4)"))
    out += [f"    {k}: {quote(v)}" for k, v in session["headers"].items()]
    out.append("  identity:")
    for g in guesses:
        if g.decision in ("user_id", "name"):
            out += [f"    # {_line(w)}" for w in g.why]
            out.append(f"    {g.decision}: {_flow(session['identity'][g.decision])}")
    fields = session["fields"]
    out.append("  fields:" + ("" if fields else " {}"))
    for g in guesses:
        if g.decision == "field" and g.name is not None:
            out += [f"    # {_line(w)}" for w in g.why]
            out.append(f"    {quote(g.name)}:")
            out += [f"      {k}: {_value(v)}" for k, v in fields[g.name].items()]
    out.append(f"  undeclared: {session['undeclared']}  # any other key merges key by key, the "
               "latest write winning (or legacy_wins / new_wins)")
    left = [g for g in guesses if g.decision == "undeclared"]
    if left:
        out.append("  # Left undeclared, carried as they are (declare one under fields if new "
                   "services need it):")
        for g in left:
            out.append(f"  #   {_line(g.why[0])}")
            out += [f"  #     {_line(w)}" for w in g.why[1:]]
    return "\n".join(out) + "\n"


def figures(p: PathSummary, total: int) -> str:
    """The figures of one path on one line (a comment): key names and counts only."""
    types = ", ".join(f"{k} {v}" if len(p.types) > 1 else k for k, v in p.types.items())
    text = (f"{p.path}: {types}; in {p.sessions} of {total} sessions "
            f"({100 * p.sessions / total:.0f}%); changed in {p.changes} of {p.repeats} "
            f"repeat samples; size max {p.size_max} B, avg {p.size_avg:.0f} B")
    if p.strings:
        text += "; strings like " + ", ".join(f"{k} {v}" for k, v in p.strings.items())
    return text


def when(at: float | None) -> str:
    return "?" if at is None else datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def quote(text: str) -> str:
    """A YAML scalar for ``text``: plain when that is safe, else double-quoted."""
    if _PLAIN.fullmatch(text) and text.lower() not in _WORDS:
        return text
    return _UNREADABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(text,
                                                                          ensure_ascii=False))


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return _flow(value)
    return quote(str(value))


def _flow(obj: Mapping[str, Any]) -> str:
    return "{" + ", ".join(f"{k}: {_value(v)}" for k, v in obj.items()) + "}"


def _line(text: str) -> str:
    """One comment line: anything YAML would not read, or a line break, escaped."""
    return _UNREADABLE.sub(lambda m: f"\\u{ord(m.group()):04x}",
                           text.replace("\r", "\\r").replace("\n", "\\n"))
