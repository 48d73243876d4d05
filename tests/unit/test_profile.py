"""The session profile: two monoliths of different shape, one port."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from adapters.document import EMPTY, Document, Principal
from adapters.profile import SessionProfile, SessionUnfit, build

ROOT = Path(__file__).resolve().parents[2]
SHOP = build(yaml.safe_load((ROOT / "config.yaml").read_text())["session"])

NOTES_SPEC: dict[str, Any] = {
    "cookie": "sessionid",
    "duplicate_cookies": "last",
    "headers": {"session_id": "X-Notes-Session", "revision": "X-Notes-Rev",
                "node": "X-Notes-Node"},
    "identity": {"user_id": {"path": "/_auth_user_id"},
                 "name": {"path": "/_auth_user_name"},
                 "claims": {"email": {"path": "/profile/email"}}},
    "fields": {
        "prefs": {"path": "/prefs", "rule": "map", "value_type": "string"},
        "tags": {"path": "/tags", "rule": "set"},
        "visits": {"path": "/visits", "rule": "counter"},
        "draft": {"path": "/draft", "rule": "lww", "type": "string", "nullable": True},
        "theme": {"path": "/ui/theme", "rule": "legacy_wins", "type": "string"},
    },
}
NOTES = build(NOTES_SPEC)

NOTES_DATA: dict[str, Any] = {
    "_auth_user_id": "u-1001", "_auth_user_name": "Ann Lee",
    "profile": {"email": "ann@example.com", "since": 2019.5},
    "prefs": {"lang": "en", "tz": "UTC"}, "tags": ["urgent", "work"],
    "visits": {"home": 3, "docs": 1}, "draft": "hello",
    "ui": {"theme": "dark", "density": 2},
    "_csrf": "x" * 32, "created_at": 1733190000.25,
    "flash": {"ü": ["nested", 1, 2.5, None, True]},
}


def doc(profile: SessionProfile, data: dict[str, Any]) -> Document:
    return profile.from_export(data)


# ---------------------------------------------------------------- export <-> document
def test_shop_export_becomes_the_shared_document_and_back() -> None:
    data = {"uid": 7, "uname": "alice", "basket": [{"sku": 12, "quantity": 2},
                                                   {"sku": 3, "quantity": 1}],
            "settled_orders": [57, 41], "csrf": "t0k", "created": 1.5}
    d = SHOP.from_export(data)
    assert d.user == Principal(7, "alice")
    assert d.fields == {"cart": {"12": 2, "3": 1}, "settled": [41, 57]}
    assert d.extra == {"csrf": "t0k", "created": 1.5}
    back = SHOP.to_import(d)
    assert back["basket"] == [{"sku": 3, "quantity": 1}, {"sku": 12, "quantity": 2}]
    assert back["uid"] == 7 and back["uname"] == "alice" and back["settled_orders"] == [41, 57]
    assert back["csrf"] == "t0k" and back["created"] == 1.5


def test_a_guest_keeps_its_null_identity_keys_as_they_were() -> None:
    data = {"uid": None, "uname": None, "basket": [{"sku": 1, "quantity": 1}]}
    d = SHOP.from_export(data)
    assert d.user is None
    assert SHOP.to_import(d) == data


def test_undeclared_keys_round_trip_byte_identical_many_times() -> None:
    first = json.dumps(NOTES_DATA, ensure_ascii=False)
    data = json.loads(first)
    for _ in range(50):
        data = json.loads(json.dumps(NOTES.to_import(Document.from_json(
            NOTES.from_export(data).to_json()))))
    for key in ("_csrf", "created_at", "flash"):  # nobody declared anything in them
        assert json.dumps(data[key], ensure_ascii=False) == \
            json.dumps(NOTES_DATA[key], ensure_ascii=False)
    # an object holding a declared path keeps its members (their order may change)
    assert data["ui"] == {"theme": "dark", "density": 2}
    assert data["profile"] == NOTES_DATA["profile"]
    assert data == NOTES_DATA


def test_string_user_ids_and_claims() -> None:
    d = NOTES.from_export(NOTES_DATA)
    assert d.user == Principal("u-1001", "Ann Lee", {"email": "ann@example.com"})
    assert d.extra["profile"] == {"since": 2019.5}
    assert "ui" in d.extra and d.fields["theme"] == "dark"


@pytest.mark.parametrize(("data", "reason", "words"), [
    ([1, 2], "not_object", "not an object"),
    ({"uid": "7", "uname": "a"}, "identity", "expected integer, got string"),
    ({"uid": True, "uname": "a"}, "identity", "expected integer, got boolean"),
    ({"uid": None, "uname": "a"}, "identity", "name without a user id"),
    ({"uid": 7, "uname": 5}, "identity", "expected string, got integer"),
    ({"uid": 7, "basket": {"12": 1}}, "type", "field cart (/basket)"),
    ({"uid": 7, "basket": [{"sku": "12", "quantity": 1}]}, "type", "sku of type integer"),
    ({"uid": 7, "basket": [{"sku": 12, "quantity": 1, "note": "x"}]}, "type", "cart[0]"),
    ({"uid": 7, "basket": [{"sku": 12, "quantity": -1}]}, "type", "non-negative"),
    ({"uid": 7, "settled_orders": [1, "2"]}, "type", "list of integers"),
])
def test_a_shop_export_that_does_not_fit_says_why(data: Any, reason: str, words: str) -> None:
    with pytest.raises(SessionUnfit) as err:
        SHOP.from_export(data)
    assert err.value.reason == reason
    assert words in str(err.value)


@pytest.mark.parametrize(("change", "words"), [
    ({"prefs": 5}, "field prefs (/prefs): expected an object, got integer"),
    ({"prefs": {"lang": 1}}, "prefs[lang]"),
    ({"draft": 3}, "expected string, got integer"),
    ({"ui": "dark"}, "runs through a string"),
    ({"_auth_user_id": 1001}, "expected string, got integer"),
    ({"_auth_user_id": ""}, "identity.user_id"),
])
def test_a_type_that_changed_is_reported_never_coerced(change: dict[str, Any],
                                                       words: str) -> None:
    with pytest.raises(SessionUnfit) as err:
        NOTES.from_export({**NOTES_DATA, **change})
    assert words in str(err.value)


def test_null_where_nullable() -> None:
    assert NOTES.from_export({**NOTES_DATA, "draft": None}).fields["draft"] is None


def test_a_document_new_broke_is_not_given_to_the_monolith() -> None:
    d = NOTES.from_export(NOTES_DATA).with_fields(visits={"home": "3"})
    with pytest.raises(SessionUnfit) as err:
        NOTES.to_import(d)
    assert err.value.reason == "document"


def test_the_document_survives_json() -> None:
    d = NOTES.from_export(NOTES_DATA)
    assert Document.from_json(d.to_json()) == d
    assert d != Document.from_json(d.to_json().replace('"home":3', '"home":3.0'))


# ---------------------------------------------------------------- merge
ALICE = Principal(7, "alice")


def shop(cart: dict[str, int], user: Principal | None = ALICE, **extra: Any) -> Document:
    return Document(user, {"cart": cart}, extra)


def test_counter_adds_up_concurrent_changes() -> None:
    base = shop({"1": 1})
    m = SHOP.merge(base, shop({"1": 2}), shop({"1": 2, "5": 1}))
    assert m.doc.fields["cart"] == {"1": 3, "5": 1}
    assert m.conflicts == ()


def test_counter_remove_on_legacy_keeps_a_raise_on_new() -> None:
    m = SHOP.merge(shop({"1": 1, "2": 1}), shop({"2": 1}), shop({"1": 3, "2": 1}))
    assert m.doc.fields["cart"] == {"1": 2, "2": 1}


def test_logout_on_legacy_leaves_only_legacys_copy() -> None:
    legacy = shop({}, None, csrf="new")
    m = SHOP.merge(shop({"1": 1}), legacy, shop({"1": 2}))
    assert m.doc == legacy


def test_login_on_legacy_carries_the_guest_cart() -> None:
    m = SHOP.merge(shop({"1": 1}, None), shop({"1": 1}), shop({"1": 1, "2": 1}, None))
    assert m.doc.user == Principal(7, "alice")
    assert m.doc.fields["cart"] == {"1": 1, "2": 1}


def notes(**fields: Any) -> Document:
    base = NOTES.from_export(NOTES_DATA)
    return Document(base.user, {**base.fields, **fields}, base.extra)


def test_lww_a_preference_written_on_new_survives_a_legacy_request() -> None:
    """The reported bug: legacy's unchanged copy must not revert new's write."""
    base = notes()
    current = notes(prefs={"lang": "de", "tz": "UTC"})
    legacy = notes(visits={"home": 4, "docs": 1})
    m = NOTES.merge(base, legacy, current)
    assert m.doc.fields["prefs"] == {"lang": "de", "tz": "UTC"}
    assert m.doc.fields["visits"] == {"home": 4, "docs": 1}
    assert m.conflicts == ()


def test_map_entries_merge_one_by_one_and_conflicts_are_named() -> None:
    base = notes(prefs={"lang": "en", "tz": "UTC"})
    legacy = notes(prefs={"lang": "fr", "tz": "UTC", "font": "big"})
    current = notes(prefs={"lang": "de"})
    later = NOTES.merge(base, legacy, current, legacy_later=True)
    assert later.doc.fields["prefs"] == {"lang": "fr", "font": "big"}
    assert later.conflicts == ("prefs[lang]",)
    earlier = NOTES.merge(base, legacy, current, legacy_later=False)
    assert earlier.doc.fields["prefs"] == {"lang": "de", "font": "big"}


def test_set_keeps_adds_and_removes_of_both_sides() -> None:
    m = NOTES.merge(notes(tags=["a", "b"]), notes(tags=["b", "c"]), notes(tags=["a", "b", "d"]))
    assert m.doc.fields["tags"] == ["b", "c", "d"]


def test_legacy_wins_and_new_wins() -> None:
    m = NOTES.merge(notes(theme="dark"), notes(theme="light"), notes(theme="blue"),
                    legacy_later=False)
    assert m.doc.fields["theme"] == "light"
    assert m.conflicts == ("theme",)
    spec = {**NOTES_SPEC, "fields": {"theme": {**NOTES_SPEC["fields"]["theme"],
                                               "rule": "new_wins"}}}
    m = build(spec).merge(notes(theme="dark"), notes(theme="light"), notes(theme="blue"))
    assert m.doc.fields["theme"] == "blue"


def test_undeclared_keys_merge_key_by_key() -> None:
    base = NOTES.from_export(NOTES_DATA)
    legacy = Document(base.user, base.fields, {**base.extra, "_csrf": "rotated"})
    current = Document(base.user, base.fields, {**base.extra, "flash": {}})
    m = NOTES.merge(base, legacy, current)
    assert m.doc.extra["_csrf"] == "rotated" and m.doc.extra["flash"] == {}
    both = Document(base.user, base.fields, {**base.extra, "_csrf": "mine"})
    assert NOTES.merge(base, legacy, both).conflicts == ("extra._csrf",)


def test_a_field_removed_on_one_side() -> None:
    base = notes(draft="x")
    gone = Document(base.user, {k: v for k, v in base.fields.items() if k != "draft"},
                    base.extra)
    assert "draft" not in NOTES.merge(base, gone, base).doc.fields
    assert NOTES.merge(base, base, gone).doc == gone


def test_merging_into_an_empty_base() -> None:
    legacy = NOTES.from_export(NOTES_DATA)
    assert NOTES.merge(EMPTY, legacy, EMPTY).doc.fields == legacy.fields


# ---------------------------------------------------------------- the spec
@pytest.mark.parametrize(("change", "words"), [
    ({"cookie": "bad name"}, "is not a cookie name"),
    ({"duplicate_cookies": "middle"}, "duplicate_cookies"),
    ({"fields": {"x": {"path": "/_auth_user_id/x", "rule": "lww"}}}, "overlaps"),
    ({"fields": {"x": {"path": "prefs", "rule": "lww"}}}, "fields.x.path"),
    ({"fields": {"x": {"path": "/x", "rule": "set", "entries": {"key": "a", "count": "b"}}}},
     "entries: only for rule counter"),
    ({"fields": {"x": {"path": "/x", "rule": "lwww"}}}, "fields.x.rule"),
    ({"identity": {"user_id": {"path": "/u"}, "claims": {"sub": {"path": "/s"}}}},
     "token's own claims"),
    ({"headers": {"session_id": "X-A", "revision": "x-a", "node": "X-N"}}, "three names"),
    ({"surprise": 1}, "surprise"),
])
def test_a_bad_profile_names_its_key(change: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError) as err:
        build({**NOTES_SPEC, **change})
    assert words in str(err.value)


def test_a_lone_surrogate_survives_the_document() -> None:
    data = json.loads('{"_auth_user_id": "u-1", "note": "\\ud800x"}')
    d = NOTES.from_export(data)
    raw = d.to_json()
    raw.encode("utf-8")  # what Redis gets
    assert NOTES.to_import(Document.from_json(raw))["note"] == "\ud800x"
