"""Two real gateway processes following a real Unleash server.

Legacy nodes, new-service instances and two gateways run as processes, with
``flags.provider: unleash``; the session-wide Unleash server holds the flags.
Route names carry a tag of their own, since that server is shared.
"""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.checks import expect
from tests.support.lifecycle import running
from tests.support.net import await_until
from tests.support.shop import Admin, ShopUser, cart_lines
from tests.support.stack import DEFAULT_ROUTES, Stack
from tests.support.unleash import UnleashServer

REFRESH_S = 1
DEADLINE_S = REFRESH_S + 1.0 + 2.0
"""A poll, Unleash's one-second revision tick, and a margin for two busy processes."""


class UnleashStack(Stack):
    """A ``Stack`` whose gateways read their flags from an Unleash server."""

    def __init__(self, workdir: Path, redis_url: str, unleash: UnleashServer,
                 **kwargs: Any) -> None:
        self.unleash = unleash
        super().__init__(workdir, redis_url, **kwargs)

    def config(self) -> dict[str, Any]:
        cfg = super().config()
        cfg["flags"] = {"provider": "unleash", "unleash": {
            "url": self.unleash.url, "refresh_interval_s": REFRESH_S, "metrics_interval_s": 1,
            "snapshot_file": str(self.dir / "unleash-snapshot.json")}}
        return cfg

    @property
    def env(self) -> dict[str, str]:
        return {**super().env, "UNLEASH_CLIENT_TOKEN": self.unleash.client_token,
                "UNLEASH_ADMIN_TOKEN": self.unleash.admin_token}


@pytest.fixture
def ustack(request: pytest.FixtureRequest, tmp_path: Path, redis_url: str,
           unleash_server: UnleashServer) -> Iterator[UnleashStack]:
    tag = uuid.uuid4().hex[:6]
    routes = copy.deepcopy(DEFAULT_ROUTES)
    for r in routes:
        if not r.get("legacy_only"):
            r["name"] = f"{r['name']}-{tag}"
    with running(UnleashStack(tmp_path / "stack", redis_url, unleash_server, gateways=2,
                              routes=routes), request) as s:
        yield s


def _route(stack: UnleashStack, base: str) -> str:
    return next(r["name"] for r in stack.routes if r["name"].startswith(base + "-"))


async def _cart_from(user: ShopUser, backend: str) -> bool:
    return (await user.cart()).backend == backend


async def test_both_gateways_follow_a_flip_made_with_the_cli_and_keep_the_cart(
        ustack: UnleashStack, unleash_server: UnleashServer) -> None:
    cart = _route(ustack, "cart")
    async with ShopUser(ustack.url(0)) as alice, ShopUser(ustack.url(1)) as bob:
        assert (await alice.login()).status == 200
        assert (await bob.login("bob")).status == 200
        added = await alice.add(3, 2)
        assert added.status in (200, 201) and added.backend == "legacy"
        assert (await bob.cart()).backend == "legacy"

        out = ustack.cli("flags", "set", cart, "new", "--reason", "e2e")
        assert out.returncode == 0, out.stderr
        t0 = time.monotonic()
        await await_until(lambda: _cart_from(alice, "new"), timeout=DEADLINE_S,
                          what="gateway 0 to serve the cart from new")
        await await_until(lambda: _cart_from(bob, "new"), timeout=DEADLINE_S,
                          what="gateway 1 to serve the cart from new")
        print(f"\nCLI flip seen by both gateways after {time.monotonic() - t0:.2f} s")
        assert cart_lines(await alice.cart()) == {3: 2}, "the cart crossed over"

        # the kill switch through gateway 1's admin API reaches gateway 0 too
        admin = Admin(ustack.admin_url(1), ustack.admin_token)
        try:
            killed = await admin.kill(True)
            assert killed.status == 200 and killed.body["on"] is True
            await await_until(lambda: _cart_from(alice, "legacy"), timeout=DEADLINE_S,
                              what="the kill switch at gateway 0")
            assert cart_lines(await alice.cart()) == {3: 2}
        finally:
            released = await admin.kill(False)
        expect(released, 200, "releasing the kill switch")
        await await_until(lambda: _cart_from(alice, "new"), timeout=DEADLINE_S,
                          what="kill switch released at gateway 0")

    listed = ustack.cli("flags", "list")
    assert listed.returncode == 0, listed.stderr
    assert any(line.split()[:2] == [cart, "new"] for line in listed.stdout.splitlines())

    def registered() -> bool:
        ports = {str(p) for p, _ in ustack.gateway_ports}
        seen = {i["instanceId"].split(":")[-2] for i in
                unleash_server.instances("strangler-gateway")
                if i["instanceId"].count(":") >= 2}
        return ports <= seen

    async def both_registered() -> bool:
        return registered()

    await await_until(both_registered, timeout=60, interval=0.5,
                      what="both gateways registered with Unleash")
