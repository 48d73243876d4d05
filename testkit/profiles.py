"""Session profiles the tests run with: the demo shop's (from config.yaml, the one
users see) and, for the second monolith (tests/apps/notes), one of another shape."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from adapters.profile import SessionProfile, build

_ROOT = Path(__file__).resolve().parents[1]
_SHOP: dict[str, Any] = yaml.safe_load((_ROOT / "config.yaml").read_text())["session"]


def shop_session() -> dict[str, Any]:
    """The demo shop's ``session:`` block, exactly as config.yaml states it."""
    return copy.deepcopy(_SHOP)


def shop_profile() -> SessionProfile:
    return build(shop_session())


NOTES_SESSION: dict[str, Any] = {
    "cookie": "sessionid",
    "duplicate_cookies": "last",  # the notes app reads the last, as Django does
    "headers": {"session_id": "X-Notes-Session", "revision": "X-Notes-Rev",
                "node": "X-Notes-Node"},
    "identity": {"user_id": {"path": "/_auth_user_id", "type": "string"},
                 "name": {"path": "/_auth_user_name"}},
    "fields": {
        "prefs": {"path": "/prefs", "rule": "map", "value_type": "string"},
        "tags": {"path": "/tags", "rule": "set"},
        "visits": {"path": "/visits", "rule": "counter"},
        "draft": {"path": "/draft", "rule": "lww", "type": "string", "nullable": True},
    },
    "undeclared": "lww",
}
"""The second monolith's profile (tests/apps/notes): string user ids, a map, a set, a
counter, an lww string, and undeclared keys (_csrf, created_at, history, flash)."""


def notes_session() -> dict[str, Any]:
    return copy.deepcopy(NOTES_SESSION)


def notes_profile() -> SessionProfile:
    return build(notes_session())
