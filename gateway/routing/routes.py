"""Route matching on the canonical path.

A route owns exact paths (``/api/cart``) and prefixes (``/api/cart/*``: the
path itself and anything below it). The most specific pattern wins whatever
the order in config.yaml: an exact path beats any prefix, a longer prefix
beats a shorter one. Like Starlette, a match is NONE, PARTIAL (path matched,
method did not: 405) or FULL. The router also holds the blocked paths
(``gateway.edge.blocked``), checked before any route by the pipeline and explain alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from gateway.edge.blocked import Blocklist
from gateway.settings import Breaker, Fallback, RetryBudget, RouteSection


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    methods: frozenset[str] | None
    legacy_only: bool
    fallback: Fallback
    breaker: Breaker
    retry_budget: RetryBudget
    pin: bool = False
    audience: str | None = None
    """The ``aud`` of tokens sent with this route's requests (None: ``tokens.audience``)."""
    guests: bool = False

    @classmethod
    def from_config(cls, section: RouteSection) -> Route:
        methods = None
        if section.methods is not None:
            methods = frozenset(section.methods)
            if "GET" in methods:
                methods |= {"HEAD"}
        return cls(section.name, methods, section.legacy_only, section.fallback, section.breaker,
                   section.retry_budget, section.pin, section.service, section.guests)


class Match(Enum):
    NONE = 0
    PARTIAL = 1
    FULL = 2


@dataclass(frozen=True, slots=True)
class RouteMatch:
    match: Match
    route: Route | None = None


_NO_MATCH = RouteMatch(Match.NONE)


class Router:
    """Built once per config; ``match`` is a dict lookup plus a short prefix scan."""

    def __init__(self, sections: tuple[RouteSection, ...],
                 blocked: Blocklist | None = None) -> None:
        self.blocked = blocked or Blocklist()
        """Paths never forwarded, whatever route would match them."""
        self.routes = {s.name: Route.from_config(s) for s in sections}
        self._exact: dict[str, Route] = {}
        prefixes: list[tuple[str, Route]] = []
        for s in sections:
            route = self.routes[s.name]
            for p in s.paths:
                if p.endswith("/*"):
                    base = p[:-2]
                    prefixes.append((base + "/", route))
                    self._exact.setdefault(base or "/", route)
                else:
                    self._exact[p] = route
        # longest prefix first, so the most specific wins
        self._prefixes = tuple(sorted(prefixes, key=lambda pr: len(pr[0]), reverse=True))
        self._full: dict[tuple[str, str], RouteMatch] = {}

    def match(self, path: str, method: str) -> RouteMatch:
        route = self._exact.get(path)
        if route is None:
            for prefix, candidate in self._prefixes:
                if path.startswith(prefix):
                    route = candidate
                    break
            else:
                return _NO_MATCH
        if route.methods is not None and method not in route.methods:
            return RouteMatch(Match.PARTIAL, route)
        key = (route.name, method)
        found = self._full.get(key)
        if found is None:
            found = self._full[key] = RouteMatch(Match.FULL, route)
        return found
