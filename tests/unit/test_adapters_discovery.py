"""Session discovery: statistics per key path of sampled sessions, and the ``session:``
block they suggest -- for sessions shaped like the shop's and like the notes app's."""

from __future__ import annotations

import json
import secrets
from typing import Any

import pydantic
import pytest
import yaml

from adapters.discovery import ANY, SessionShapes, Summary, propose
from adapters.discovery.render import COOKIE_PLACEHOLDER
from adapters.discovery.shapes import like, nameable
from adapters.profile import SessionUnfit, build

T0 = 1_733_190_000.0
CSRF = "Zq3" + secrets.token_urlsafe(16)
EMAIL = "ann.lee@example.com"


def shop_samples() -> list[tuple[str, float, dict[str, Any]]]:
    """Four shop sessions sampled three times each, as legacy_shop exports them."""
    out = []
    for i in range(4):
        csrf = CSRF if i == 0 else secrets.token_urlsafe(16)
        basket: list[dict[str, int]] = []
        settled: list[int] = []
        for step in range(3):
            if step:
                basket = [*basket, {"sku": 10 + step + i, "quantity": step}]
                settled = [*settled, 100 * i + step]
            out.append((f"shop-{i}", T0 + 60 * step, {
                "uid": 7 + i, "uname": ["alice", "bob", "carol", "dave"][i], "basket": basket,
                "settled_orders": settled, "created_at": "2024-12-03T10:00:00Z", "csrf": csrf}))
    return out


def notes_samples() -> list[tuple[str, float, dict[str, Any]]]:
    """Notes sessions: three users, two guests, as tests/apps/notes exports them."""
    out = []
    for i in range(5):
        user = i < 3
        data: dict[str, Any] = {"_csrf": CSRF if i == 0 else secrets.token_urlsafe(24),
                                "created_at": T0 + i + 0.25, "history": [],
                                "flash": {"ü": ["nested", 1, 2.5, None, True]}}
        if user:
            data |= {"_auth_user_id": f"u-100{i}", "_auth_user_name": ["Ann Lee", "Bo", "Cy"][i]}
        for step in range(3):
            data = json.loads(json.dumps(data))
            data["history"] = [*data["history"], {"page": "home", "at": T0 + step + 0.5}][-5:]
            data["visits"] = {"home": step + 1, **({"docs": step} if step else {})}
            if step >= 1:
                data["prefs"] = {"theme": "dark" if step == 1 else "light", "lang": "en"}
                data["tags"] = sorted({"work", *(["urgent"] if step == 2 else [])})
                data["draft"] = f"draft {i} at step {step}"
            if i == 0:
                data["contact"] = EMAIL  # an undeclared key holding an email
            out.append((f"notes-{i}", T0 + 30 * step, data))
    return out


def shapes_of(samples: list[tuple[str, float, dict[str, Any]]]) -> SessionShapes:
    shapes = SessionShapes()
    for sid, at, data in samples:
        shapes.add(sid, at, data)
    return shapes


def filled(session: dict[str, Any], cookie: str = "sid") -> dict[str, Any]:
    return {**session, "cookie": cookie, "duplicate_cookies": "last"}


def pasted(text: str) -> dict[str, Any]:
    """The block as a user pastes it into config.yaml."""
    doc = yaml.safe_load(text)
    assert set(doc) == {"session"}
    block: dict[str, Any] = doc["session"]
    return block


# ---------------------------------------------------------------- the shop
def test_the_shop_block_declares_its_identity_its_counter_and_its_set() -> None:
    proposal = propose(shapes_of(shop_samples()).summary())
    session = pasted(proposal.yaml)
    assert session == proposal.session
    assert session["identity"] == {"user_id": {"path": "/uid", "type": "integer"},
                                   "name": {"path": "/uname"}}
    assert session["fields"] == {
        "basket": {"path": "/basket", "rule": "counter",
                   "entries": {"key": "sku", "count": "quantity", "key_type": "integer"}},
        "settled_orders": {"path": "/settled_orders", "rule": "set", "items": "integer"}}
    assert session["undeclared"] == "lww"
    assert {g.path: g.decision for g in proposal.guesses if g.decision == "undeclared"} == {
        "/created_at": "undeclared", "/csrf": "undeclared"}


def test_the_proposed_shop_profile_reads_a_shop_export() -> None:
    samples = shop_samples()
    proposal = propose(shapes_of(samples).summary())
    profile = build(filled(pasted(proposal.yaml), "shop_session"))
    doc = profile.from_export(samples[-1][2])
    assert doc.user is not None and doc.user.id == 10 and doc.user.name == "dave"
    assert doc.fields["basket"] == {"14": 1, "15": 2}
    assert doc.fields["settled_orders"] == [301, 302]
    assert set(doc.extra) == {"csrf", "created_at"}
    assert profile.to_import(doc) == samples[-1][2]


def test_the_cookie_and_duplicates_are_placeholders_build_refuses_until_filled() -> None:
    proposal = propose(shapes_of(shop_samples()).summary())
    session = pasted(proposal.yaml)
    assert not proposal.complete
    assert session["cookie"] == COOKIE_PLACEHOLDER
    assert "EDIT" in proposal.yaml.split("cookie:")[1].splitlines()[0]
    with pytest.raises(pydantic.ValidationError, match="cookie"):
        build(session)
    with pytest.raises(pydantic.ValidationError, match="duplicate_cookies"):
        build({**session, "cookie": "shop_session"})
    build(filled(session))


def test_a_given_cookie_makes_a_block_that_builds_as_pasted() -> None:
    proposal = propose(shapes_of(shop_samples()).summary(), cookie="shop_session",
                       duplicate_cookies="last",
                       headers={"session_id": "X-A", "revision": "X-B", "node": "X-C"})
    assert proposal.complete and "EDIT" not in proposal.yaml
    profile = build(pasted(proposal.yaml))
    assert profile.cookie == "shop_session"
    assert profile.response_headers == ("X-A", "X-B", "X-C")


# ---------------------------------------------------------------- the notes app
def test_the_notes_block_declares_a_map_a_set_a_counter_and_a_changing_string() -> None:
    proposal = propose(shapes_of(notes_samples()).summary(), cookie="sessionid",
                       duplicate_cookies="last")
    session = pasted(proposal.yaml)
    assert session["identity"] == {"user_id": {"path": "/_auth_user_id", "type": "string"},
                                   "name": {"path": "/_auth_user_name"}}
    assert session["fields"] == {
        "draft": {"path": "/draft", "rule": "lww", "type": "string"},
        "prefs": {"path": "/prefs", "rule": "map", "values": "lww", "value_type": "string"},
        "tags": {"path": "/tags", "rule": "set", "items": "string"},
        "visits": {"path": "/visits", "rule": "counter"}}
    left = {g.path for g in proposal.guesses if g.decision == "undeclared"}
    assert left == {"/_csrf", "/contact", "/created_at", "/flash", "/history"}
    profile = build(session)
    doc = profile.from_export(notes_samples()[2][2])
    assert doc.user is not None and doc.user.id == "u-1000"
    assert doc.fields["visits"] == {"home": 3, "docs": 2}
    assert set(doc.extra) == {"_csrf", "contact", "created_at", "flash", "history"}


def test_a_guest_session_fits_the_proposed_notes_profile() -> None:
    samples = notes_samples()
    profile = build(filled(propose(shapes_of(samples).summary()).session))
    guest = samples[-1][2]
    assert "_auth_user_id" not in guest
    assert profile.from_export(guest).user is None


def test_why_each_guess_was_made_is_in_the_comments() -> None:
    text = propose(shapes_of(notes_samples()).summary()).yaml
    assert "# /visits: object; in 5 of 5 sessions (100%)" in text
    assert "counter: an object of non-negative integers" in text
    assert "/history: array" in text and "not one member is clearly the count" in text
    assert "/_csrf: string" in text and "its name says secret" in text
    assert "/created_at: number" in text and "never changed in 10 repeat samples" in text
    assert "/_auth_user_id: string; in 3 of 5 sessions (60%)" in text


# ---------------------------------------------------------------- no values, anywhere
@pytest.mark.parametrize("samples", [shop_samples, notes_samples])
def test_no_value_is_kept_or_shown(samples: Any) -> None:
    shapes = shapes_of(samples())
    proposal = propose(shapes.summary())
    shown = proposal.yaml + json.dumps(shapes.summary().to_json()) + \
        json.dumps(proposal.to_json())
    for value in (CSRF, EMAIL, "alice", "Ann Lee", "dark", "urgent", "draft 0", "nested",
                  "2024-12-03T10:00:00Z"):
        assert value not in shown
    assert CSRF not in repr(vars(shapes))


def test_members_named_like_data_are_counted_under_any_and_never_named() -> None:
    shapes = SessionShapes()
    for i in range(3):
        shapes.add(f"s{i}", T0 + i, {"uid": i, "seen_by": {EMAIL: 1, "bo@example.org": i},
                                     "by_id": {"12": 1, "550e8400-e29b-41d4-a716-446655440000": 2},
                                     "weird\nkey": 1})
    summary = shapes.summary()
    paths = {p.path for p in summary.paths}
    assert {"/seen_by/*", "/by_id/*", "/*"} <= paths
    assert summary.get(("seen_by",)).keyed == 6  # type: ignore[union-attr]
    text = propose(summary).yaml
    assert EMAIL not in text and "550e8400" not in text and "weird" not in text
    assert pasted(text)["fields"]["seen_by"] == {"path": "/seen_by", "rule": "counter"}


# ---------------------------------------------------------------- the statistics
def test_changes_are_counted_between_consecutive_samples_of_one_session() -> None:
    shapes = SessionShapes()
    shapes.add("a", T0, {"n": 1, "k": "x"})
    shapes.add("b", T0, {"n": 1, "k": "x"})  # another session: no pair
    shapes.add("a", T0 + 1, {"n": 1, "k": "y"})
    shapes.add("a", T0 + 2, {"n": 1})  # gone counts as a change
    shapes.add("a", T0 + 3, {"n": 1, "k": "y"})  # and so does coming back
    s = shapes.summary()
    n, k = s.get(("n",)), s.get(("k",))
    assert n is not None and (n.repeats, n.changes, n.sessions, n.samples) == (3, 0, 2, 5)
    assert k is not None and (k.repeats, k.changes, k.sessions, k.samples) == (3, 3, 2, 4)
    assert (s.samples, s.sessions, s.first_at, s.last_at) == (5, 2, T0, T0 + 3)


def test_member_order_is_no_change_and_sizes_are_compact_json() -> None:
    shapes = SessionShapes()
    shapes.add("a", T0, {"m": {"x": 1, "y": "ü"}})
    shapes.add("a", T0 + 1, {"m": {"y": "ü", "x": 1}})
    m = shapes.summary().get(("m",))
    assert m is not None and m.changes == 0
    assert m.size_max == len(json.dumps({"x": 1, "y": "ü"}, ensure_ascii=False,
                                        separators=(",", ":")).encode())


def test_arrays_of_objects_are_described_by_their_members_under_any() -> None:
    shapes = shapes_of(shop_samples())
    s = shapes.summary()
    item, sku = s.get(("basket", ANY)), s.get(("basket", ANY, "sku"))
    assert item is not None and item.types == {"object": 12} and item.members == (2, 2, 2.0)
    assert sku is not None and sku.types == {"integer": 12}
    basket = s.get(("basket",))
    assert basket is not None and basket.items == (2, 1.0)


def test_a_list_that_repeats_an_item_is_not_a_set() -> None:
    shapes = SessionShapes()
    for i in range(3):
        shapes.add("a", T0 + i, {"uid": 1, "recent": [3, 1, 3][: i + 1]})
    proposal = propose(shapes.summary())
    assert proposal.session["fields"] == {}
    assert "repeated an item" in proposal.yaml


def test_strings_are_classified_not_kept() -> None:
    assert like("123") == "digits" and like(EMAIL) == "email"
    assert like("550e8400-e29b-41d4-a716-446655440000") == "uuid"
    assert like(secrets.token_urlsafe(16) + "aA1") == "token"
    assert like("2024-12-03T10:00:00Z") == "timestamp"
    assert like("settled_orders") == like("hello world") == "text"
    assert nameable("last_viewed_product") and nameable("ü")
    assert not nameable("42") and not nameable("*") and not nameable("a\nb")


def test_the_summary_survives_json_and_proposes_the_same_block() -> None:
    summary = shapes_of(notes_samples()).summary()
    again = Summary.from_json(json.loads(json.dumps(summary.to_json())))
    assert propose(again).yaml == propose(summary).yaml
    with pytest.raises(ValueError, match="not a session schema"):
        Summary.from_json({"samples": 1})


def test_no_user_id_is_a_marked_placeholder_and_odd_names_are_quoted() -> None:
    shapes = SessionShapes()
    for i in range(3):
        shapes.add("a", T0 + i, {"who": "x", "cart items: #1": i, "yes": i, "ü/~": i})
    proposal = propose(shapes.summary())
    session = pasted(proposal.yaml)
    assert session["identity"]["user_id"]["path"] == "/EDIT_ME_user_id"
    assert "EDIT: no key looked like a user id" in proposal.yaml
    assert {f["path"] for f in session["fields"].values()} == {"/cart items: #1", "/yes",
                                                               "/ü~1~0"}
    profile = build(filled(session))
    assert profile.from_export({"who": "x", "ü/~": 2}).fields == {"field": 2}


def test_not_an_object_is_counted_and_skipped() -> None:
    shapes = SessionShapes()
    shapes.add("a", T0, ["not", "an", "object"])
    assert shapes.summary().not_objects == 1 and shapes.summary().samples == 0


def test_a_session_that_does_not_fit_the_guess_is_unfit_not_coerced() -> None:
    profile = build(filled(propose(shapes_of(shop_samples()).summary()).session))
    with pytest.raises(SessionUnfit):
        profile.from_export({"uid": "seven", "uname": "x"})
