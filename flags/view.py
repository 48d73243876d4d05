"""A flag state made ready for the hot path, evaluated with the Unleash SDK."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from UnleashClient import UnleashClient  # type: ignore[attr-defined]
from UnleashClient.cache import BaseCache
from UnleashClient.constants import FEATURES_URL
from UnleashClient.utils import InstanceAllowType

from flags.features import definitions, feature_name
from flags.model import FlagState, RouteFlag, Stage

_CANARY_CACHE_MAX = 100_000


class _BootstrapCache(BaseCache):
    """An in-memory cache holding one feature document; the SDK bootstraps from it."""

    def __init__(self, document: dict[str, Any]) -> None:
        self._data: dict[str, Any] = {FEATURES_URL: json.dumps(document)}
        self.bootstrapped = True

    def set(self, key: str, value: Any) -> None:
        self._data[key] = value

    def mset(self, data: dict[str, Any]) -> None:
        self._data.update(data)

    def get(self, key: str, default: Any | None = None) -> Any:
        return self._data.get(key, default)

    def exists(self, key: str) -> bool:
        return key in self._data

    def destroy(self) -> None:
        self._data.clear()


class FlagView:
    """Immutable answers for one ``FlagState``.

    A new view is built on every flag change (a few ms: one SDK client
    bootstrapped from the feature document); the hot path then asks
    ``on_new(route, key)``. Only a canary route depends on the session, and
    its SDK answer is memoised per session for the life of the view, so a
    session costs one SDK evaluation per route per flag change.

    ``client``: an SDK client that already holds the definitions of ``state``
    (the Unleash-server provider's registered client, so evaluations count in
    its usage metrics) instead of one bootstrapped here.
    """

    on_evaluation: Callable[[str, bool], None] | None = None
    """Told of every SDK evaluation the memo could not answer (route, in the canary);
    the gateway counts them."""

    def __init__(self, state: FlagState, app_name: str = "strangler-gateway", *,
                 client: UnleashClient | None = None) -> None:
        self.state = state
        self._client = client if client is not None else UnleashClient(
            url="http://unleash.invalid/api",  # never contacted: bootstrapped, not initialised
            app_name=app_name,
            instance_id=f"view-{state.version}",
            disable_metrics=True,
            disable_registration=True,
            cache=_BootstrapCache(definitions(state)),
            multiple_instance_mode=InstanceAllowType.SILENTLY_ALLOW,
        )
        self._canary: dict[str, dict[str, bool]] = {
            r: {} for r, f in state.routes.items() if f.stage is Stage.CANARY
        }

    @property
    def kill_switch(self) -> bool:
        return self.state.kill_switch

    def flag(self, route: str) -> RouteFlag | None:
        return self.state.routes.get(route)

    def in_canary(self, route: str, key: str) -> bool:
        """Whether the session ``key`` falls in the canary share of ``route``."""
        memo = self._canary.get(route)
        if memo is None:
            return False
        hit = memo.get(key)
        if hit is None:
            hit = self._client.is_enabled(feature_name(route), {"sessionId": key})
            if len(memo) >= _CANARY_CACHE_MAX:
                memo.clear()
            memo[key] = hit
            if self.on_evaluation is not None:
                self.on_evaluation(route, hit)
        return hit

    def evaluate_uncached(self, route: str, key: str) -> bool:
        """The SDK's answer without the memo (for explain and tests)."""
        return bool(self._client.is_enabled(feature_name(route), {"sessionId": key}))
