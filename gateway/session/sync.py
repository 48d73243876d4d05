"""What a legacy node's copy of a session means for the shared record: pure logic.

The bridge holds the session's sync lock (fence ``f``), has read the record
and has exported the node's copy with that fence. ``assess`` tells what to
write and whether the node must be sent the current document. No I/O here;
docs/consistency.md states the invariants this keeps:

- the merge base is always what the node held at the revision it is compared
  with: an import the gateway made but never recorded (its holder stalled, its
  answer lost) is recognised by the fence the node reports and the push intent
  the record kept, and never mistaken for a change the monolith made;
- a copy on a node that is not the record's node is never merged: it is stale
  by construction (the record moved away from it, or it is another boot);
- legacy's changes are merged into the current document as deltas against
  that base, so nothing new wrote is overwritten and nothing is applied twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from adapters.document import EMPTY, Document, SessionFormatError
from adapters.profile import Merged

Fields = dict[str, str | int]
Merge = Callable[[Document, Document, Document], Merged]
"""``(base, legacy, current) -> Merged``: the session profile's three-way merge."""


@dataclass(frozen=True, slots=True)
class Intent:
    """A push the gateway is about to make: document ``doc`` (version ``v``) into ``node``."""

    fence: int
    v: int
    node: str
    doc: str

    def to_json(self) -> str:
        return json.dumps({"f": self.fence, "v": self.v, "node": self.node, "doc": self.doc},
                          separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: bytes | str | None) -> Intent | None:
        if not raw:
            return None
        try:
            obj = json.loads(raw)
            return cls(int(obj["f"]), int(obj["v"]), str(obj["node"]), str(obj["doc"]))
        except (ValueError, KeyError, TypeError):
            return None


@dataclass(frozen=True, slots=True)
class Held:
    """The record's sync state: what it believes the node holds."""

    doc: str
    """The shared document now."""
    v: int
    node: str
    """``id@boot`` of the node holding the session ('' = none)."""
    lrev: int
    base: str
    """The document as the node held it at ``lrev``."""
    lv: int
    intent: Intent | None = None


@dataclass(frozen=True, slots=True)
class Copy:
    """A node's export, as a shared document."""

    revision: int
    doc: Document
    imported: tuple[int, int] | None = None
    """(fence, revision) of the last fenced import the node took."""

    @property
    def raw(self) -> str:
        return self.doc.to_json()


@dataclass(frozen=True, slots=True)
class Assessment:
    fields: Fields = field(default_factory=dict)
    """Record fields to write."""
    bump: bool = False
    """The document changes: compare-and-set on ``v`` and bump it."""
    set_lv: bool = False
    """The node holds the document being written (``lv`` := the new ``v``)."""
    node_rev: int = 0
    """The node's revision of the session now; 0 when it holds none."""
    current: bool = False
    """After the write the node holds the record's document: nothing to push."""
    gone: bool = False
    """There is no record and the node does not know the session either."""
    reason: str = ""
    events: tuple[tuple[str, str], ...] = ()
    """(kind, detail) pairs for metrics and the log."""
    conflicts: tuple[str, ...] = ()
    """Where a merge found both sides had changed one value differently."""


def assess(held: Held | None, target: str, same_node: bool, copy: Copy | None,
           merge: Merge) -> Assessment:
    """What the record must become, given the copy exported from node ``target``
    (``id@boot``); ``same_node``: it is the node (and boot) the record names;
    ``merge``: the profile's, with whose write is later already decided."""
    if held is None:
        if copy is None:
            return Assessment(gone=True, reason="unknown")
        raw = copy.raw
        fields: Fields = {"doc": raw, "base": raw, "lrev": copy.revision, "node": target,
                          "pi": ""}
        return Assessment(fields, bump=True, set_lv=True, node_rev=copy.revision, current=True,
                          reason="first_seen", events=(("pull", "first_seen"),))
    if not same_node:
        # Not the record's node (failover, another boot, a session born on new): whatever
        # copy it has is stale. It gets the current document, compared-and-set on its
        # revision so nothing it did meanwhile is overwritten unseen.
        reason = "rehydrate" if held.node else "assign"
        return Assessment(node_rev=copy.revision if copy else 0, reason=reason)
    if copy is None:
        return Assessment(node_rev=0, reason="node_forgot")
    return _same_node(held, target, copy, merge)


def _same_node(held: Held, target: str, copy: Copy, merge: Merge) -> Assessment:
    if not _readable(held.doc):
        # Not a document of ours (an older schema, a broken writer): the node's copy is
        # the only state there is.
        raw = copy.raw
        return Assessment({"doc": raw, "base": raw, "lrev": copy.revision, "node": target,
                           "pi": ""}, bump=True, set_lv=True, node_rev=copy.revision,
                          current=True, reason="unreadable_document",
                          events=(("stale", "unreadable_document"),))
    base, brev, lv = held.base, held.lrev, held.lv
    events: list[tuple[str, str]] = []
    synced: Fields = {}
    imported = copy.imported
    if imported is not None and imported[1] > held.lrev:
        intent = held.intent
        if intent is not None and intent.fence == imported[0]:
            # Our own push landed, unrecorded: its document is the base, not a change.
            base, brev, lv = intent.doc, imported[1], intent.v
            events.append(("stale", "unrecorded_push"))
        else:
            base, brev, lv = copy.raw, copy.revision, -1
            events.append(("stale", "unknown_import"))
        synced = {"base": base, "lrev": brev, "lv": lv, "pi": ""}
    if copy.revision < brev:
        base, brev, lv = copy.raw, copy.revision, -1
        events.append(("stale", "revision_went_back"))
        synced = {"base": base, "lrev": brev, "lv": lv, "pi": ""}
    if copy.revision > brev:
        return _pull(held, target, copy, base, events, merge)
    current = lv == held.v
    if held.intent is not None and "pi" not in synced:
        synced["pi"] = ""  # an intent whose import never landed (the node is fenced now)
    return Assessment(synced, node_rev=copy.revision, current=current,
                      reason="in_sync" if current else "newer_shared", events=tuple(events))


def _pull(held: Held, target: str, copy: Copy, base_raw: str,
          events: list[tuple[str, str]], merge: Merge) -> Assessment:
    """Legacy changed the session since ``base``: merge its change into the document."""
    try:
        base = Document.from_json(base_raw) if base_raw else EMPTY
    except SessionFormatError:
        base = EMPTY
        events.append(("stale", "unreadable_base"))
    result = merge(base, copy.doc, Document.from_json(held.doc))
    merged = result.doc
    in_sync = merged == copy.doc
    if held.lv != held.v:
        events.append(("conflict", "merged"))
    fields: Fields = {"doc": merged.to_json(), "base": copy.raw, "lrev": copy.revision,
                      "node": target, "pi": ""}
    if not in_sync:
        fields["lv"] = -1
    events.append(("pull", "legacy_changed"))
    return Assessment(fields, bump=True, set_lv=in_sync, node_rev=copy.revision,
                      current=in_sync, reason="legacy_changed", events=tuple(events),
                      conflicts=result.conflicts)


def _readable(raw: str) -> bool:
    try:
        Document.from_json(raw)
    except SessionFormatError:
        return False
    return True
