"""The monolith's in-memory session store: revisions, expiry, fixation, import."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from adapters.document import EMPTY, Document, Principal
from adapters.profile import build
from legacy_shop.sessions import SessionStore, check_data

# The demo shop's session profile, as the gateway reads it from config.yaml.
SHOP = build(yaml.safe_load((Path(__file__).resolve().parents[2] / "config.yaml").read_text())
             ["session"])


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock: Clock) -> SessionStore:
    return SessionStore(idle_s=60.0, clock=clock)


def test_login_creates_revision_one_with_private_keys(store: SessionStore) -> None:
    s = store.login(None, 7, "alice")
    assert s.revision == 1 and store.revision(s.sid) == 1
    assert s.data["uid"] == 7 and s.data["uname"] == "alice" and s.data["basket"] == []
    # At least two keys the shared schema does not model, for the bridge to carry.
    assert {"created_at", "csrf"} <= set(s.data)
    assert len(s.sid) >= 43


def test_every_change_bumps_revision_and_no_op_does_not(store: SessionStore) -> None:
    s = store.login(None, 7, "alice")
    assert s.add_item(3, 2) and s.revision == 2
    assert s.add_item(3, 1) and s.revision == 3
    assert s.basket() == {3: 3}
    assert not s.remove_item(99) and s.revision == 3
    assert s.set("last_viewed_product", 5) and s.revision == 4
    assert not s.set("last_viewed_product", 5) and s.revision == 4
    assert s.remove_item(3) and s.revision == 5 and s.basket() == {}


def test_basket_is_kept_sorted_in_the_export_shape(store: SessionStore) -> None:
    s = store.login(None, 7, "alice")
    s.add_item(12, 1)
    s.add_item(2, 4)
    assert s.data["basket"] == [{"sku": 2, "quantity": 4}, {"sku": 12, "quantity": 1}]


def test_subtract_keeps_what_was_added_meanwhile(store: SessionStore) -> None:
    s = store.login(None, 7, "alice")
    s.add_item(1, 2)
    s.add_item(2, 1)
    ordered = s.basket()
    s.add_item(1, 3)  # added while the order was being placed
    s.add_item(4, 1)
    assert s.subtract(ordered)
    assert s.basket() == {1: 3, 4: 1}


def test_login_destroys_the_old_session(store: SessionStore) -> None:
    planted = store.login(None, 2, "mallory")
    s = store.login(planted.sid, 7, "alice")
    assert s.sid != planted.sid
    assert store.get(planted.sid) is None and store.revision(planted.sid) == 0
    assert store.get(s.sid) is s


def test_login_with_unknown_old_sid_is_fine(store: SessionStore) -> None:
    s = store.login("never-existed", 7, "alice")
    assert store.get(s.sid) is s and len(store) == 1


def test_idle_sessions_expire_and_use_keeps_them_alive(store: SessionStore, clock: Clock) -> None:
    a = store.login(None, 1, "alice")
    b = store.login(None, 2, "bob")
    clock.now += 50
    assert store.get(a.sid) is a  # used: its idle timer restarts
    clock.now += 50
    assert store.get(a.sid) is a
    assert store.revision(b.sid) == 0 and store.get(b.sid) is None
    clock.now += 61
    assert store.sweep() == 1 and len(store) == 0


def test_peek_does_not_count_as_use(store: SessionStore, clock: Clock) -> None:
    s = store.login(None, 1, "alice")
    clock.now += 40
    assert store.peek(s.sid) is s
    clock.now += 40
    assert store.peek(s.sid) is None


def test_destroy(store: SessionStore) -> None:
    s = store.login(None, 1, "alice")
    assert store.destroy(s.sid) and not store.destroy(s.sid) and not store.destroy(None)
    assert store.revision(s.sid) == 0


def test_put_creates_at_one_and_bumps_after(store: SessionStore) -> None:
    data = {"uid": 1, "uname": "alice", "basket": [{"sku": 3, "quantity": 1}]}
    assert store.put("s" * 43, data, None) == (True, 1)
    assert store.put("s" * 43, data, None) == (True, 2)
    assert store.get("s" * 43) is not None


def test_put_is_compare_and_set(store: SessionStore) -> None:
    sid = "x" * 43
    assert store.put(sid, {"uid": None, "uname": None, "basket": []}, 5) == (False, 0)
    assert store.put(sid, {"uid": None, "uname": None, "basket": []}, 0) == (True, 1)
    assert store.put(sid, {"uid": 1, "uname": "alice", "basket": []}, 0) == (False, 1)
    assert store.put(sid, {"uid": 1, "uname": "alice", "basket": []}, 1) == (True, 2)
    session = store.get(sid)
    assert session is not None and session.uid == 1 and session.revision == 2


def test_put_keeps_node_private_keys_the_import_lacks(store: SessionStore) -> None:
    s = store.login(None, 1, "alice")
    csrf, created = s.data["csrf"], s.data["created_at"]
    store.put(s.sid, {"uid": 1, "uname": "alice", "basket": [], "theme": "dark"}, 1)
    again = store.get(s.sid)
    assert again is not None
    assert again.data["csrf"] == csrf and again.data["created_at"] == created
    assert again.data["theme"] == "dark"
    fresh_sid = "n" * 43  # a session born on the new side gets its own
    store.put(fresh_sid, {"uid": 1, "uname": "alice", "basket": []}, None)
    fresh = store.get(fresh_sid)
    assert fresh is not None and fresh.csrf and fresh.data["created_at"]


def test_export_is_a_copy(store: SessionStore) -> None:
    s = store.login(None, 1, "alice")
    exported = s.export()
    s.add_item(1, 1)
    assert exported["basket"] == []


def test_export_round_trips_through_the_shop_profile(store: SessionStore) -> None:
    s = store.login(None, 7, "alice")
    s.add_item(3, 2)
    s.settle(41, {})
    s.set("last_viewed_product", 3)
    doc = SHOP.from_export(s.export())
    assert doc.user == Principal(7, "alice")
    assert doc.fields == {"cart": {"3": 2}, "settled": [41]}
    assert set(doc.extra) == {"created_at", "csrf", "last_viewed_product"}
    assert SHOP.to_import(Document.from_json(doc.to_json())) == s.export()


@pytest.mark.parametrize("doc", [
    EMPTY,                                                   # logged out on new
    Document(Principal(7, "alice")),                         # logged in on new
    Document(Principal(7, "alice"), {"cart": {"12": 1, "3": 2}, "settled": [41, 57]},
             {"csrf": "t", "theme": {"dark": True}}),
    Document(None, {"cart": {"3": 1}}, {"uid": None, "uname": None}),  # a guest
])
def test_the_node_takes_what_the_gateway_imports_as_it_is(store: SessionStore,
                                                         doc: Document) -> None:
    """What the gateway makes of a shared document is a session of this shop, unchanged
    (a node that rewrote an import would look like a change made on legacy)."""
    data = SHOP.to_import(doc)
    assert check_data(data) == data
    assert store.put("i" * 43, check_data(data), None) == (True, 1)
    imported = store.get("i" * 43)
    assert imported is not None
    assert SHOP.from_export(imported.export()) == Document(
        doc.user, doc.fields, {**doc.extra, "created_at": imported.data["created_at"],
                               "csrf": imported.data["csrf"]})
