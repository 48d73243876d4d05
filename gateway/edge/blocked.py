"""Paths the gateway never forwards from outside: the backends' internal ones.

``gateway.blocked_paths`` uses the routes' pattern syntax (``/exact``,
``/prefix/*``) on the canonical path, checked before any route. Unset, it is
the session-export hook's namespace (``/_internal/*``, docs/protocol.md
section 4) and the backends' health path (``health.path``): the hook is
guarded by its token, but a health answer names nodes and boot ids. The
gateway's own hook calls and health checks go to each backend directly and
never pass here.

A block is a deny rule, so unlike a route it matches every spelling a backend
may resolve to the same handler: case-insensitively (``/HEALTHZ``), with or
without a trailing slash (``/healthz/``). A route that misses only changes who
serves a request; a block that misses lets it through.
"""

from __future__ import annotations

from adapters.wire import INTERNAL_SESSIONS_PATH
from gateway.settings import Config

HOOK_PATTERN = "/" + INTERNAL_SESSIONS_PATH.split("/")[1] + "/*"
"""``/_internal/*``: where the session-export hook lives, and anything beside it."""


def patterns(cfg: Config) -> tuple[str, ...]:
    """The blocked patterns in force: the configured list, else the hook's and health's."""
    if cfg.gateway.blocked_paths is not None:
        return cfg.gateway.blocked_paths
    return HOOK_PATTERN, cfg.health.path.partition("?")[0] or "/"


def exposed(cfg: Config) -> list[str]:
    """Internal paths a configured ``blocked_paths`` leaves reachable (for a warning)."""
    blocked = Blocklist(patterns(cfg))
    probe = {"the session-export hook": INTERNAL_SESSIONS_PATH.format(sid="x"),
             "health.path": cfg.health.path.partition("?")[0] or "/"}
    return [f"{what} ({path})" for what, path in probe.items() if blocked.match(path) is None]


class Blocklist:
    """Built once per config; ``match`` is a lower-casing, a dict lookup and a prefix scan."""

    def __init__(self, patterns: tuple[str, ...] = ()) -> None:
        self.patterns = patterns
        exact: dict[str, str] = {}
        prefixes: list[tuple[str, str]] = []
        for p in patterns:
            low = p.lower()
            if low.endswith("/*"):
                base = low[:-2]
                prefixes.append((base + "/", p))
                exact.setdefault(base or "/", p)
            else:
                exact.setdefault(low.rstrip("/") or "/", p)
        self._exact = exact
        self._prefixes = tuple(sorted(prefixes, key=lambda pr: len(pr[0]), reverse=True))

    def match(self, path: str) -> str | None:
        """The pattern that blocks canonical ``path``, or None."""
        if not self._exact:
            return None
        low = path.lower()
        hit = self._exact.get(low.rstrip("/") or "/")
        if hit is not None:
            return hit
        for prefix, pattern in self._prefixes:
            if low.startswith(prefix):
                return pattern
        return None
