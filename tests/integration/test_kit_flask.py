"""The Flask kit (kits/flask) in a real Flask app (tests/apps/flask_notes) under gunicorn.

One stack for the module: two Flask nodes as legacy, the notes app's new
service in Node (tests/apps/notes_node) as new, one gateway with the notes
profile. ``strangler hook check`` holds a node's hook to every rule; Flask's
default cookie session is refused at start; a node's own answers carry the
session headers; and a session goes legacy -> new -> legacy through the
gateway with the user, the declared fields and the undeclared keys intact.
"""

from __future__ import annotations

import ast
import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from flask import Flask, session
from strangler_flask import Strangler, StranglerConfigError
from yarl import URL

from testkit.flask_notes import flask_node, flask_notes_session
from tests.apps.flask_notes.app import create_app
from tests.conftest import REDIS_URL
from tests.support.notes_stack import NotesStack, exports, typed
from tests.support.notes_user import NotesModel, NotesUser, do
from tests.support.procs import ROOT
from tests.support.shop import Admin

UNDECLARED = ("_csrf", "created_at", "flash", "history", "_permanent")
"""The Flask app's own keys (Flask-Session's ``_permanent`` among them): no profile
declares them, and they must come back exactly as they were."""


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[NotesStack]:
    stack = NotesStack(tmp_path_factory.mktemp("flask") / "stack", REDIS_URL,
                       session=flask_notes_session(), legacy_command=flask_node)
    failed_before = request.session.testsfailed
    try:
        stack.start()
    except BaseException:
        print(stack.logs())
        stack.stop()
        raise
    try:
        yield stack
    finally:
        if request.session.testsfailed > failed_before:
            print(stack.logs())
        stack.stop()


@pytest.fixture
def admin(stack: NotesStack) -> Admin:
    return Admin(stack.admin_url(), stack.admin_token)


# ---------------------------------------------------------------- the hook, by the check

def test_strangler_hook_check_passes_every_rule_on_a_flask_node(stack: NotesStack) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "strangler", "hook", "check", stack.legacy_url("a"),
         "--token-file", str(stack.dir / "internal-token"), "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.stdout, f"the check printed nothing (exit {done.returncode}): {done.stderr}"
    report = json.loads(done.stdout)
    failed = [r for r in report["results"] if r["result"] != "pass"]
    for rule in failed:
        print(f"rule {rule['rule']} {rule['title']}: {rule['result']}: {rule['seen']}")
    assert [r["rule"] for r in report["results"]] == list(range(1, 11)), report["results"]
    for rule in report["results"]:
        assert rule["result"] == "pass", f"rule {rule['rule']} ({rule['title']}): {rule['seen']}"
    assert (report["ok"], report["node"], report["left_behind"]) == (True, "a", [])
    assert done.returncode == 0, done.stderr


# ---------------------------------------------------------------- set-up refused

def test_flasks_default_cookie_session_is_refused_at_start() -> None:
    app = Flask(__name__)
    app.config.update(SECRET_KEY="k" * 32, STRANGLER_NODE_ID="a", STRANGLER_INTERNAL_TOKEN="t",
                      STRANGLER_HEADERS=["X-S", "X-R", "X-N"])
    with pytest.raises(StranglerConfigError) as refused:
        Strangler(app)
    message = str(refused.value)
    assert "Flask's default session (SecureCookieSessionInterface)" in message, message
    assert "signed cookie on the client" in message and "Flask-Session" in message, message
    assert "strangler_hook" not in app.blueprints, "the hook was registered anyway"


@pytest.mark.parametrize(("config", "key"), [
    ({"STRANGLER_HEADERS": ["X-S", "X-R", "X-N"]}, "STRANGLER_NODE_ID"),
    ({"STRANGLER_NODE_ID": "a"}, "STRANGLER_HEADERS"),
    ({"STRANGLER_NODE_ID": "a", "STRANGLER_HEADERS": ["X-S", "X-S", "X-N"]},
     "STRANGLER_HEADERS"),
    ({"STRANGLER_NODE_ID": "a", "STRANGLER_HEADERS": ["X-S", "X-R", "X-N"],
      "STRANGLER_INTERNAL_TOKEN_FILE": "/nonexistent/token"}, "STRANGLER_INTERNAL_TOKEN_FILE"),
    ({"STRANGLER_NODE_ID": "a", "STRANGLER_HEADERS": ["X-S", "X-R", "X-N"],
      "STRANGLER_MAX_IMPORT_BYTES": 0}, "STRANGLER_MAX_IMPORT_BYTES"),
])
def test_a_bad_setting_is_refused_naming_its_key(config: dict[str, Any], key: str) -> None:
    from cachelib import SimpleCache
    from flask_session import Session

    app = Flask(__name__)
    app.config.update(SESSION_TYPE="cachelib", SESSION_CACHELIB=SimpleCache(), **config)
    Session(app)
    with pytest.raises(StranglerConfigError, match=key):
        Strangler(app)


def test_without_a_token_the_hook_is_off_and_the_app_works(tmp_path: Path) -> None:
    (tmp_path / "blank").write_text("  \n")
    for app in (create_app("off", None), create_app("off", tmp_path / "blank")):
        client = app.test_client()
        reply = client.get("/_internal/sessions/abc", headers={"X-Internal-Token": ""})
        assert reply.status_code == 503 and _body(reply)["error"] == "hook_off", reply.data
        assert client.put("/api/draft", json={"text": "x"}).headers["X-Notes-Rev"] == "1"


def test_the_headers_can_be_named_as_config_yaml_names_them(tmp_path: Path) -> None:
    names = {"session_id": "X-Sid", "revision": "X-Rev", "node": "X-Node"}
    client = create_app("m", None, STRANGLER_HEADERS=names).test_client()
    reply = client.put("/api/draft", json={"text": "x"})
    assert (reply.headers["X-Rev"], reply.headers["X-Node"]) == ("1", "m"), reply.headers
    assert reply.headers["X-Sid"] and "X-Notes-Rev" not in reply.headers


# ---------------------------------------------------------------- the headers, at a node

async def _node_call(http: aiohttp.ClientSession, stack: NotesStack, method: str, path: str,
                     body: Any = None) -> tuple[int, Any, dict[str, str]]:
    async with http.request(method, stack.legacy_url("b") + path, json=body) as resp:
        raw = await resp.read()
        headers = {k: v for k, v in resp.headers.items() if k.lower().startswith("x-notes-")}
        return resp.status, json.loads(raw) if raw else None, headers


async def test_a_nodes_answers_report_the_session_it_ended_with(stack: NotesStack) -> None:
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        status, _, headers = await _node_call(http, stack, "GET", "/api/state")
        assert (status, headers) == (200, {}), "no cookie, no session made: no headers"
        status, _, headers = await _node_call(http, stack, "PUT", "/api/prefs/theme",
                                              {"value": "dark"})
        guest = headers.get("X-Notes-Session")
        assert status == 200 and guest, headers
        assert headers["X-Notes-Rev"] == "1" and headers["X-Notes-Node"] == "b", headers
        status, _, headers = await _node_call(http, stack, "PUT", "/api/prefs/theme",
                                              {"value": "dark"})
        assert (status, headers["X-Notes-Rev"]) == (200, "1"), "a write that changed nothing"
        status, _, headers = await _node_call(http, stack, "POST", "/api/visits/home")
        assert (status, headers["X-Notes-Session"], headers["X-Notes-Rev"]) == (200, guest, "2")

        status, body, headers = await _node_call(http, stack, "POST", "/login",
                                                 {"username": "cy", "password": "cy-pass"})
        assert (status, body) == (200, {"id": "u-1003", "name": "Cy Díaz"})
        user_sid = headers["X-Notes-Session"]
        assert user_sid != guest and headers["X-Notes-Rev"] == "1", headers
        assert [c.value for c in jar if c.key == "sessionid"] == [user_sid]
        found = await exports(stack, guest)
        assert found == [], "the guest id outlived the login"
        status, body, headers = await _node_call(http, stack, "GET", "/api/state")
        assert body["prefs"] == {"theme": "dark"} and body["visits"] == {"home": 1}, body
        assert headers == {"X-Notes-Session": user_sid, "X-Notes-Rev": "1",
                           "X-Notes-Node": "b"}, headers

        status, _, headers = await _node_call(http, stack, "POST", "/logout")
        assert (status, headers["X-Notes-Session"], headers["X-Notes-Rev"]) == \
            (200, user_sid, "0")

    stale = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=stale, cookies={"sessionid": user_sid}) as http:
        status, _, headers = await _node_call(http, stack, "GET", "/api/me")
        assert (status, headers["X-Notes-Session"], headers["X-Notes-Rev"]) == \
            (401, user_sid, "0"), "an unknown session is reported at revision 0"


async def test_concurrent_changes_each_move_the_revision(stack: NotesStack) -> None:
    """Eight threads of one node change one session at once: Flask-Session keeps the last
    writer's data, but every change still takes its own revision."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        status, _, headers = await _node_call(http, stack, "POST", "/login",
                                              {"username": "dee", "password": "dee-pass"})
        assert (status, headers.get("X-Notes-Rev")) == (200, "1"), headers
        replies = await asyncio.gather(*(_node_call(http, stack, "PUT", f"/api/prefs/p{i}",
                                                    {"value": str(i)}) for i in range(8)))
        assert [r[0] for r in replies] == [200] * 8, replies
        revisions = sorted(int(r[2]["X-Notes-Rev"]) for r in replies)
        assert revisions == list(range(2, 10)), revisions
        status, _, headers = await _node_call(http, stack, "GET", "/api/state")
        assert headers["X-Notes-Rev"] == "9", headers


# ---------------------------------------------------------------- legacy -> new -> legacy

async def _write(user: NotesUser, model: NotesModel, op: tuple[str, ...],
                 backend: str) -> None:
    reply = await do(user, op)
    assert (reply.status, reply.backend) == (200, backend), (op, reply.status, reply.body)
    model.apply(op)
    assert model.matches(reply.body), f"{op}: {reply.body} != model {model.view()}"


async def _state(user: NotesUser, model: NotesModel, backend: str, what: str) -> None:
    reply = await user.state()
    assert (reply.status, reply.backend) == (200, backend), (what, reply.status, reply.body)
    assert reply.body["user"] == {"id": "u-1001", "name": "Ann Lee"}, (what, reply.body)
    assert model.matches(reply.body), f"{what}: {reply.body} != model {model.view()}"


async def _staged(admin: Admin, stage: str) -> None:
    reply = await admin.set_route("state", stage)
    assert reply.status == 200, f"flip to {stage} refused: {reply.body}"


async def _export(stack: NotesStack, sid: str) -> dict[str, Any]:
    found = await exports(stack, sid)
    assert len(found) == 1, f"{len(found)} Flask nodes hold the session"
    data: dict[str, Any] = found[0]["data"]
    return data


async def test_a_session_goes_legacy_new_legacy_through_the_gateway(stack: NotesStack,
                                                                    admin: Admin) -> None:
    model = NotesModel()
    async with NotesUser(stack.url()) as user:
        await _staged(admin, "legacy")
        login = await user.login("ann")
        assert (login.status, login.backend) == (200, "legacy"), login.body
        sid = user.session_id
        assert sid, "the login set no sessionid"
        for op in (("set_pref", "lang", "en-é"), ("add_tag", "work"), ("add_tag", "ü-tag"),
                   ("visit", "home"), ("visit", "home"), ("set_draft", "from flask 😀")):
            await _write(user, model, op, "legacy")
        before = await _export(stack, sid)
        assert set(UNDECLARED) <= set(before), before
        assert "_strangler" not in before, "the export shows the kit's reserved key"

        await _staged(admin, "new")
        await _state(user, model, "new", "on new, after legacy's writes")
        me = await user.me()
        assert (me.status, me.body, me.backend) == (200, {"id": "u-1001", "name": "Ann Lee"},
                                                    "new")
        for op in (("set_pref", "theme", "dark"), ("delete_pref", "lang"),
                   ("remove_tag", "work"), ("add_tag", "from-new"), ("visit", "docs"),
                   ("visit", "home"), ("set_draft", "written on new")):
            await _write(user, model, op, "new")

        await _staged(admin, "legacy")
        await _state(user, model, "legacy", "back on legacy, after new's writes")
        assert user.session_id == sid, "the session changed its id on the way"
        await _write(user, model, ("add_tag", "legacy-again"), "legacy")
        after = await _export(stack, sid)

    for key in UNDECLARED:
        assert typed(after[key]) == typed(before[key]), f"{key}: {after[key]!r}"
    assert (after["_auth_user_id"], after["_auth_user_name"]) == ("u-1001", "Ann Lee")
    assert {k: after.get(k) for k in ("prefs", "tags", "visits", "draft")} == {
        "prefs": model.prefs, "tags": sorted(model.tags), "visits": dict(model.visits),
        "draft": model.draft}


# ---------------------------------------------------------------- saves vs. imports, in process

TOKEN = "in-process-token"
HOOK = {"X-Internal-Token": TOKEN}


def _app_with_a_meddling_route(tmp_path: Path) -> Flask:
    """The Flask notes app, plus a route that lets the hook act in the middle of a request
    (as a gateway's import or delete on another thread would) and then changes the
    session or not."""
    (tmp_path / "token").write_text(TOKEN)
    app = create_app("p", tmp_path / "token")

    def meddle(action: str, then: str) -> str:
        sessions = app.extensions["strangler"].sessions
        sid = session.sid  # type: ignore[attr-defined]
        if action == "import":
            assert sessions.import_session(sid, {"from": "import"}, None, 5).ok
        else:
            sessions.delete(sid)
        if then == "change":
            session["from"] = "the request"
        elif then == "tuple":
            session["pair"] = (1, 2)
        return "done"

    app.add_url_rule("/_test/<action>/<then>", view_func=meddle, methods=["POST"])
    return app


def _body(reply: Any) -> Any:
    return json.loads(reply.data)


def _revision(reply: Any) -> int:
    return int(reply.headers["X-Notes-Rev"])


def test_an_import_during_a_request_that_changes_nothing_is_not_undone(tmp_path: Path) -> None:
    client = _app_with_a_meddling_route(tmp_path).test_client()
    assert _revision(client.put("/api/draft", json={"text": "mine"})) == 1
    reply = client.post("/_test/import/nothing")
    assert (reply.status_code, _revision(reply)) == (200, 2), "the import's revision"
    sid = reply.headers["X-Notes-Session"]
    export = _body(client.get(f"/_internal/sessions/{sid}", headers=HOOK))
    assert export["data"] == {"from": "import"}, "the refresh undid the import"
    assert (export["revision"], export["imported"]) == (2, {"fence": 5, "revision": 2})


def test_a_change_after_an_import_takes_the_next_revision(tmp_path: Path) -> None:
    client = _app_with_a_meddling_route(tmp_path).test_client()
    assert _revision(client.put("/api/draft", json={"text": "mine"})) == 1
    reply = client.post("/_test/import/change")
    assert _revision(reply) == 3, "import 2, then the request's change 3"
    sid = reply.headers["X-Notes-Session"]
    export = _body(client.get(f"/_internal/sessions/{sid}", headers=HOOK))
    assert export["revision"] == 3 and export["data"]["from"] == "the request", export
    assert export["imported"] == {"fence": 5, "revision": 2}, "the last import is still 2"


def test_a_session_deleted_during_a_request_stays_deleted(tmp_path: Path) -> None:
    client = _app_with_a_meddling_route(tmp_path).test_client()
    sid = client.put("/api/draft", json={"text": "mine"}).headers["X-Notes-Session"]
    reply = client.post("/_test/delete/nothing")
    assert (reply.headers["X-Notes-Session"], _revision(reply)) == (sid, 0)
    assert client.get(f"/_internal/sessions/{sid}", headers=HOOK).status_code == 404


def test_a_change_to_a_session_deleted_meanwhile_makes_a_new_one(tmp_path: Path) -> None:
    client = _app_with_a_meddling_route(tmp_path).test_client()
    sid = client.put("/api/draft", json={"text": "mine"}).headers["X-Notes-Session"]
    reply = client.post("/_test/delete/change")
    new = reply.headers["X-Notes-Session"]
    assert new != sid and _revision(reply) == 1, "the deleted id was used again"
    assert client.get(f"/_internal/sessions/{sid}", headers=HOOK).status_code == 404
    export = _body(client.get(f"/_internal/sessions/{new}", headers=HOOK))
    assert export["data"]["draft"] == "mine" and export["data"]["from"] == "the request"
    cookie = client.get_cookie("sessionid")
    assert cookie is not None and cookie.value == new, "the new id's cookie was not set"


def test_a_session_json_cannot_carry_is_refused_not_changed(tmp_path: Path) -> None:
    client = _app_with_a_meddling_route(tmp_path).test_client()
    sid = client.put("/api/draft", json={"text": "mine"}).headers["X-Notes-Session"]
    assert client.post("/_test/import/tuple").status_code == 200
    reply = client.get(f"/_internal/sessions/{sid}", headers=HOOK)
    body = _body(reply)
    assert reply.status_code == 422 and body["error"] == "not_json", body
    assert "['pair']: a tuple" in body["detail"], body


def test_lone_surrogates_and_odd_numbers_round_trip(tmp_path: Path) -> None:
    client = _app_with_a_meddling_route(tmp_path).test_client()
    raw = ('{"data": {"s": "\\ud800 \\udfff", "\\udc00": [1.0, -0.0, 1E+300, 12345678901234'
           '567890123456789, 5e-324]}, "expected_revision": null}')
    put = client.put("/_internal/sessions/odd", data=raw, headers=HOOK)
    assert put.status_code == 200, put.data
    data = json.loads(client.get("/_internal/sessions/odd", headers=HOOK).data)["data"]
    assert typed(data) == typed(json.loads(raw)["data"]), data
    for bad in (b'{"data": {"x": NaN}, "expected_revision": null}',
                b'{"data": {"x": 1e999}, "expected_revision": null}',
                b'{"data": {"x": Infinity}, "expected_revision": null}',
                b'{"data": {"_strangler": 1}, "expected_revision": true}',
                b'\xff'):
        reply = client.put("/_internal/sessions/odd", data=bad, headers=HOOK)
        assert reply.status_code == 400, (bad, reply.data)


def test_the_reserved_key_is_never_taken_from_an_import(tmp_path: Path) -> None:
    client = _app_with_a_meddling_route(tmp_path).test_client()
    body = {"data": {"_strangler": {"revision": 99, "imported": [1, 99]}, "k": 1},
            "expected_revision": None}
    assert _body(client.put("/_internal/sessions/rk", json=body, headers=HOOK)) == \
        {"revision": 1}
    export = _body(client.get("/_internal/sessions/rk", headers=HOOK))
    assert (export["revision"], export["data"]) == (1, {"k": 1}), export
    assert "imported" not in export


# ---------------------------------------------------------------- ids, decoded by a server

@pytest.mark.parametrize("sid", ["a/b", "/lead", "50%25,x", "!#$&'()*+-.:<=>?@[]^_`|~"])
async def test_any_cookie_value_is_an_id_the_hook_decodes(stack: NotesStack, sid: str) -> None:
    url = URL(stack.legacy_url("a")).with_path(
        f"/_internal/sessions/{quote(sid, safe='')}", encoded=True)
    headers = {"X-Internal-Token": stack.internal_token}
    async with aiohttp.ClientSession() as http:
        async with http.put(url, json={"data": {"id": sid}, "expected_revision": None},
                            headers=headers) as resp:
            assert resp.status == 200, await resp.text()
        async with http.get(url, headers=headers) as resp:
            body = await resp.json()
            assert (resp.status, body["session_id"], body["data"]) == (200, sid, {"id": sid})
        async with http.delete(url, headers=headers) as resp:
            assert resp.status == 204


# ---------------------------------------------------------------- what the kit and the app import

KIT = ROOT / "kits" / "flask" / "strangler_flask"
FLASK_APP = ROOT / "tests" / "apps" / "flask_notes"
FRAMEWORK = frozenset(sys.stdlib_module_names) | {"__future__", "flask", "flask_session",
                                                   "werkzeug"}


def _imports_outside(package: Path, allowed: frozenset[str]) -> list[str]:
    """``file:line: module`` for every import of something not in ``allowed`` (relative
    imports that stay inside the package are fine)."""
    found = []
    for path in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] if node.level == 0 else \
                    ["(outside the package)"] if node.level > 1 else []
            else:
                continue
            found += [f"{path.name}:{node.lineno}: {n}" for n in names
                      if n.split(".")[0] not in allowed]
    return found


def test_the_kit_imports_only_flask_flask_session_and_itself() -> None:
    """It installs on its own from kits/flask: nothing of Strangler's, no other framework."""
    assert len(list(KIT.glob("*.py"))) >= 8, "the kit is not where the test looks"
    assert _imports_outside(KIT, FRAMEWORK) == []


def test_the_flask_app_uses_the_kit_as_any_app_would() -> None:
    assert _imports_outside(FLASK_APP, FRAMEWORK | {"cachelib", "strangler_flask"}) == []
