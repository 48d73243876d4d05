"""Route: which configured route a canonical path and method belong to."""

from __future__ import annotations

from gateway.errors import MethodNotAllowed, NotFound
from gateway.routing.routes import Match, Route, Router


class RouteStage:
    def __init__(self, router: Router) -> None:
        self._router = router

    def __call__(self, path: str, method: str) -> Route:
        """The route; 405 naming the allowed methods when only the method is wrong, else 404."""
        match = self._router.match(path, method)
        if match.match is Match.FULL and match.route is not None:
            return match.route
        if match.match is Match.PARTIAL and match.route is not None:
            allow = tuple(sorted(match.route.methods or ()))
            raise MethodNotAllowed(f"{method} is not allowed here", allow)
        raise NotFound(f"no route for {path}")
