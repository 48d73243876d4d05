"""The notes app in-process: its sessions, its headers, and its session-export hook.

The client keeps no cookies: every request names its ``sessionid`` itself, so
what a test sends is exactly what the app sees (duplicates included).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import DummyCookieJar
from aiohttp.test_utils import TestClient

from tests.apps.notes.app import create_app
from tests.apps.notes.settings import Settings
from tests.apps.notes.store import SessionStore
from tests.apps.notes.web import SESSIONS

Client = TestClient[Any, Any]
HOOK = "/_internal/sessions/{}"
SID_HEADER, REV_HEADER, NODE_HEADER = "X-Notes-Session", "X-Notes-Rev", "X-Notes-Node"
EMPTY_STATE: dict[str, Any] = {"user": None, "prefs": {}, "tags": [], "visits": {}, "draft": None}


@pytest.fixture
async def notes(aiohttp_client: Any, internal_token: str) -> Client:
    app = create_app(Settings(node_id="n1", internal_token=internal_token))
    client: Client = await aiohttp_client(app, cookie_jar=DummyCookieJar())
    return client


@pytest.fixture
def token_headers(internal_token: str) -> dict[str, str]:
    return {"X-Internal-Token": internal_token}


def store(client: Client) -> SessionStore:
    app = client.app
    assert app is not None
    sessions: SessionStore = app[SESSIONS]
    return sessions


def cookie(*sids: str) -> dict[str, str]:
    return {"Cookie": "; ".join(f"sessionid={sid}" for sid in sids)}


async def body(resp: Any, status: int) -> Any:
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    return await resp.json()


async def log_in(client: Client, username: str, sid: str | None = None) -> str:
    resp = await client.post("/login", json={"username": username, "password": f"{username}-pass"},
                             headers=cookie(sid) if sid else None)
    await body(resp, 200)
    return str(resp.cookies["sessionid"].value)


async def guest(client: Client) -> str:
    """A guest session made by a write; returns its id."""
    resp = await client.post("/api/visits/home")
    await body(resp, 200)
    return str(resp.cookies["sessionid"].value)


def reported(resp: Any) -> tuple[str, str, str] | None:
    """The ``X-Notes-*`` headers of a response, or ``None`` when it has none of them."""
    values = [resp.headers.get(h) for h in (SID_HEADER, REV_HEADER, NODE_HEADER)]
    if all(v is None for v in values):
        return None
    assert all(v is not None for v in values), values
    return values[0], values[1], values[2]


# --- sessions, login, cookies -----------------------------------------------------

async def test_login_rotates_the_id_and_keeps_a_guests_data(notes: Client) -> None:
    sid0 = await guest(notes)
    await body(await notes.put("/api/prefs/theme", json={"value": "dark"},
                               headers=cookie(sid0)), 200)
    resp = await notes.post("/login", json={"username": "ann", "password": "ann-pass"},
                            headers=cookie(sid0))
    assert await body(resp, 200) == {"id": "u-1001", "name": "Ann Lee"}
    set_cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in set_cookie and "Path=/" in set_cookie and "SameSite=Lax" in set_cookie
    sid1 = resp.cookies["sessionid"].value
    assert sid1 != sid0 and len(sid1) >= 43 and reported(resp) == (sid1, "1", "n1")
    old = await notes.get("/api/state", headers=cookie(sid0))
    assert await body(old, 200) == EMPTY_STATE and reported(old) == (sid0, "0", "n1")
    state = await body(await notes.get("/api/state", headers=cookie(sid1)), 200)
    assert state["user"] == {"id": "u-1001", "name": "Ann Lee"}
    assert state["prefs"] == {"theme": "dark"} and state["visits"] == {"home": 1}

    sid2 = await log_in(notes, "ann", sid1)  # logging in again rotates again
    assert sid2 != sid1 and store(notes).get(sid1) is None
    sid3 = await log_in(notes, "bo", sid2)   # another user: a clean session
    state = await body(await notes.get("/api/state", headers=cookie(sid3)), 200)
    assert state == {**EMPTY_STATE, "user": {"id": "u-1002", "name": "Bo Chen"}}
    assert len(store(notes)) == 1


async def test_wrong_credentials_leave_the_session_alone(notes: Client) -> None:
    sid = await log_in(notes, "cy")
    resp = await notes.post("/login", json={"username": "cy", "password": "nope"},
                            headers=cookie(sid))
    assert await body(resp, 401) == {"error": "invalid_credentials"}
    assert "Set-Cookie" not in resp.headers and reported(resp) == (sid, "1", "n1")
    resp = await notes.post("/login", json={"username": "zed", "password": "zed-pass"})
    assert await body(resp, 401) == {"error": "invalid_credentials"}
    assert await body(await notes.get("/api/me", headers=cookie(sid)), 200) == {
        "id": "u-1003", "name": "Cy Díaz"}


async def test_logout_destroys_the_session_and_expires_the_cookie(notes: Client) -> None:
    assert await body(await notes.get("/api/me"), 401) == {"error": "not_logged_in"}
    sid = await log_in(notes, "dee")
    assert await body(await notes.get("/api/me", headers=cookie(sid)), 200) == {
        "id": "u-1004", "name": "Dee O'Neil"}
    resp = await notes.post("/logout", headers=cookie(sid))
    await body(resp, 200)
    assert resp.cookies["sessionid"].value == "" and reported(resp) == (sid, "0", "n1")
    assert await body(await notes.get("/api/me", headers=cookie(sid)), 401) == {
        "error": "not_logged_in"}
    assert len(store(notes)) == 0
    await body(await notes.post("/logout"), 200)  # without a session too


async def test_duplicate_cookies_the_last_one_wins(notes: Client) -> None:
    ann, bo = await log_in(notes, "ann"), await log_in(notes, "bo")
    for sent, user, sid in [(cookie(ann, bo), "u-1002", bo), (cookie(bo, ann), "u-1001", ann),
                            ({"Cookie": f"sessionid={ann}; theme=x; sessionid=\"{bo}\""},
                             "u-1002", bo)]:
        resp = await notes.get("/api/me", headers=sent)
        assert (await body(resp, 200))["id"] == user and reported(resp) == (sid, "1", "n1")
    two_headers = [("Cookie", f"sessionid={bo}"), ("Cookie", f"sessionid={ann}")]
    assert (await body(await notes.get("/api/me", headers=two_headers), 200))["id"] == "u-1001"
    resp = await notes.get("/api/me", headers={"Cookie": f"sessionid={ann}; sessionid="})
    assert await body(resp, 401) == {"error": "not_logged_in"} and reported(resp) is None
    resp = await notes.put("/api/draft", json={"text": "x"}, headers=cookie(ann, bo))
    await body(resp, 200)
    assert reported(resp) == (bo, "2", "n1") and store(notes).revision(ann) == 1


@pytest.mark.parametrize(("method", "path", "payload"), [
    ("PUT", "/api/prefs/theme", {"value": "dark"}),
    ("DELETE", "/api/prefs/theme", None),
    ("POST", "/api/tags", {"tag": "work"}),
    ("DELETE", "/api/tags/work", None),
    ("POST", "/api/visits/home", None),
    ("PUT", "/api/draft", {"text": "hello"}),
    ("PUT", "/api/debug/raw/anything", [1, {"a": None}]),
])
async def test_every_write_creates_a_session_for_a_guest(
        notes: Client, method: str, path: str, payload: Any) -> None:
    for sent in ({}, cookie("an-id-this-node-never-issued")):
        resp = await notes.request(method, path, json=payload, headers=sent)
        state = await body(resp, 200)
        assert state["user"] is None
        sid = resp.cookies["sessionid"].value
        assert sid != "an-id-this-node-never-issued" and reported(resp) == (sid, "1", "n1")
        session = store(notes).get(sid)
        assert session is not None and session.revision == 1
        assert {"_csrf", "created_at", "history", "flash"} <= set(session.data)


async def test_reads_create_no_session(notes: Client) -> None:
    for path in ("/about", "/api/state", "/api/me", "/healthz", "/api/debug/raw", "/nowhere"):
        resp = await notes.get(path)
        assert "Set-Cookie" not in resp.headers and reported(resp) is None, path
    assert await body(await notes.get("/api/state"), 200) == EMPTY_STATE
    about = await notes.get("/about")
    assert about.status == 200 and about.content_type == "text/html"
    assert "<h1>notes</h1>" in await about.text()
    assert len(store(notes)) == 0


async def test_writes_answer_the_state_and_bump_the_revision_once_each(notes: Client) -> None:
    sid = await log_in(notes, "ann")
    steps: list[tuple[str, str, Any]] = [
        ("PUT", "/api/prefs/theme", {"value": "dark"}), ("PUT", "/api/prefs/lang", {"value": "en"}),
        ("POST", "/api/tags", {"tag": "work"}), ("POST", "/api/tags", {"tag": "urgent"}),
        ("POST", "/api/visits/home", None), ("POST", "/api/visits/home", None),
        ("POST", "/api/visits/docs", None), ("PUT", "/api/draft", {"text": "some text"}),
        ("DELETE", "/api/prefs/lang", None), ("POST", "/api/tags", {"tag": "ünï"}),
        ("DELETE", "/api/tags/%C3%BCn%C3%AF", None),
    ]
    for rev, (method, path, payload) in enumerate(steps, start=2):
        resp = await notes.request(method, path, json=payload, headers=cookie(sid))
        await body(resp, 200)
        assert reported(resp) == (sid, str(rev), "n1"), path
    state = await body(await notes.get("/api/state", headers=cookie(sid)), 200)
    assert state == {"user": {"id": "u-1001", "name": "Ann Lee"}, "prefs": {"theme": "dark"},
                     "tags": ["urgent", "work"], "visits": {"home": 2, "docs": 1},
                     "draft": "some text"}
    for method, path, payload in [("POST", "/api/tags", {"tag": "work"}),
                                  ("DELETE", "/api/tags/nope", None),
                                  ("PUT", "/api/prefs/theme", {"value": "dark"})]:
        resp = await notes.request(method, path, json=payload, headers=cookie(sid))
        assert await body(resp, 200) == state and reported(resp) == (sid, "12", "n1")
    raw = await body(await notes.get("/api/debug/raw", headers=cookie(sid)), 200)
    assert [h["page"] for h in raw["history"]] == ["home", "home", "docs"]
    assert all(isinstance(h["at"], float) for h in raw["history"])


async def test_raw_values_the_views_do_not_fit_never_break_a_route(notes: Client) -> None:
    sid = await guest(notes)
    for key, value in [("prefs", 5), ("tags", {"a": 1}), ("visits", ["x"]), ("draft", 7),
                       ("_auth_user_id", 1001)]:
        resp = await notes.put(f"/api/debug/raw/{key}", json=value, headers=cookie(sid))
        await body(resp, 200)
    assert await body(await notes.get("/api/state", headers=cookie(sid)), 200) == EMPTY_STATE
    assert (await body(await notes.get("/api/debug/raw", headers=cookie(sid)), 200))["prefs"] == 5
    await body(await notes.get("/api/me", headers=cookie(sid)), 401)
    state = await body(await notes.put("/api/prefs/theme", json={"value": "x"},
                                       headers=cookie(sid)), 200)
    assert state["prefs"] == {"theme": "x"}


async def test_headers_on_every_response_to_a_request_with_a_session(notes: Client) -> None:
    sid = await guest(notes)
    for method, path in [("GET", "/about"), ("GET", "/healthz"), ("GET", "/nowhere"),
                         ("DELETE", "/api/state"), ("GET", "/api/state")]:
        resp = await notes.request(method, path, headers=cookie(sid))
        assert reported(resp) == (sid, "1", "n1"), path
    resp = await notes.put("/api/draft", data=b"{", headers=cookie(sid))
    assert resp.status == 400 and reported(resp) == (sid, "1", "n1")
    resp = await notes.get("/about", headers=cookie("gone-or-never-was"))
    assert reported(resp) == ("gone-or-never-was", "0", "n1")
    for odd in ("short", "not a session id at all", "x" * 129):  # never echoed back
        resp = await notes.get("/about", headers=cookie(odd))
        assert reported(resp) is None, odd


# --- malformed input -----------------------------------------------------------

@pytest.mark.parametrize(("method", "path", "raw", "code"), [
    ("POST", "/login", b"{", "malformed_json"),
    ("POST", "/login", b"[]", "body_not_object"),
    ("POST", "/login", b'{"username": "ann"}', "invalid_field"),
    ("POST", "/login", b'{"username": 1, "password": "x"}', "invalid_field"),
    ("PUT", "/api/prefs/theme", b'{"value": 5}', "invalid_field"),
    ("PUT", "/api/prefs/theme", b'{"value": null}', "invalid_field"),
    ("PUT", "/api/prefs/theme", b'{"value": "' + b"x" * 201 + b'"}', "invalid_field"),
    ("PUT", "/api/prefs/th%20eme", b'{"value": "x"}', "invalid_key"),
    ("DELETE", "/api/prefs/" + "k" * 65, b"", "invalid_key"),
    ("POST", "/api/tags", b'{"tag": true}', "invalid_field"),
    ("POST", "/api/tags", b'{"tag": ""}', "invalid_field"),
    ("POST", "/api/tags", b'{"tag": " padded"}', "invalid_tag"),
    ("POST", "/api/tags", b'{"tag": "a\\u0000b"}', "invalid_tag"),
    ("DELETE", "/api/tags/%20x", b"", "invalid_tag"),
    ("POST", "/api/visits/a%3Cb", b"", "invalid_page"),
    ("PUT", "/api/draft", b'{"text": ["x"]}', "invalid_field"),
    ("PUT", "/api/draft", b'{"text": NaN}', "malformed_json"),
    ("PUT", "/api/draft", b"\xff\xfe", "malformed_json"),
    ("PUT", "/api/draft", b"", "malformed_json"),
    ("PUT", "/api/debug/raw/x", b"1e999", "malformed_json"),
    ("PUT", "/api/debug/raw/x", b"[Infinity]", "malformed_json"),
    ("PUT", "/api/debug/raw/x", b"[" * 50_000, "malformed_json"),
])
async def test_malformed_input_is_a_400_and_makes_no_session(
        notes: Client, method: str, path: str, raw: bytes, code: str) -> None:
    resp = await notes.request(method, path, data=raw,
                               headers={"Content-Type": "application/json"})
    assert (await body(resp, 400))["error"] == code
    assert "Set-Cookie" not in resp.headers and len(store(notes)) == 0


async def test_an_app_body_over_the_limit_is_a_413(notes: Client) -> None:
    resp = await notes.put("/api/draft", data=b" " * (256 * 1024 + 1))
    assert (await body(resp, 413))["error"] == "body_too_large"
    assert len(store(notes)) == 0


# --- the session-export hook ---------------------------------------------------

async def export(client: Client, sid: str, headers: dict[str, str], fence: int | None = None,
                 status: int = 200) -> Any:
    extra = {"X-Strangler-Fence": str(fence)} if fence is not None else {}
    return await body(await client.get(HOOK.format(sid), headers={**headers, **extra}), status)


async def import_(client: Client, sid: str, headers: dict[str, str], data: Any,
                  expected: int | None, fence: int | None = None, status: int = 200) -> Any:
    payload: dict[str, Any] = {"data": data, "expected_revision": expected}
    if fence is not None:
        payload["fence"] = fence
    return await body(await client.put(HOOK.format(sid), json=payload, headers=headers), status)


async def test_the_hook_needs_the_token(notes: Client, token_headers: dict[str, str]) -> None:
    sid = await guest(notes)
    for headers in ({}, {"X-Internal-Token": "wrong"}, {"X-Internal-Token": ""},
                    {"X-Internal-Token": token_headers["X-Internal-Token"] + "x"}):
        for method in ("GET", "PUT", "DELETE"):
            resp = await notes.request(method, HOOK.format(sid), json={"data": {},
                                       "expected_revision": None}, headers=headers)
            assert await body(resp, 403) == {"error": "forbidden"}, (method, headers)
    assert store(notes).revision(sid) == 1


async def test_the_hook_is_off_without_a_token(aiohttp_client: Any) -> None:
    client: Client = await aiohttp_client(create_app(Settings(node_id="n2")))
    for method in ("GET", "PUT", "DELETE"):
        resp = await client.request(method, HOOK.format("a" * 43),
                                    headers={"X-Internal-Token": ""})
        assert await body(resp, 503) == {"error": "internal_disabled"}


async def test_export_of_a_session(notes: Client, token_headers: dict[str, str]) -> None:
    sid = await log_in(notes, "ann")
    exported = await export(notes, sid, token_headers)
    assert list(exported) == ["session_id", "revision", "node", "data"]
    assert exported["session_id"] == sid and exported["revision"] == 1
    assert exported["node"] == "n1"
    assert exported["data"]["_auth_user_id"] == "u-1001"
    raw = await notes.get("/api/debug/raw", headers=cookie(sid))
    assert await raw.read() == json.dumps(exported["data"]).encode()
    for unknown in ("b" * 43, "short", "has%20space"):
        assert await export(notes, unknown, token_headers, status=404) == {"error": "not_found"}


async def test_revisions_count_creation_changes_and_imports(
        notes: Client, token_headers: dict[str, str]) -> None:
    sid = await guest(notes)
    await body(await notes.post("/api/tags", json={"tag": "a"}, headers=cookie(sid)), 200)
    assert (await export(notes, sid, token_headers))["revision"] == 2
    data = (await export(notes, sid, token_headers))["data"]
    assert await import_(notes, sid, token_headers, data, expected=2) == {"revision": 3}
    assert await import_(notes, sid, token_headers, data, expected=None) == {"revision": 4}
    await body(await notes.post("/api/tags", json={"tag": "b"}, headers=cookie(sid)), 200)
    resp = await notes.get("/api/state", headers=cookie(sid))
    assert reported(resp) == (sid, "5", "n1") and (await body(resp, 200))["tags"] == ["a", "b"]


async def test_a_stale_expected_revision_is_a_409(
        notes: Client, token_headers: dict[str, str]) -> None:
    sid = await guest(notes)
    assert await import_(notes, sid, token_headers, {"x": 1}, expected=7, status=409) == {
        "revision": 1, "fenced": False}
    unknown = "u" * 43
    assert await import_(notes, unknown, token_headers, {}, expected=1, status=409) == {
        "revision": 0, "fenced": False}
    assert await import_(notes, unknown, token_headers, {"new": True}, expected=0) == {
        "revision": 1}
    assert (await export(notes, unknown, token_headers))["data"] == {"new": True}
    assert store(notes).revision(sid) == 1


async def test_fences_only_grow(notes: Client, token_headers: dict[str, str]) -> None:
    sid = await guest(notes)
    await export(notes, sid, token_headers, fence=10)
    assert await import_(notes, sid, token_headers, {"a": 1}, expected=1, fence=9,
                         status=409) == {"revision": 1, "fenced": True}
    assert await import_(notes, sid, token_headers, {"a": 1}, expected=1, fence=10) == {
        "revision": 2}
    await export(notes, sid, token_headers, fence=3)  # a lower fence is noted nowhere
    assert await import_(notes, sid, token_headers, {"a": 2}, expected=2, fence=10) == {
        "revision": 3}
    unknown = "f" * 43  # a fence is noted for an id with no session too
    await export(notes, unknown, token_headers, fence=5, status=404)
    assert await import_(notes, unknown, token_headers, {}, expected=0, fence=4,
                         status=409) == {"revision": 0, "fenced": True}


async def test_the_export_reports_the_last_fenced_import(
        notes: Client, token_headers: dict[str, str]) -> None:
    sid = await log_in(notes, "bo")
    data = (await export(notes, sid, token_headers, fence=1))["data"]
    await import_(notes, sid, token_headers, data, expected=1, fence=2)
    exported = await export(notes, sid, token_headers)
    assert exported["revision"] == 2 and exported["imported"] == {"fence": 2, "revision": 2}
    await body(await notes.put("/api/draft", json={"text": "mine"}, headers=cookie(sid)), 200)
    exported = await export(notes, sid, token_headers)  # a change the app made since
    assert exported["revision"] == 3 and exported["imported"] == {"fence": 2, "revision": 2}
    await import_(notes, sid, token_headers, exported["data"], expected=3)
    assert "imported" not in await export(notes, sid, token_headers)


AWKWARD: dict[str, Any] = {
    "prefs": {"theme": "dark", "lang": "en"},
    "ü-ключ-键": ["nested", [1, [2, [3.5, {"deep": None}]]], True, False, -0.0],
    "floats": [0.1, 1733190000.25, 5e-324, 1.7976931348623157e308, -2.5e-10],
    "ints": [0, -1, 2**63, 10**40],
    "text": "tab\t\"quote\" \\ back \u2028 😀 \ud800",
    "empty": {"": "", " ": []},
}


async def test_undeclared_keys_round_trip_byte_identical(
        notes: Client, token_headers: dict[str, str]) -> None:
    sid = await log_in(notes, "cy")
    for key, value in AWKWARD.items():
        resp = await notes.put(f"/api/debug/raw/{key}", json=value, headers=cookie(sid))
        await body(resp, 200)
    await body(await notes.post("/api/visits/home", headers=cookie(sid)), 200)
    original = await (await notes.get("/api/debug/raw", headers=cookie(sid))).read()
    assert b"_csrf" in original and b"created_at" in original and b"\\u00fc" in original
    revision = store(notes).revision(sid)
    for fence in range(1, 51):
        exported = await export(notes, sid, token_headers, fence=fence)
        assert json.dumps(exported["data"]).encode() == original
        revision = (await import_(notes, sid, token_headers, exported["data"],
                                  expected=revision, fence=fence))["revision"]
    assert revision == store(notes).revision(sid) == 1 + len(AWKWARD) + 1 + 50
    assert await (await notes.get("/api/debug/raw", headers=cookie(sid))).read() == original


async def test_imports_store_any_object_and_nothing_else(
        notes: Client, token_headers: dict[str, str]) -> None:
    sid = "i" * 43
    for bad in [b"{", b"[]", b'{"data": {}}', b'{"expected_revision": null}',
                b'{"data": [], "expected_revision": null}',
                b'{"data": "x", "expected_revision": null}',
                b'{"data": {}, "expected_revision": true}',
                b'{"data": {}, "expected_revision": 1.0}',
                b'{"data": {}, "expected_revision": -1}',
                b'{"data": {}, "expected_revision": null, "fence": "3"}',
                b'{"data": {}, "expected_revision": null, "fence": -3}',
                b'{"data": {"x": NaN}, "expected_revision": null}']:
        resp = await notes.put(HOOK.format(sid), data=bad, headers=token_headers)
        assert resp.status == 400, bad
    resp = await notes.put(HOOK.format("bad id"), json={"data": {}, "expected_revision": None},
                           headers=token_headers)
    assert (await body(resp, 400))["error"] == "bad_session_id"
    for raw in ["-1", "x", "1.5", "1" * 20, "+1", "1 2", "\u0661"]:
        resp = await notes.get(HOOK.format(sid), headers={**token_headers,
                                                         "X-Strangler-Fence": raw})
        assert (await body(resp, 400))["error"] == "bad_fence", raw
    assert len(store(notes)) == 0
    profile_misfit = {"prefs": 5, "tags": "x", "_auth_user_id": 1001}
    await import_(notes, sid, token_headers, profile_misfit, expected=None, fence=0)
    assert (await export(notes, sid, token_headers))["data"] == profile_misfit
    assert await body(await notes.get("/api/state", headers=cookie(sid)), 200) == EMPTY_STATE


async def test_import_body_limit(notes: Client, token_headers: dict[str, str]) -> None:
    sid, limit = "l" * 43, 256 * 1024
    envelope = b'{"expected_revision": null, "data": {"pad": ""}}'
    exact = envelope.replace(b'""', b'"' + b"p" * (limit - len(envelope)) + b'"')
    assert len(exact) == limit
    resp = await notes.put(HOOK.format(sid), data=exact, headers=token_headers)
    assert await body(resp, 200) == {"revision": 1}
    resp = await notes.put(HOOK.format(sid), data=exact + b" ", headers=token_headers)
    assert (await body(resp, 413))["error"] == "body_too_large"

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(5):
            yield b" " * (64 * 1024)
        yield exact

    resp = await notes.put(HOOK.format(sid), data=chunked(), headers=token_headers)
    assert (await body(resp, 413))["error"] == "body_too_large"
    assert store(notes).revision(sid) == 1


async def test_delete(notes: Client, token_headers: dict[str, str]) -> None:
    sid = await log_in(notes, "ann")
    resp = await notes.delete(HOOK.format(sid), headers=token_headers)
    assert resp.status == 204 and await resp.read() == b""
    await export(notes, sid, token_headers, status=404)
    resp = await notes.get("/api/me", headers=cookie(sid))
    assert resp.status == 401 and reported(resp) == (sid, "0", "n1")
    for unknown in (sid, "never-was-a-session-id", "x"):
        assert (await notes.delete(HOOK.format(unknown), headers=token_headers)).status == 204


async def test_nesting_is_limited_the_same_for_imports_and_writes(
        notes: Client, token_headers: dict[str, str]) -> None:
    def nested(levels: int) -> Any:  # ``levels`` arrays inside each other
        value: Any = []
        for _ in range(levels - 1):
            value = [value]
        return value

    sid = "n" * 43
    await import_(notes, sid, token_headers, {"x": nested(63)}, expected=None)  # data: 64 deep
    assert (await import_(notes, sid, token_headers, {"x": nested(64)}, expected=None,
                          status=400))["error"] == "too_deep"
    exported = await export(notes, sid, token_headers)
    await import_(notes, sid, token_headers, exported["data"], expected=1)
    await body(await notes.put("/api/draft", json={"text": "ok"}, headers=cookie(sid)), 200)
    resp = await notes.put("/api/debug/raw/y", json=nested(64), headers=cookie(sid))
    assert (await body(resp, 400))["error"] == "too_deep"
    await body(await notes.put("/api/debug/raw/y", json=nested(63), headers=cookie(sid)), 200)
    assert store(notes).revision(sid) == 4
