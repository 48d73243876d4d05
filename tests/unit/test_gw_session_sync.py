"""gateway.session.sync.assess: what a node's copy means for the shared record."""

from __future__ import annotations

from typing import Any

from adapters.document import Document, Principal
from adapters.profile import build
from gateway.session.sync import Assessment, Copy, Held, Intent, assess
from tests.support.profiles import shop_profile, shop_session

ALICE = Principal(7, "alice")
NODE = "a@boot1"
SHOP = shop_profile()


def doc(cart: dict[int, int], user: Principal | None = ALICE) -> Document:
    return Document(user, {"cart": {str(k): q for k, q in cart.items()}})


def judge(*args: Any) -> Assessment:
    return assess(*args, SHOP.merge)


def held(current: dict[int, int], base: dict[int, int], *, v: int = 5, lv: int = 5,
         lrev: int = 3, intent: Intent | None = None) -> Held:
    return Held(doc(current).to_json(), v, NODE, lrev, doc(base).to_json(), lv, intent)


def cart_of(raw: str | int) -> dict[int, int]:
    return {int(k): q for k, q in Document.from_json(str(raw)).fields.get("cart", {}).items()}


def test_first_sight_takes_the_node_s_copy_as_it_is() -> None:
    a = judge(None, NODE, False, Copy(4, doc({1: 2})))
    assert a.current and a.bump and a.set_lv and a.node_rev == 4
    assert cart_of(a.fields["doc"]) == {1: 2} and a.fields["base"] == a.fields["doc"]
    assert a.fields["node"] == NODE and a.fields["lrev"] == 4


def test_a_session_nobody_knows_is_gone() -> None:
    assert judge(None, NODE, False, None).gone


def test_nothing_changed_anywhere_is_in_sync() -> None:
    a = judge(held({1: 1}, {1: 1}), NODE, True, Copy(3, doc({1: 1})))
    assert a.current and not a.bump and a.fields == {}


def test_a_newer_shared_document_must_be_pushed() -> None:
    a = judge(held({1: 1, 2: 1}, {1: 1}, v=6, lv=5), NODE, True, Copy(3, doc({1: 1})))
    assert not a.current and not a.bump and a.node_rev == 3 and a.reason == "newer_shared"


def test_legacy_s_change_is_merged_as_a_delta_against_the_base() -> None:
    # new added 2 (v 6), legacy added one more of 1 (revision 4)
    a = judge(held({1: 1, 2: 1}, {1: 1}, v=6, lv=5), NODE, True, Copy(4, doc({1: 2})))
    assert a.bump and not a.set_lv and not a.current
    assert cart_of(a.fields["doc"]) == {1: 2, 2: 1}
    assert cart_of(a.fields["base"]) == {1: 2} and a.fields["lrev"] == 4
    assert a.fields["lv"] == -1
    assert ("conflict", "merged") in a.events


def test_a_pull_with_nothing_to_merge_leaves_the_node_current() -> None:
    a = judge(held({1: 1}, {1: 1}), NODE, True, Copy(4, doc({})))
    assert a.current and a.set_lv and cart_of(a.fields["doc"]) == {}


def test_our_own_unrecorded_push_is_not_taken_for_a_legacy_change() -> None:
    """The push of v 6 ({1: 1, 2: 1}) landed at revision 4 and was never recorded;
    legacy then added 3 (revision 5). Merging against the old base would add 2 twice."""
    pushed = doc({1: 1, 2: 1}).to_json()
    rec = held({1: 1, 2: 1}, {1: 1}, v=6, lv=5, lrev=3, intent=Intent(900, 6, NODE, pushed))
    copy = Copy(5, doc({1: 1, 2: 1, 3: 1}), imported=(900, 4))
    a = judge(rec, NODE, True, copy)
    assert cart_of(a.fields["doc"]) == {1: 1, 2: 1, 3: 1}, "2 once, 3 kept"
    assert ("stale", "unrecorded_push") in a.events
    assert a.fields["pi"] == ""


def test_an_unrecorded_push_with_no_legacy_change_just_updates_the_record() -> None:
    pushed = doc({1: 1, 2: 1}).to_json()
    rec = held({1: 1, 2: 1}, {1: 1}, v=6, lv=5, lrev=3, intent=Intent(900, 6, NODE, pushed))
    a = judge(rec, NODE, True, Copy(4, doc({1: 1, 2: 1}), imported=(900, 4)))
    assert a.current and not a.bump
    assert a.fields == {"base": pushed, "lrev": 4, "lv": 6, "pi": ""}


def test_an_intent_whose_import_never_landed_is_cleared() -> None:
    intent = Intent(900, 6, NODE, doc({9: 9}).to_json())
    a = judge(held({1: 1}, {1: 1}, v=6, lv=5, intent=intent), NODE, True,
               Copy(3, doc({1: 1}), imported=(800, 2)))
    assert not a.current and a.fields == {"pi": ""}


def test_an_import_nobody_recorded_is_reported_and_never_double_applied() -> None:
    a = judge(held({1: 1}, {}, v=6, lv=5, lrev=3), NODE, True,
               Copy(5, doc({1: 1, 4: 1}), imported=(777, 5)))
    assert ("stale", "unknown_import") in a.events
    assert cart_of(a.fields["base"]) == {1: 1, 4: 1} and a.fields["lrev"] == 5


def test_another_node_s_copy_is_never_merged() -> None:
    a = judge(held({1: 1}, {1: 1}), "b@boot2", False, Copy(9, doc({5: 5})))
    assert not a.current and a.fields == {} and a.node_rev == 9 and a.reason == "rehydrate"
    born_on_new = Held(doc({1: 1}).to_json(), 2, "", 0, Document().to_json(), 0)
    assert judge(born_on_new, NODE, False, None).reason == "assign"


def test_a_node_that_forgot_the_session_gets_it_again() -> None:
    a = judge(held({1: 1}, {1: 1}), NODE, True, None)
    assert not a.current and a.node_rev == 0 and a.reason == "node_forgot"


def test_logout_on_legacy_empties_the_session() -> None:
    a = judge(held({1: 1}, {1: 1}, v=6, lv=5), NODE, True, Copy(4, doc({}, user=None)))
    merged = Document.from_json(str(a.fields["doc"]))
    assert merged.user is None and cart_of(a.fields["doc"]) == {}


def test_conflicts_found_by_the_merge_are_reported() -> None:
    spec = {**shop_session(), "fields": {"note": {"path": "/note", "rule": "lww"}}}
    notes = build(spec)
    base = Document(ALICE, {"note": "a"})
    rec = Held(Document(ALICE, {"note": "new"}).to_json(), 6, NODE, 3, base.to_json(), 5)
    a = assess(rec, NODE, True, Copy(4, Document(ALICE, {"note": "legacy"})), notes.merge)
    assert a.conflicts == ("note",)
    assert Document.from_json(str(a.fields["doc"])).fields["note"] == "legacy"


def test_a_record_that_is_not_a_document_takes_the_node_s_copy() -> None:
    """An older schema or a broken writer: the node's copy is all there is."""
    rec = Held('{"schema": 1, "cart": {}}', 6, NODE, 3, "", 5)
    a = judge(rec, NODE, True, Copy(3, doc({1: 1})))
    assert a.current and a.bump and cart_of(a.fields["doc"]) == {1: 1}
    assert ("stale", "unreadable_document") in a.events
