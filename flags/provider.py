"""What the gateway needs from a flag provider, whichever system holds the flags.

Two implementations: ``flags.local.LocalProvider`` (config.yaml + Redis) and
``flags.unleash_server.UnleashServerProvider`` (a real Unleash server).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from flags.model import Stage
from flags.store import Change
from flags.view import FlagView


class Provider(Protocol):
    view: FlagView
    """The current flags, ready for the hot path; replaced (never mutated) on a change."""

    healthy: bool
    """False while the flag source is unreachable (the last view keeps serving)."""

    def subscribe(self, listener: Callable[[FlagView], None]) -> None:
        """Call ``listener(view)`` after every change of view."""

    async def start(self) -> None:
        """Load the flags (or a fallback) and start following changes."""

    async def stop(self) -> None:
        """Stop following changes."""

    async def set_route(self, route: str, stage: Stage, percent: int | None, *, actor: str,
                        reason: str = "") -> Change:
        """Move one route; raises ``FlagError`` (or ``UnknownRoute``) for a bad change."""

    async def set_kill(self, on: bool, *, actor: str, reason: str = "") -> Change:
        """Turn the global kill switch on or off."""
