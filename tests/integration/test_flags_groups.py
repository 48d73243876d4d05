"""Route groups move as one, and put a session on the same side for every member."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from flags import RouteFlag, Stage
from flags.local import LocalProvider
from flags.store import FlagStore
from gateway.settings import ConfigError, parse
from tests.support.stack import Stack

DEFAULTS = {"cart": RouteFlag(Stage.LEGACY), "checkout": RouteFlag(Stage.LEGACY),
            "catalog": RouteFlag(Stage.LEGACY)}
GROUPS = {"cart": "shopping", "checkout": "shopping"}


async def test_flipping_one_member_moves_the_whole_group_in_one_step(
        redis_client: aioredis.Redis, key_prefix: str) -> None:
    store = FlagStore(redis_client, DEFAULTS, prefix=key_prefix, groups=GROUPS)
    change = await store.set_route("cart", Stage.CANARY, 40, actor="t", reason="together")
    assert change.moved == ("cart", "checkout")
    state = await store.load()
    assert state.routes["checkout"].stage is Stage.CANARY
    assert state.routes["checkout"].percent == 40
    assert state.routes["catalog"].stage is Stage.LEGACY
    version_before = state.version
    await store.set_route("checkout", Stage.NEW, None, actor="t")
    state = await store.load()
    assert state.version == version_before + 1, "one version bump for the whole group"
    assert {state.routes[r].stage for r in ("cart", "checkout")} == {Stage.NEW}


async def test_a_session_is_on_the_same_side_for_every_route_of_a_group(
        redis_client: aioredis.Redis, redis_url: str, key_prefix: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    provider = LocalProvider(client, DEFAULTS, prefix=key_prefix, groups=GROUPS)
    try:
        await provider.start()
        await provider.set_route("cart", Stage.CANARY, 50, actor="t")
        view = provider.view
        keys = [uuid.uuid4().hex for _ in range(1000)]
        assert all(view.in_canary("cart", k) == view.in_canary("checkout", k) for k in keys)
        # an ungrouped route at the same percentage buckets differently
        await provider.set_route("catalog", Stage.CANARY, 50, actor="t")
        view = provider.view
        assert any(view.in_canary("cart", k) != view.in_canary("catalog", k) for k in keys)
    finally:
        await provider.stop()
        await client.aclose()


def test_a_config_that_would_split_a_group_is_refused(tmp_path: Path, redis_url: str) -> None:
    config = Stack(tmp_path / "s", redis_url).config()
    by_name = {r["name"]: r for r in config["routes"]}
    by_name["cart"]["group"] = "shopping"
    by_name["checkout"]["group"] = "shopping"
    parse(config)  # both legacy: fine
    by_name["checkout"]["stage"] = "new"
    with pytest.raises(ConfigError) as info:
        parse(config)
    assert "group 'shopping' would be split" in str(info.value)
    assert "routes[3].stage" in str(info.value)
    by_name["checkout"]["stage"] = "legacy"
    by_name["default"]["group"] = "shopping"
    with pytest.raises(ConfigError, match="legacy_only route cannot join a group"):
        parse(config)
