"""Who moved what and why; pins that outlive a lowered canary; explain matches reality."""

from __future__ import annotations

import asyncio
import copy
import json
import secrets

import pytest

from tests.support.checks import expect
from tests.support.shop import Admin, ShopUser
from tests.support.stack import DEFAULT_ROUTES, Stack

OPS_TOKEN = secrets.token_urlsafe(16)


def _routes() -> list[dict[str, object]]:
    routes = copy.deepcopy(DEFAULT_ROUTES)
    for r in routes:
        if r["name"] in ("cart", "checkout"):
            r["group"] = "shopping"
        if r["name"] == "cart":
            r["pin"] = True
    # checkout must pin alike to share the group
    next(r for r in routes if r["name"] == "checkout")["pin"] = True
    return routes


STACK = {"routes": _routes(),
         "gateway_overrides": {"admin_tokens": [{"name": "alice-ops",
                                                 "env": "STRANGLER_OPS_TOKEN"}]},
         "extra_env": {"STRANGLER_OPS_TOKEN": OPS_TOKEN}}


@pytest.mark.parametrize("stack", [STACK], indirect=True)
async def test_the_ledger_says_who_moved_what_when_and_why(stack: Stack) -> None:
    ops = Admin(stack.admin_url(), OPS_TOKEN)
    reply = await ops._call("PUT", "/api/routes/cart", {"stage": "canary", "percent": 20,
                                                         "reason": "first 20%"})
    assert reply.status == 200 and reply.body["moved"] == ["cart", "checkout"]
    cli = stack.cli("flags", "set", "checkout", "new", "--reason", "all in")
    assert cli.returncode == 0, cli.stderr
    assert "moved with it (same group): cart" in cli.stdout
    assert (await ops.kill(True)).status == 200
    assert (await ops.kill(False)).status == 200

    history = stack.must_cli("flags", "history", "cart")
    assert history.returncode == 0, history.stderr
    lines = history.stdout.strip().splitlines()
    assert "kill switch off" in lines[0] and "alice-ops via admin-api" in lines[0]
    assert "kill switch on" in lines[1]
    assert "cart: canary 20% -> new (with checkout)" in lines[2] and "all in" in lines[2]
    assert "cli:" in lines[2] and "via cli" in lines[2]
    assert "cart: legacy -> canary 20% (with checkout)" in lines[3]
    assert "alice-ops" in lines[3] and "first 20%" in lines[3]

    api = expect(await ops._call("GET", "/api/ledger?route=checkout&limit=10", auth=False),
                 200, "reading the ledger").body
    checkout = [e for e in api["entries"] if e["route"] == "checkout"]
    assert [(e["from_stage"], e["to_stage"], e["actor"]) for e in checkout][:2] == [
        ("canary", "new", checkout[0]["actor"]), ("legacy", "canary", "alice-ops")]
    assert checkout[0]["actor"].startswith("cli:")
    assert all(e["at"].endswith("Z") for e in api["entries"])

    bad = Admin(stack.admin_url(), "not-a-token")
    assert (await bad.set_route("cart", "legacy")).status == 401


@pytest.mark.parametrize("stack", [STACK], indirect=True)
async def test_pinned_sessions_stay_on_new_until_the_route_goes_back_to_legacy(
        stack: Stack, admin: Admin) -> None:
    users = [ShopUser(stack.url()) for _ in range(40)]
    try:
        # Four at a time, as people do: 40 argon2 logins at once on a busy 2-core
        # machine outlast the stack's 2 s request timeout.
        for batch in range(0, len(users), 4):
            replies = await asyncio.gather(*(
                u.login(("alice", "bob", "carol", "dave")[i % 4])
                for i, u in enumerate(users[batch:batch + 4])))
            for reply in replies:
                assert reply.status == 200, f"a login failed: {reply.status} {reply.body}"
        await admin.must_set_route("cart", "canary", 50)
        carts = [await u.cart() for u in users]
        assert all(c.status == 200 for c in carts), [(c.status, c.body) for c in carts]
        first = [c.backend for c in carts]
        assert 8 <= first.count("new") <= 32
        lowered = await admin.set_route("cart", "canary", 10)
        assert lowered.status == 200
        after = [(await u.cart()).backend for u in users]
        assert after == first, "pinned sessions stayed on new; the rest stayed on legacy"
        back = await admin.set_route("cart", "legacy")
        assert back.body["pins_cleared"]["cart"] == first.count("new")
        await admin.must_set_route("cart", "canary", 10)
        again = [(await u.cart()).backend for u in users]
        assert again.count("new") < first.count("new"), "pins were cleared on rollback"
        # at 10% only buckets 1..10 are in: all of them were in at 50% too
        assert all(f == "new" for a, f in zip(again, first, strict=True) if a == "new")
    finally:
        await asyncio.gather(*(u.close() for u in users))


@pytest.mark.parametrize("stack", [STACK], indirect=True)
async def test_explain_agrees_with_what_the_gateway_does(stack: Stack, admin: Admin) -> None:
    await admin.must_set_route("cart", "canary", 30)
    users = [ShopUser(stack.url()) for _ in range(12)]
    try:
        for i, u in enumerate(users):
            await u.must_login(("alice", "bob")[i % 2])
        for u in users:
            served = await u.cart()
            assert served.status == 200, (served.status, served.body)
            # "--session=..." form: a token_urlsafe id may start with "-"
            result = stack.cli("explain", "GET", "/api/cart", f"--session={u.session_id}",
                               "--json")
            assert result.returncode == 0, result.stderr
            told = json.loads(result.stdout)
            assert told["backend"] == served.backend, told
            assert told["reason"] in ("canary_in", "canary_out", "pinned")
            assert 1 <= told["bucket"] <= 100
            assert told["route"] == "cart" and told["percent"] == 30
            assert "canary 30%" in told["set_by"]
    finally:
        await asyncio.gather(*(u.close() for u in users))

    # Without a session the gateway buckets a client by the strangler_cid it gave it;
    # explain asked with that cid says the same, and that client stays on its side.
    visitors = [ShopUser(stack.url()) for _ in range(12)]
    try:
        for v in visitors:
            served = await v.cart()
            cid = next(c.value for c in v.jar if c.key == "strangler_cid")
            result = stack.cli("explain", "GET", "/api/cart", f"--cid={cid}", "--json")
            assert result.returncode == 0, result.stderr
            told = json.loads(result.stdout)
            assert told["backend"] == served.backend, told
            assert told["reason"] in ("canary_in", "canary_out")
            assert "<cid>" in told["steps"][-1]
            assert (await v.cart()).backend == served.backend, "a cid keeps its side"
    finally:
        await asyncio.gather(*(v.close() for v in visitors))
    anonymous = stack.must_cli("explain", "GET", "/api/cart")
    assert "=> depends on the cid it gets (canary_unbucketed)" in anonymous.stdout

    await admin.must_kill(True)
    text = stack.must_cli("explain", "GET", "/api/cart")
    assert "kill switch is ON" in text.stdout and "=> legacy (kill_switch)" in text.stdout
    await admin.must_kill(False)
    tricky = stack.must_cli("explain", "GET", "/api/cart/%2e%2e/%2e%2e/admin")
    assert "canonical path: /admin" in tricky.stdout and "route: default" in tricky.stdout
    refused = stack.must_cli("explain", "GET", "/api/%2Fetc")
    assert "refused before routing" in refused.stdout
