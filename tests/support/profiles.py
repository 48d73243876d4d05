"""Session profiles the tests run with: the demo shop's (from config.yaml, the one
users see) and, for the second monolith (tests/apps/notes), one of another shape."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from adapters.profile import SessionProfile, build

_ROOT = Path(__file__).resolve().parents[2]
_SHOP: dict[str, Any] = yaml.safe_load((_ROOT / "config.yaml").read_text())["session"]


def shop_session() -> dict[str, Any]:
    """The demo shop's ``session:`` block, exactly as config.yaml states it."""
    return copy.deepcopy(_SHOP)


def shop_profile() -> SessionProfile:
    return build(shop_session())
