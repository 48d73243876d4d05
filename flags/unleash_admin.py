"""The few Unleash Admin API calls that writing route flags needs (Unleash 7.x).

All under ``/api/admin/projects/{project}/features``, with an admin API token
in the ``Authorization`` header (the token as Unleash issued it, no scheme)::

    GET    .../{feature}                                        read one feature
    POST   ...                                                  create a feature
    POST   .../{feature}/environments/{env}/strategies          add a strategy
    PUT    .../{feature}/environments/{env}/strategies/{id}     replace a strategy
    DELETE .../{feature}/environments/{env}/strategies/{id}     remove a strategy
    POST   .../{feature}/environments/{env}/on|off              enable / disable

``UnleashAdmin`` knows nothing of routes: ``flags.unleash_server`` decides
what to write, in an order that never shows a client an in-between state.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import aiohttp

from flags.model import FlagError


class UnleashAdminError(FlagError):
    """The Admin API refused a call or could not be reached; the message says which."""


class UnleashAdmin:
    """An aiohttp client for one project and environment of an Unleash server."""

    def __init__(self, url: str, token: str, *, project: str = "default",
                 environment: str = "development", timeout_s: float = 10.0) -> None:
        self.base = url.rstrip("/").removesuffix("/api")
        self.project = project
        self.environment = environment
        self._headers = {"Authorization": token, "Content-Type": "application/json"}
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> UnleashAdmin:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    # ------------------------------------------------------------ features
    async def feature(self, name: str) -> dict[str, Any] | None:
        """The admin view of a feature (every environment), or None if there is none."""
        status, body = await self._call("GET", self._feature_path(name), ok=(200, 404))
        return body if status == 200 else None

    async def client_feature(self, name: str) -> dict[str, Any] | None:
        """A feature as a client in our environment sees it: name, enabled, strategies."""
        admin = await self.feature(name)
        if admin is None:
            return None
        env = self.env_of(admin)
        return {"name": name, "type": admin.get("type"), "enabled": env.get("enabled"),
                "strategies": [s for s in env.get("strategies", []) if not s.get("disabled")]}

    async def create_feature(self, name: str, kind: str = "release",
                             description: str = "") -> bool:
        """Create ``name`` unless it exists; True if it was created."""
        status, _ = await self._call(
            "POST", self._features_path(),
            {"name": name, "type": kind, "description": description, "impressionData": False},
            ok=(200, 201, 409))
        return status != 409

    def env_of(self, feature: Mapping[str, Any]) -> dict[str, Any]:
        for env in feature.get("environments", []):
            if env.get("name") == self.environment:
                return dict(env)
        raise UnleashAdminError(f"feature {feature.get('name')!r} has no environment "
                                f"{self.environment!r} in project {self.project!r}")

    # ------------------------------------------------------------ strategies
    async def add_strategy(self, name: str, strategy: Mapping[str, Any]) -> dict[str, Any]:
        _, body = await self._call("POST", self._strategies_path(name), dict(strategy))
        return dict(body or {})

    async def replace_strategy(self, name: str, strategy_id: str,
                               strategy: Mapping[str, Any]) -> dict[str, Any]:
        _, body = await self._call("PUT", f"{self._strategies_path(name)}/{quote(strategy_id)}",
                                   dict(strategy))
        return dict(body or {})

    async def delete_strategy(self, name: str, strategy_id: str) -> None:
        await self._call("DELETE", f"{self._strategies_path(name)}/{quote(strategy_id)}",
                         ok=(200, 204, 404))

    async def set_enabled(self, name: str, on: bool) -> None:
        await self._call("POST", f"{self._env_path(name)}/{'on' if on else 'off'}",
                         ok=(200, 202, 204))

    # ------------------------------------------------------------ plumbing
    def _features_path(self) -> str:
        return f"/api/admin/projects/{quote(self.project)}/features"

    def _feature_path(self, name: str) -> str:
        return f"{self._features_path()}/{quote(name)}"

    def _env_path(self, name: str) -> str:
        return f"{self._feature_path(name)}/environments/{quote(self.environment)}"

    def _strategies_path(self, name: str) -> str:
        return f"{self._env_path(name)}/strategies"

    async def _call(self, method: str, path: str, body: Any = None,
                    ok: tuple[int, ...] = (200, 201)) -> tuple[int, Any]:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._http.request(method, self.base + path, json=body,
                                          headers=self._headers) as resp:
                text = await resp.text()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UnleashAdminError(f"Unleash at {self.base} did not answer {method} {path}: "
                                    f"{type(exc).__name__}: {exc}") from exc
        if status not in ok:
            raise UnleashAdminError(f"Unleash refused {method} {path}: {status} {text[:300]}")
        try:
            return status, json.loads(text) if text else None
        except ValueError:
            return status, None
