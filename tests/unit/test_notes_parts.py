"""The notes app's parts without HTTP: the cookie rule, the store, the session data, JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.apps.notes import data
from tests.apps.notes.bodies import depth, parse_json
from tests.apps.notes.cookies import last_cookie, session_id
from tests.apps.notes.errors import NotesError
from tests.apps.notes.store import SessionStore
from tests.apps.notes.users import DEFAULT_USERS, Users, UsersFileError, load_users

ANN, BO = DEFAULT_USERS[0], DEFAULT_USERS[1]


# --- cookies: the last sessionid wins ---------------------------------------

@pytest.mark.parametrize(("headers", "expected"), [
    ([], None),
    (["theme=dark"], None),
    (["sessionid=a"], "a"),
    (["sessionid=a; sessionid=b"], "b"),
    (["sessionid=b;sessionid=a"], "a"),
    (["sessionid=a; other=x; sessionid=b; more=y"], "b"),
    (["sessionid=a", "sessionid=b"], "b"),            # several Cookie headers, in order
    (["  sessionid =  a  "], "a"),                    # spaces around name and value
    (['sessionid="a"'], "a"),                         # one pair of quotes removed
    (["sessionid=a=b"], "a=b"),                       # split on the first "="
    (["sessionid=a; sessionid="], None),              # the last one is empty: no session
    (["sessionid=; sessionid=a"], "a"),
    (["sessionid"], None),                            # no "=": not a sessionid pair
    (["xsessionid=a; sessionidx=b"], None),
])
def test_last_sessionid_wins(headers: list[str], expected: str | None) -> None:
    assert last_cookie(headers) == expected


GOOD = "A" * 20 + "-_" + "z" * 21


@pytest.mark.parametrize(("header", "expected"), [
    (f"sessionid={GOOD}", GOOD),
    ("sessionid=" + "x" * 16, "x" * 16),
    ("sessionid=" + "x" * 15, None),          # too short to be an id
    ("sessionid=" + "x" * 129, None),         # too long
    ("sessionid=" + "x" * 15 + "ü", None),    # outside the URL-safe alphabet
    ("sessionid=" + "x" * 15 + " y", None),
    (f"sessionid={GOOD}; sessionid=bad!", None),  # the last one wins even when it is no id
    (f"sessionid=bad!; sessionid={GOOD}", GOOD),
])
def test_a_sessionid_that_could_not_be_an_id_names_no_session(
        header: str, expected: str | None) -> None:
    assert session_id([header]) == expected


# --- store: revisions, fences, imports ---------------------------------------

def test_revision_is_one_at_creation_and_bumps_only_on_change() -> None:
    store = SessionStore()
    s = store.create({"a": 1})
    assert s.revision == 1 and store.revision(s.sid) == 1 and len(s.sid) >= 43
    assert not store.change(s, {"a": 1}) and s.revision == 1
    assert store.change(s, {"a": True}) and s.revision == 2  # 1 == True in Python, not in JSON
    assert store.change(s, {"a": True, "b": 1}) and s.revision == 3
    assert store.change(s, {"b": 1, "a": True}) and s.revision == 4  # key order is on the wire
    assert store.revision("nope") == 0 and store.revision(None) == 0


def test_login_destroys_the_old_session() -> None:
    store = SessionStore()
    old = store.create({})
    new = store.login(old.sid, {"x": 1})
    assert new.sid != old.sid and new.revision == 1
    assert store.get(old.sid) is None and len(store) == 1


def test_import_is_compare_and_set_and_keeps_the_id() -> None:
    store = SessionStore()
    assert store.put("s" * 20, {"v": 1}, expected_revision=3, fence=None).revision == 0
    assert store.put("s" * 20, {"v": 1}, expected_revision=0, fence=None).revision == 1
    stale = store.put("s" * 20, {"v": 2}, expected_revision=0, fence=None)
    assert (stale.ok, stale.revision, stale.fenced) == (False, 1, False)
    done = store.put("s" * 20, {"v": 2}, expected_revision=None, fence=None)
    assert (done.ok, done.revision) == (True, 2)
    session = store.get("s" * 20)
    assert session is not None and session.data == {"v": 2} and session.imported is None


def test_fences_only_grow_also_for_unknown_ids() -> None:
    store = SessionStore()
    assert store.note_fence("x" * 20, 5)
    assert not store.note_fence("x" * 20, 4)
    assert store.note_fence("x" * 20, 5)  # the same fence again is not lower
    refused = store.put("x" * 20, {}, expected_revision=0, fence=4)
    assert (refused.ok, refused.revision, refused.fenced) == (False, 0, True)
    landed = store.put("x" * 20, {}, expected_revision=0, fence=7)
    assert landed.ok and landed.revision == 1
    session = store.get("x" * 20)
    assert session is not None and session.imported == (7, 1)
    store.destroy("x" * 20)
    assert store.put("x" * 20, {}, expected_revision=None, fence=6).fenced  # kept after DELETE


def test_a_conflicting_import_still_notes_its_fence() -> None:
    store = SessionStore()
    assert not store.put("y" * 20, {}, expected_revision=9, fence=8).ok
    assert store.put("y" * 20, {}, expected_revision=0, fence=7).fenced


# --- session data --------------------------------------------------------------

def test_fresh_data_has_the_keys_no_profile_declares() -> None:
    fresh = data.fresh(1733190000.25)
    assert list(fresh) == ["_csrf", "created_at", "history", "flash"]
    assert fresh["created_at"] == 1733190000.25 and fresh["flash"] == {
        "ü": ["nested", 1, 2.5, None, True]}
    assert data.state_view(fresh) == {"user": None, "prefs": {}, "tags": [], "visits": {},
                                      "draft": None}


def test_login_keeps_a_guests_data_and_flushes_another_users() -> None:
    guest = data.fresh(1.5)
    data.set_pref(guest, "theme", "dark")
    ann = data.logged_in(guest, ANN, 2.5)
    assert data.user_of(ann) == ("u-1001", "Ann Lee")
    assert ann["prefs"] == {"theme": "dark"} and ann["created_at"] == 1.5
    assert ann["_csrf"] != guest["_csrf"]
    again = data.logged_in(ann, ANN, 3.5)
    assert again["prefs"] == {"theme": "dark"}
    bo = data.logged_in(ann, BO, 4.5)
    assert data.user_of(bo) == ("u-1002", "Bo Chen") and "prefs" not in bo
    assert bo["created_at"] == 4.5


def test_readers_ignore_what_does_not_fit() -> None:
    odd = {"_auth_user_id": 1001, "_auth_user_name": "Ann", "prefs": 5,
           "tags": ["b", 3, "a", "b"], "visits": {"home": 2, "x": 0, "y": True, "z": "1"},
           "draft": ["no"]}
    assert data.state_view(odd) == {"user": None, "prefs": {}, "tags": ["a", "b"],
                                    "visits": {"home": 2}, "draft": None}
    data.set_pref(odd, "lang", "en")
    assert odd["prefs"] == {"lang": "en"}


def test_history_keeps_the_last_five_visits() -> None:
    d = data.fresh(0.0)
    for i in range(7):
        data.visit(d, f"p{i}", 10.0 + i)
    assert d["history"] == [{"page": f"p{i}", "at": 10.0 + i} for i in range(2, 7)]
    assert d["visits"] == {f"p{i}": 1 for i in range(7)}


def test_limits_are_refusals() -> None:
    d = data.fresh(0.0)
    for i in range(data.MAX_TAGS):
        data.add_tag(d, f"t{i}")
    data.add_tag(d, "t0")  # already there: fine
    with pytest.raises(NotesError) as err:
        data.add_tag(d, "one-more")
    assert (err.value.status, err.value.code) == (400, "too_many_tags")


# --- JSON and users -------------------------------------------------------------

@pytest.mark.parametrize("raw", [b"", b"{", b"NaN", b"[Infinity]", b'{"a": -Infinity}',
                                 b"1e999", b"\xff", b"[" * 100_000, b"1" * 5000])
def test_json_that_could_not_be_written_back_is_malformed(raw: bytes) -> None:
    with pytest.raises(NotesError) as err:
        parse_json(raw)
    assert (err.value.status, err.value.code) == (400, "malformed_json")


def test_json_round_trips_what_it_accepts() -> None:
    text = '{"\\u00fc": [1, 2.5, -0.0, 5e-324, 1180591620717411303424, null, true, "\\ud800"]}'
    assert json.dumps(parse_json(text.encode())) == text


def test_users_file(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    path.write_text(json.dumps([{"id": "u-7", "username": "zo", "name": "Zoë", "password": "p"}]))
    users = load_users(path)
    assert [u.id for u in users] == ["u-7"]
    assert users.authenticate("zo", "p") is not None and users.authenticate("zo", "q") is None
    assert Users().authenticate("ann", "ann-pass") == ANN
    path.write_text(json.dumps([{"id": 7, "username": "zo", "name": "Zoë", "password": "p"}]))
    with pytest.raises(UsersFileError):
        load_users(path)


@pytest.mark.parametrize(("value", "expected"), [
    (1, 0), ("x", 0), ([], 1), ({}, 1), ({"a": [1, {"b": []}]}, 4), ([[], [[[]]], 2], 4),
])
def test_depth(value: object, expected: int) -> None:
    assert depth(value) == expected


def test_too_deep_json_is_refused_without_recursing() -> None:
    assert depth(parse_json(b"[" * 65 + b"]" * 65)) == 65
    with pytest.raises(NotesError) as err:
        parse_json(b"[" * 66 + b"]" * 66)
    assert (err.value.status, err.value.code) == (400, "too_deep")
