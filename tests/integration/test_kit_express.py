"""The Express kit (kits/express) in a real Express app, as real node processes.

tests/apps/express_notes is the notes monolith on express-session with the
kit. One stack for the module: two Express nodes as legacy, the notes app's
new service in Node (tests/apps/notes_node) as new, one gateway with the
notes profile. ``strangler hook check`` holds a node's hook to every rule of
docs/protocol.md section 4, and a logged-in user's session goes legacy -> new
-> legacy through the gateway with every write seen on the other side and the
app's own keys intact.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from testkit.browser import Reply
from testkit.express_notes import express_node, express_notes_session
from tests.conftest import REDIS_URL
from tests.support.notes_stack import UNDECLARED, NotesStack, exports, typed
from tests.support.notes_user import NotesModel, NotesUser, do
from tests.support.procs import ROOT
from tests.support.shop import Admin

TOKEN_HEADER = "X-Internal-Token"


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[NotesStack]:
    """One stack for the module; its logs are printed when a test of it failed."""
    failed_before = request.session.testsfailed
    s = NotesStack(tmp_path_factory.mktemp("express") / "stack", REDIS_URL,
                   session=express_notes_session(), legacy_command=express_node)
    started = False
    try:
        s.start()
        started = True
        yield s
    finally:
        s.stop()
        if not started or request.session.testsfailed > failed_before:
            print(s.logs())


@pytest.fixture(scope="module")
def hook_report(stack: NotesStack) -> dict[str, Any]:
    """``strangler hook check --json`` against node b, as an operator would run it."""
    done = subprocess.run(
        [sys.executable, "-m", "strangler", "hook", "check", stack.legacy_url("b"),
         "--token-file", str(stack.dir / "internal-token"), "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.stdout, f"hook check printed nothing (exit {done.returncode}): {done.stderr}"
    report: dict[str, Any] = json.loads(done.stdout)
    report["exit"] = done.returncode
    failed = [r for r in report["results"] if r["result"] != "pass"]
    for rule in failed:
        print(f"rule {rule['rule']} ({rule['title']}): expected {rule['expected']}; "
              f"seen {rule['seen']}")
        for c in rule["checks"]:
            if not c["ok"]:
                print(f"    {c['what']}: expected {c['expected']}, seen {c['seen']}")
    return report


@pytest.mark.parametrize("rule", range(1, 11))
def test_hook_check_rule_passes(hook_report: dict[str, Any], rule: int) -> None:
    result = next(r for r in hook_report["results"] if r["rule"] == rule)
    assert result["result"] == "pass", f"rule {rule} {result['title']}: {result['seen']}"


def test_hook_check_passes_and_leaves_nothing(hook_report: dict[str, Any]) -> None:
    assert (hook_report["exit"], hook_report["ok"]) == (0, True)
    assert hook_report["node"] == "b" and hook_report["left_behind"] == []


# ---------------------------------------------------------------- headers, straight at a node

async def test_headers_report_the_session_each_response_ends_with(stack: NotesStack) -> None:
    """Straight at node a (no gateway): a guest's write makes revision 1, a change +1, a
    read nothing; a login's new id at revision 1; a logout revision 0; the id is the
    cookie value (express-session's signed one), and the hook answers to it."""
    base = stack.legacy_url("a")
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        async def call(method: str, path: str, body: Any = None) -> tuple[int, Any, Any]:
            async with http.request(method, base + path, json=body) as resp:
                return resp.status, resp.headers, await resp.json()

        status, headers, _ = await call("GET", "/api/state")
        assert status == 200 and "X-Notes-Session" not in headers, "a guest read made a session"
        status, headers, _ = await call("POST", "/api/visits/home")
        guest = headers.get("X-Notes-Session")
        assert status == 200 and guest and headers["X-Notes-Rev"] == "1", headers
        assert guest == cookie(jar) and guest.startswith("s%3A"), (guest, cookie(jar))
        assert headers["X-Notes-Node"] == "a"
        _, headers, _ = await call("GET", "/api/state")
        assert (headers["X-Notes-Session"], headers["X-Notes-Rev"]) == (guest, "1")
        _, headers, _ = await call("PUT", "/api/draft", {"text": "x"})
        assert (headers["X-Notes-Session"], headers["X-Notes-Rev"]) == (guest, "2")
        _, headers, _ = await call("PUT", "/api/draft", {"text": "x"})
        assert headers["X-Notes-Rev"] == "2", "a write that changes nothing bumped the revision"

        status, headers, _ = await call("POST", "/login", {"username": "bo", "password": "bo-pass"})
        user = headers["X-Notes-Session"]
        assert status == 200 and user != guest and user == cookie(jar), (user, guest)
        assert headers["X-Notes-Rev"] == "1"
        export = await hook(http, base, stack.internal_token, user)
        assert export is not None, "the login's session is not on the node"
        assert export["session_id"] == user and export["revision"] == 1, export
        assert export["data"]["_auth_user_id"] == "u-1002"
        assert export["data"]["draft"] == "x", "the guest's data did not carry over the login"
        assert "cookie" not in export["data"] and "__strangler" not in export["data"]
        assert await hook(http, base, stack.internal_token, guest) is None, "old id lives on"

        status, headers, _ = await call("POST", "/logout")
        assert (status, headers["X-Notes-Session"], headers["X-Notes-Rev"]) == (200, user, "0")


async def hook(http: aiohttp.ClientSession, base: str, token: str,
               sid: str) -> dict[str, Any] | None:
    async with http.get(f"{base}/_internal/sessions/{quote(sid, safe='')}",
                        headers={TOKEN_HEADER: token}) as resp:
        if resp.status == 404:
            return None
        assert resp.status == 200, f"export: {resp.status} {await resp.text()}"
        return dict(json.loads(await resp.read()))


def cookie(jar: aiohttp.CookieJar) -> str | None:
    return next((c.value for c in jar if c.key == "sessionid"), None)


# ---------------------------------------------------------------- through the gateway

async def state_on(user: NotesUser, model: NotesModel, backend: str, what: str) -> Reply:
    reply = await user.state()
    assert reply.status == 200, f"{what}: {reply.status} {reply.body}"
    assert reply.backend == backend, f"{what}: served by {reply.backend}, not {backend}"
    assert model.matches(reply.body), f"{what}: {reply.body} != model {model.view()}"
    assert (reply.body["user"] or {}).get("id") == "u-1001", f"{what}: {reply.body['user']}"
    return reply


async def writes(user: NotesUser, model: NotesModel, backend: str,
                 ops: list[tuple[str, ...]]) -> None:
    for op in ops:
        reply = await do(user, op)
        assert reply.status == 200, f"{op} on {backend}: {reply.status} {reply.body}"
        assert reply.backend == backend, f"{op}: served by {reply.backend}, not {backend}"
        model.apply(op)
        assert model.matches(reply.body), f"{op}: answered {reply.body} != {model.view()}"


async def held(stack: NotesStack, sid: str) -> dict[str, Any]:
    found = await exports(stack, sid)
    assert len(found) == 1, f"{len(found)} Express nodes hold the session"
    return found[0]


async def test_a_session_goes_legacy_new_legacy_through_the_gateway(stack: NotesStack) -> None:
    admin = Admin(stack.admin_url(), stack.admin_token)
    assert (await admin.set_route("state", "legacy")).status == 200, "flip to legacy refused"
    async with NotesUser(stack.url()) as user:
        login = await user.login("ann")
        assert (login.status, login.backend) == (200, "legacy"), login.body
        sid = user.session_id
        assert sid is not None and sid.startswith("s%3A"), f"the login set no signed cookie: {sid}"
        model = NotesModel()
        await writes(user, model, "legacy", [("set_pref", "theme", "dark-é"), ("add_tag", "work"),
                                             ("visit", "home"), ("set_draft", "from Express 😀")])
        before = (await held(stack, sid))["data"]
        assert set(UNDECLARED) <= set(before), before

        assert (await admin.set_route("state", "new")).status == 200, "flip to new refused"
        await state_on(user, model, "new", "new reads what Express wrote")
        me = await user.me()
        assert (me.status, me.body, me.backend) == (200, {"id": "u-1001", "name": "Ann Lee"},
                                                    "new")
        await writes(user, model, "new", [("set_pref", "lang", "fr"), ("delete_pref", "theme"),
                                          ("add_tag", "from-new"), ("remove_tag", "work"),
                                          ("visit", "docs"), ("set_draft", "written on new")])

        assert (await admin.set_route("state", "legacy")).status == 200, "flip back refused"
        await state_on(user, model, "legacy", "Express reads what new wrote")
        await writes(user, model, "legacy", [("visit", "home"), ("add_tag", "back-home")])
        assert user.session_id == sid, "the session's id changed on the way"
        after = (await held(stack, sid))["data"]

    for key in UNDECLARED:
        assert typed(after[key]) == typed(before[key]), f"{key}: {after[key]} != {before[key]}"
    assert [h["page"] for h in after["history"]] == ["home", "home"], after["history"]
    assert (after["_auth_user_id"], after["_auth_user_name"]) == ("u-1001", "Ann Lee")
    assert {k: after.get(k) for k in ("prefs", "tags", "visits", "draft")} == {
        "prefs": model.prefs, "tags": sorted(model.tags), "visits": dict(model.visits),
        "draft": model.draft}


async def test_a_guest_made_on_new_is_adopted_by_express(stack: NotesStack) -> None:
    """A guest's first write on new makes a session with an unsigned id; on legacy the kit
    loads it (express-session reads only signed cookies) and express-session signs it:
    to the gateway the id changes, as at a login, and the state carries over."""
    admin = Admin(stack.admin_url(), stack.admin_token)
    assert (await admin.set_route("state", "new")).status == 200, "flip to new refused"
    async with NotesUser(stack.url()) as guest:
        model = NotesModel()
        reply = await do(guest, ("set_draft", "a guest on new"))
        assert (reply.status, reply.backend) == (200, "new"), reply.body
        model.apply(("set_draft", "a guest on new"))
        plain = guest.session_id
        assert plain is not None and not plain.startswith("s%3A"), plain

        assert (await admin.set_route("state", "legacy")).status == 200, "flip refused"
        reply = await guest.state()
        assert (reply.status, reply.backend) == (200, "legacy"), reply.body
        assert model.matches(reply.body), f"{reply.body} != {model.view()}"
        signed = guest.session_id
        assert signed is not None and signed.startswith("s%3A"), signed
        reply = await do(guest, ("add_tag", "adopted"))
        assert (reply.status, reply.backend) == (200, "legacy"), reply.body
        model.apply(("add_tag", "adopted"))
        assert model.matches(reply.body), f"{reply.body} != {model.view()}"

        assert (await admin.set_route("state", "new")).status == 200, "flip back refused"
        reply = await guest.state()
        assert (reply.status, reply.backend) == (200, "new"), reply.body
        assert model.matches(reply.body), f"new after adoption: {reply.body} != {model.view()}"


async def test_exact_numbers_outlive_app_writes_and_reserved_keys_stay_out(
        stack: NotesStack) -> None:
    """Straight at node b: numbers an import brings keep their text through a write of the
    app's to another key; the session's own keys cannot be imported; a tampered signed id
    names nothing."""
    base, token = stack.legacy_url("b"), stack.internal_token
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        async with http.post(f"{base}/login", json={"username": "cy", "password": "cy-pass"}
                             ) as resp:
            assert resp.status == 200, await resp.text()
            sid = resp.headers["X-Notes-Session"]
        url = f"{base}/_internal/sessions/{quote(sid, safe='')}"
        auth = {TOKEN_HEADER: token, "Content-Type": "application/json"}
        exported = await hook(http, base, token, sid)
        assert exported is not None and exported["revision"] == 1, exported
        own = json.dumps(exported["data"])[1:-1]
        exotic = '"big": 18446744073709551617, "one": 1.0, "e": [1E+300, -0]'
        body = '{"data": {' + own + ", " + exotic + '}, "expected_revision": 1}'
        async with http.put(url, data=body.encode(), headers=auth) as resp:
            assert (resp.status, await resp.json()) == (200, {"revision": 2})
        async with http.put(f"{base}/api/draft", json={"text": "app write"}) as resp:
            assert resp.status == 200 and resp.headers["X-Notes-Rev"] == "3", resp.headers
        async with http.get(url, headers=auth) as resp:
            text = await resp.text()
        assert '"big":18446744073709551617' in text and '"one":1.0' in text, text
        assert '"e":[1E+300,-0]' in text and '"draft":"app write"' in text, text

        for key in ("cookie", "__strangler"):
            bad = '{"data": {"' + key + '": {}}, "expected_revision": null}'
            async with http.put(url, data=bad.encode(), headers=auth) as resp:
                assert resp.status == 400, f"{key}: {resp.status}"
        tampered = sid[:-3] + ("AAA" if not sid.endswith("AAA") else "BBB")
        assert await hook(http, base, token, tampered) is None
        async with http.put(f"{base}/_internal/sessions/{quote(tampered, safe='')}",
                            data=b'{"data": {}, "expected_revision": null}', headers=auth) as resp:
            assert resp.status == 400, resp.status


async def test_a_restarted_node_gets_its_sessions_back(stack: NotesStack) -> None:
    """The node holding a session restarts (MemoryStore: it loses them all). Its new
    boot_id, or its revision 0 for the cookie, tells the gateway, which refills the
    session from the shared record: still logged in, state intact. Last: it restarts a node."""
    admin = Admin(stack.admin_url(), stack.admin_token)
    assert (await admin.set_route("state", "legacy")).status == 200, "flip to legacy refused"
    async with NotesUser(stack.url()) as user:
        login = await user.login("dee")
        assert login.status == 200 and login.upstream in stack.legacy, login.body
        model = NotesModel()
        reply = await do(user, ("set_pref", "mode", "kept"))
        assert (reply.status, reply.upstream) == (200, login.upstream), reply.body
        model.apply(("set_pref", "mode", "kept"))
        stack.legacy[str(login.upstream)].restart(timeout=30)
        assert not await exports(stack, str(user.session_id)), "the restart kept the session"
        reply = await user.state()
        assert (reply.status, reply.backend) == (200, "legacy"), reply.body
        assert model.matches(reply.body), f"after the restart: {reply.body} != {model.view()}"
        assert reply.body["user"] == {"id": "u-1004", "name": "Dee O'Neil"}, reply.body
