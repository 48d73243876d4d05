"""The notes app moves to its new service in Node, through the gateway, as real processes.

The notes monolith (Python, sessions in node memory, string user ids, a guest
session on the first write) is legacy; tests/apps/notes_node is its new side,
written in another language from docs/protocol.md alone. Users log in on
legacy, write their prefs, tags, visits and draft on whichever side the state
routes are on, and every write is seen on the other side after a flip; the
monolith's own keys come back byte for byte. A session one node made unfit is
left to that node and nothing else notices; duplicate cookies name the same
session on both sides.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.faultproxy import FaultProxy
from tests.support.net import await_until
from tests.support.notes_stack import UNDECLARED, NotesStack, exports, metric, typed
from tests.support.notes_user import NotesModel, NotesUser, do
from tests.support.profiles import notes_session
from tests.support.shop import Admin, Reply


async def logged_in(user: NotesUser, username: str) -> Reply:
    reply = await user.login(username)
    assert reply.status == 200, f"login of {username} failed: {reply.status} {reply.body}"
    assert user.session_id, "the login set no sessionid"
    return reply


async def staged(admin: Admin, stage: str, percent: int | None = None) -> None:
    reply = await admin.set_route("state", stage, percent)
    assert reply.status == 200, f"flip to {stage} refused: {reply.body}"


async def export(stack: NotesStack, sid: str) -> dict[str, Any]:
    """The session as the node holding it exports it (exactly one node must)."""
    found = await exports(stack, sid)
    assert len(found) == 1, f"{len(found)} nodes hold the session"
    return found[0]


async def expect_state(user: NotesUser, model: NotesModel, backend: str, what: str,
                       uid: str | None = None) -> Reply:
    reply = await user.state()
    assert reply.status == 200, f"{what}: {reply.status} {reply.body}"
    assert reply.backend == backend, f"{what}: served by {reply.backend}, not {backend}"
    assert model.matches(reply.body), f"{what}: {reply.body} != model {model.view()}"
    assert (reply.body["user"] or {}).get("id") == uid, f"{what}: user {reply.body['user']}"
    return reply


async def write(user: NotesUser, model: NotesModel, op: tuple[str, ...], backend: str) -> None:
    reply = await do(user, op)
    assert reply.status == 200, f"{op}: {reply.status} {reply.body}"
    assert reply.backend == backend, f"{op}: served by {reply.backend}"
    model.apply(op)
    assert model.matches(reply.body), f"{op}: answered {reply.body} != model {model.view()}"


def ops_for(round_no: int, side: str) -> list[tuple[str, ...]]:
    r = f"{side}{round_no}"
    return [("set_pref", f"p{round_no % 3}", f"{r}-é"), ("add_tag", f"t-{r}"),
            ("visit", "home"), ("visit", f"page{round_no % 2}"), ("set_draft", f"draft {r} 😀"),
            ("remove_tag", f"t-{side}{round_no - 2}"), ("delete_pref", f"p{(round_no + 1) % 3}")]


# ---------------------------------------------------------------- (a) a user moves back and forth

async def test_a_user_state_crosses_every_flip_and_the_monolith_keys_stay_byte_for_byte(
        notes_stack: NotesStack, notes_admin: Admin) -> None:
    async with NotesUser(notes_stack.url()) as user:
        login = await logged_in(user, "ann")
        assert login.backend == "legacy"
        sid = user.session_id
        assert sid is not None
        before = (await export(notes_stack, sid))["data"]
        assert set(UNDECLARED) <= set(before), before
        model, legacy_pages = NotesModel(), []
        for round_no in range(6):
            for side in ("new", "legacy"):
                await staged(notes_admin, side)
                await expect_state(user, model, side, f"round {round_no} on {side}", "u-1001")
                for op in ops_for(round_no, side):
                    await write(user, model, op, side)
                    if side == "legacy" and op[0] == "visit":
                        legacy_pages.append(op[1])
        await staged(notes_admin, "legacy")
        await expect_state(user, model, "legacy", "the end, on legacy", "u-1001")
        after = await export(notes_stack, sid)
        await staged(notes_admin, "new")
        await expect_state(user, model, "new", "the end, on new", "u-1001")
        me = await user.me()
        assert (me.status, me.body, me.backend) == (200, {"id": "u-1001", "name": "Ann Lee"},
                                                    "new")

    data = after["data"]
    for key in UNDECLARED:
        assert typed(data[key]) == typed(before[key]), key
    # history is the monolith's own record of the visits it served: only legacy's, last 5
    assert [h["page"] for h in data["history"]] == legacy_pages[-5:]
    assert (data["_auth_user_id"], data["_auth_user_name"]) == ("u-1001", "Ann Lee")
    assert {k: data.get(k) for k in ("prefs", "tags", "visits", "draft")} == {
        "prefs": model.prefs, "tags": sorted(model.tags), "visits": dict(model.visits),
        "draft": model.draft}


# ---------------------------------------------------------------- (b) guests

async def test_a_guest_state_is_bridged_both_ways(notes_stack: NotesStack,
                                                  notes_admin: Admin) -> None:
    async with NotesUser(notes_stack.url()) as old_guest, \
            NotesUser(notes_stack.url()) as new_guest:
        # a guest whose session legacy made
        one = NotesModel()
        await staged(notes_admin, "legacy")
        await write(old_guest, one, ("set_pref", "theme", "dark"), "legacy")
        assert old_guest.session_id, "legacy's first write set no sessionid"
        await staged(notes_admin, "new")
        await expect_state(old_guest, one, "new", "legacy's guest on new")
        await write(old_guest, one, ("add_tag", "from-new"), "new")
        await write(old_guest, one, ("visit", "home"), "new")

        # a guest whose session the new service made
        two = NotesModel()
        await expect_state(new_guest, two, "new", "a visitor on new")
        await write(new_guest, two, ("set_draft", "made on new"), "new")
        sid = new_guest.session_id
        assert sid, "the new service's first write set no sessionid"
        await write(new_guest, two, ("visit", "docs"), "new")

        await staged(notes_admin, "legacy")
        await expect_state(old_guest, one, "legacy", "legacy's guest back on legacy")
        await expect_state(new_guest, two, "legacy", "new's guest on legacy")
        await write(new_guest, two, ("add_tag", "from-legacy"), "legacy")
        assert new_guest.session_id == sid, "legacy replaced the session new made"
        assert (await export(notes_stack, sid))["data"]["draft"] == "made on new"

        # the guest logs in on legacy: what the guest had is kept (the monolith's rule)
        await logged_in(new_guest, "bo")
        await staged(notes_admin, "new")
        await expect_state(new_guest, two, "new", "new's guest, logged in, on new", "u-1002")
        await expect_state(old_guest, one, "new", "legacy's guest, still a guest, on new")


# ---------------------------------------------------------------- two tabs, one conflict

async def test_two_tabs_on_both_sides_make_exactly_one_lww_conflict(tmp_path: Path,
                                                                   redis_url: str) -> None:
    """Tab one saves a draft on legacy; the node has acted but its answer is held back
    (a fault proxy) while the route flips and tab two saves another draft, visits and
    tags on new. When legacy's answer comes, the gateway merges: the draft changed on both
    sides -- one conflict, counted, and legacy's change wins as the later write (it was
    answered after new's); the counter and the set keep both sides' changes, silently."""
    stack = NotesStack(tmp_path / "stack", redis_url, legacy_nodes=1,
                       gateway_overrides={"timeouts": {"connect_ms": 500,
                                                       "request_ms": 15000}})
    proxy = await FaultProxy(stack.legacy_ports["a"]).start()
    stack.legacy_via = {"a": proxy.url}
    stack.write_config()
    await asyncio.to_thread(stack.start)
    admin = Admin(stack.admin_url(), stack.admin_token)
    try:
        async with NotesUser(stack.url()) as tabs:  # one browser: both tabs share the cookie
            await logged_in(tabs, "dee")
            model = NotesModel()
            await staged(admin, "legacy")
            for op in (("set_draft", "base"), ("visit", "home"), ("add_tag", "a")):
                await write(tabs, model, op, "legacy")
            await staged(admin, "new")
            await expect_state(tabs, model, "new", "before the two tabs", "u-1004")
            await staged(admin, "legacy")
            conflicts = await metric(stack, "strangler_session_merge_conflicts_total")

            await proxy.set("slow_headers", delay=3.0)  # the fault's length, not a wait
            tab_one = asyncio.create_task(tabs.set_draft("from legacy"))

            async def node_acted() -> bool:
                return any(s.mode == "slow_headers" and s.status == 200
                           for s in proxy.requests)

            await await_until(node_acted, timeout=10, what="legacy to save the draft")
            await proxy.set("pass")
            # the node's answer is what it saw: the state before, with its own change
            seen_by_legacy = NotesModel(dict(model.prefs), set(model.tags),
                                        Counter(model.visits), "from legacy")
            await staged(admin, "new")
            for op in (("set_draft", "from new"), ("visit", "home"), ("add_tag", "b")):
                await write(tabs, model, op, "new")
            one = await tab_one
            assert (one.status, one.backend) == (200, "legacy"), one.body
            assert seen_by_legacy.matches(one.body), f"{one.body} != {seen_by_legacy.view()}"
            model.draft = "from legacy"
            await expect_state(tabs, model, "new", "after the two tabs, on new", "u-1004")
            await staged(admin, "legacy")
            await expect_state(tabs, model, "legacy", "after the two tabs, on legacy", "u-1004")
        assert await metric(stack, "strangler_session_merge_conflicts_total") - conflicts == 1
        assert await metric(stack, "strangler_session_merge_conflicts_total",
                            field="draft") == 1
    except BaseException:
        print(stack.logs())
        raise
    finally:
        await asyncio.to_thread(stack.stop)
        await proxy.stop()


# ---------------------------------------------------------------- (c) failure isolation

_SMALL_EXPORTS = {"session": {**notes_session(), "max_export_bytes": 64 * 1024}}


@pytest.mark.parametrize("notes_stack", [_SMALL_EXPORTS], indirect=True)
async def test_an_unfit_session_is_left_to_its_node_and_nothing_else_notices(
        notes_stack: NotesStack, notes_admin: Admin) -> None:
    users = {name: NotesUser(notes_stack.url()) for name in ("ann", "bo", "cy", "dee")}
    guest = NotesUser(notes_stack.url())
    try:
        models = {name: NotesModel() for name in users}
        await staged(notes_admin, "legacy")
        for name, user in users.items():
            await logged_in(user, name)
            await write(user, models[name], ("set_pref", "lang", name), "legacy")
        guest_model = NotesModel()
        await write(guest, guest_model, ("add_tag", "guest"), "legacy")
        wrong_type = await metric(notes_stack, "strangler_session_unbridgeable_total",
                                  reason="type")
        oversize = await metric(notes_stack, "strangler_session_unbridgeable_total",
                                reason="oversize")

        # ann's prefs become a number, bo's session grows past max_export_bytes
        reply = await users["ann"].raw("prefs", 5)
        assert (reply.status, reply.backend) == (200, "legacy"), reply.body
        reply = await users["bo"].raw("flash", "x" * (100 * 1024))
        assert (reply.status, reply.backend) == (200, "legacy"), reply.body
        models["ann"].prefs.clear()  # the monolith shows a prefs it cannot read as empty

        await staged(notes_admin, "new")
        for name in ("ann", "bo"):  # left to their node, sticky, with their cookie
            for _ in range(3):
                await expect_state(users[name], models[name], "legacy",
                                   f"{name}'s unfit session at stage new", users_id(name))
        assert await metric(notes_stack, "strangler_session_unbridgeable_total",
                            reason="type") > wrong_type
        assert await metric(notes_stack, "strangler_session_unbridgeable_total",
                            reason="oversize") > oversize
        logged = [json.loads(line) for line in
                  notes_stack.gateways[0].log_path.read_text().splitlines()
                  if '"session_unbridgeable"' in line]
        assert {e["reason"] for e in logged} >= {"type", "oversize"}, logged
        for name in ("ann", "bo"):  # logged without naming the session
            assert users[name].session_id not in notes_stack.gateways[0].log_path.read_text()
        for name in ("cy", "dee"):  # everyone else moved on
            await expect_state(users[name], models[name], "new", f"{name} at stage new",
                               users_id(name))
            await write(users[name], models[name], ("visit", "home"), "new")
            await write(users[name], models[name], ("add_tag", "still-fine"), "new")
        await expect_state(guest, guest_model, "new", "the guest at stage new")
        await write(guest, guest_model, ("set_draft", "fine"), "new")
        newcomer, newcomer_model = NotesUser(notes_stack.url()), NotesModel()
        async with newcomer:
            await write(newcomer, newcomer_model, ("visit", "first"), "new")
        async with aiohttp.ClientSession() as http, \
                http.get(f"{notes_stack.url()}/about") as resp:
            assert resp.status == 200 and "<h1>notes</h1>" in await resp.text()
            assert resp.headers["X-Strangler-Backend"].startswith("legacy")
        # the unfit sessions still work: on their node
        reply = await users["ann"].set_pref("lang", "again")
        assert (reply.status, reply.body["prefs"]) == (200, {"lang": "again"}), reply.body
        models["ann"].prefs["lang"] = "again"
        reply = await users["bo"].visit("home")
        assert (reply.status, reply.backend) == (200, "legacy"), reply.body
        models["bo"].visits["home"] += 1
        for name, user in users.items():
            reply = await user.state()
            assert reply.status == 200 and models[name].matches(reply.body), (name, reply.body)
    finally:
        for user in [*users.values(), guest]:
            await user.close()


def users_id(name: str) -> str:
    return {"ann": "u-1001", "bo": "u-1002", "cy": "u-1003", "dee": "u-1004"}[name]


# ---------------------------------------------------------------- (d) duplicate cookies

async def _two_sessions(stack: NotesStack) -> tuple[str, str]:
    """Ann's and Bo's session ids, each with a pref of its own."""
    sids = []
    for name in ("ann", "bo"):
        async with NotesUser(stack.url()) as user:
            await logged_in(user, name)
            reply = await user.set_pref("owner", name)
            assert reply.status == 200, reply.body
            assert user.session_id is not None
            sids.append(user.session_id)
    return sids[0], sids[1]


async def _with_cookies(stack: NotesStack, method: str, path: str, cookies: list[str],
                        body: Any = None) -> tuple[int, Any, list[str], str | None]:
    header = "; ".join(f"sessionid={sid}" for sid in cookies)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http, \
            http.request(method, stack.url() + path, json=body,
                         headers={"Cookie": header}) as resp:
        raw = await resp.read()
        backend = resp.headers.get("X-Strangler-Backend")
        return (resp.status, json.loads(raw) if raw else None,
                resp.headers.getall("Set-Cookie", []), backend and backend.split(":")[0])


async def test_duplicate_cookies_last_wins_on_both_sides(notes_stack: NotesStack,
                                                         notes_admin: Admin) -> None:
    ann, bo = await _two_sessions(notes_stack)
    for stage in ("legacy", "new", "legacy"):
        await staged(notes_admin, stage)
        status, body, _, backend = await _with_cookies(notes_stack, "GET", "/api/me", [ann, bo])
        assert (status, body, backend) == (200, {"id": "u-1002", "name": "Bo Chen"}, stage)
        status, body, _, backend = await _with_cookies(
            notes_stack, "PUT", f"/api/prefs/at_{stage}", [ann, bo], {"value": "x"})
        assert (status, backend) == (200, stage), body
        assert body["user"]["id"] == "u-1002" and body["prefs"]["owner"] == "bo", body
    _, ann_state, _, _ = await _with_cookies(notes_stack, "GET", "/api/state", [ann])
    assert ann_state["prefs"] == {"owner": "ann"}, "the first cookie's session was written"


_REJECT = {"session": {**notes_session(), "duplicate_cookies": "reject"}}


@pytest.mark.parametrize("notes_stack", [_REJECT], indirect=True)
async def test_duplicate_cookies_rejected_with_their_expiry(notes_stack: NotesStack,
                                                            notes_admin: Admin) -> None:
    ann, bo = await _two_sessions(notes_stack)
    for stage in ("legacy", "new"):
        await staged(notes_admin, stage)
        for method, path in (("GET", "/api/state"), ("POST", "/api/visits/home"),
                             ("GET", "/about")):
            status, _, set_cookies, _ = await _with_cookies(notes_stack, method, path,
                                                            [ann, bo])
            assert status == 400, (stage, method, path)
            assert "sessionid=; Max-Age=0; Path=/" in set_cookies, set_cookies
        status, body, _, backend = await _with_cookies(notes_stack, "GET", "/api/me", [bo])
        assert (status, body["id"], backend) == (200, "u-1002", stage)
    for sid, owner in ((ann, "ann"), (bo, "bo")):
        _, state, _, _ = await _with_cookies(notes_stack, "GET", "/api/state", [sid])
        assert state["prefs"] == {"owner": owner} and state["visits"] == {}, state


_FIRST = {"session": {**notes_session(), "duplicate_cookies": "first"}}


@pytest.mark.parametrize("notes_stack", [_FIRST], indirect=True)
async def test_first_against_a_last_wins_monolith_names_two_users(notes_stack: NotesStack,
                                                                  notes_admin: Admin) -> None:
    """The mismatch the setting exists to prevent, shown: configured ``first`` while the
    monolith takes the last, new answers as the first cookie's user, and legacy -- sent to
    the node of the first cookie's session, given both cookies -- as the last cookie's
    user, or as nobody when that session lives on the other node. Never the same user:
    the profile must say what the framework does."""
    ann, bo = await _two_sessions(notes_stack)
    seen: dict[str, Any] = {}
    for stage in ("legacy", "new"):
        await staged(notes_admin, stage)
        status, body, _, backend = await _with_cookies(notes_stack, "GET", "/api/me", [ann, bo])
        seen[stage] = body["id"] if status == 200 else status
        assert status != 200 or backend == stage, body
    assert seen["legacy"] in ("u-1002", 401), seen
    # new names the first cookie's user -- or nobody: the node's answer named another
    # session, so the gateway took the first's as replaced and dropped it, and a dropped
    # session is bridged again only from the node the client is sticky to (these
    # requests carry no affinity cookie), never from a copy found elsewhere (401); or the
    # gateway refuses while it cannot tell (503)
    assert seen["new"] in ("u-1001", 401, 503), seen
