"""The Django kit's pure parts (strict JSON, import bodies, fences, settings, reserved keys)
and the trips example's session-state rules; the kit in real nodes is
tests/integration/test_kit_django.py."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from strangler_django import bodies, conf, revision, sessions, views

from strangler.hookcheck.jsondiff import ROUNDTRIP_DATA, first_difference
from testkit.trips import LEGACY

sys.path.insert(0, str(LEGACY))
from planner import state  # the example project, on sys.path just above


@pytest.mark.parametrize("text", ["NaN", "[Infinity]", '{"a": -Infinity}', "1e999", "[1,",
                                  "", "plain", '"\\ud800" x'])
def test_what_is_not_json_is_refused_with_400(text: str) -> None:
    with pytest.raises(bodies.BodyError) as caught:
        bodies.parse_json(text.encode())
    assert caught.value.status == 400


def test_bytes_that_are_not_utf8_are_refused() -> None:
    with pytest.raises(bodies.BodyError):
        bodies.parse_json(b'{"a": "\xff"}')


def test_numbers_and_text_are_written_back_as_the_same_json_values() -> None:
    parsed = bodies.parse_json(ROUNDTRIP_DATA.encode())
    again = json.loads(bodies.dumps(parsed))
    assert first_difference(json.loads(ROUNDTRIP_DATA), again) is None
    assert bodies.dumps(bodies.parse_json(b"[1, 1.0, 18446744073709551616]")) \
        == "[1, 1.0, 18446744073709551616]"


def test_nesting_past_the_limit_is_refused() -> None:
    ok = "[" * (bodies.MAX_DEPTH + 1) + "]" * (bodies.MAX_DEPTH + 1)
    assert bodies.depth(bodies.parse_json(ok.encode())) == bodies.MAX_DEPTH + 1
    deep = "[" * (bodies.MAX_DEPTH + 2) + "]" * (bodies.MAX_DEPTH + 2)
    with pytest.raises(bodies.BodyError) as caught:
        bodies.parse_json(deep.encode())
    assert caught.value.code == "too_deep"


def test_an_import_body_is_data_expected_revision_and_an_optional_fence() -> None:
    assert views.parse_import({"data": {"a": 1}, "expected_revision": None}) == ({"a": 1}, None,
                                                                                 None)
    assert views.parse_import({"data": {}, "expected_revision": 3, "fence": 9}) == ({}, 3, 9)


@pytest.mark.parametrize("body", [
    [], {"data": {}}, {"expected_revision": 1}, {"data": [], "expected_revision": 1},
    {"data": {}, "expected_revision": -1}, {"data": {}, "expected_revision": 1.0},
    {"data": {}, "expected_revision": True}, {"data": {}, "expected_revision": "1"},
    {"data": {}, "expected_revision": 1, "fence": -2}, {"data": {}, "expected_revision": 2**63},
])
def test_a_malformed_import_body_is_a_400(body: Any) -> None:
    with pytest.raises(bodies.BodyError) as caught:
        views.parse_import(body)
    assert caught.value.status == 400


@pytest.mark.parametrize("raw", ["-1", "abc", "1.5", "0x10", "", " 1", "\u0661", "9" * 20])
def test_a_malformed_fence_header_is_a_400(raw: str) -> None:
    with pytest.raises(bodies.BodyError):
        views._fence_header(raw)


def test_a_fence_header_is_a_non_negative_integer() -> None:
    assert views._fence_header(None) is None
    assert views._fence_header("0") == 0
    assert views._fence_header(str(2**63 - 1)) == 2**63 - 1


def test_the_kit_keys_never_show_and_revisions_default_sensibly() -> None:
    data = {"a": 1, revision.REV_KEY: 4, revision.IMPORTED_KEY: [7, 3]}
    assert revision.visible(data) == {"a": 1}
    assert revision.revision_of(data, exists=True) == 4
    assert revision.revision_of(data, exists=False) == 0
    assert revision.revision_of({"a": 1}, exists=True) == 1, "saved before the kit: exists"
    assert revision.imported_of(data) == (7, 3)
    assert revision.imported_of({revision.IMPORTED_KEY: "junk"}) is None


@pytest.mark.parametrize("sid,ok", [("a" * 32, True), ("abcd1234", True), ("short", False),
                                    ("A" * 32, False), ("a" * 41, False), ("a/b" * 4, False),
                                    ("a" * 31 + "\n", False)])
def test_only_ids_every_engine_can_store_are_taken(sid: str, ok: bool) -> None:
    assert sessions.valid_id(sid) is ok


def test_settings_are_read_and_the_token_file_too(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text(" s3cret \n")
    parsed = conf.parse({"NODE_ID": "a", "INTERNAL_TOKEN_FILE": str(token),
                         "HEADERS": {"revision": "X-App-Rev"}})
    assert (parsed.node_id, parsed.token, parsed.revision_header, parsed.session_header) \
        == ("a", "s3cret", "X-App-Rev", conf.DEFAULT_HEADERS["session_id"])
    assert parsed.max_import_bytes == conf.DEFAULT_MAX_IMPORT_BYTES
    assert conf.parse({"NODE_ID": "a"}).token is None, "no token: the hook answers 503"


@pytest.mark.parametrize("raw,words", [
    (None, "must be a dict"),
    ({}, "NODE_ID"),
    ({"NODE_ID": "a", "TOKEN": "x"}, "unknown keys"),
    ({"NODE_ID": "a", "HEADERS": {"rev": "X"}}, "HEADERS"),
    ({"NODE_ID": "a", "HEADERS": {"node": "X Node"}}, "header name"),
    ({"NODE_ID": "a", "MAX_IMPORT_BYTES": 10}, "MAX_IMPORT_BYTES"),
    ({"NODE_ID": "a", "INTERNAL_TOKEN": "x", "INTERNAL_TOKEN_FILE": "/f"}, "not both"),
    ({"NODE_ID": "a", "INTERNAL_TOKEN_FILE": "/nonexistent/token"}, "cannot read"),
])
def test_bad_settings_are_refused_by_name(raw: Any, words: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=words):
        conf.parse(raw)


def test_the_trips_state_rules() -> None:
    assert state.add_saved(["oaxaca", "kyoto"], "lisbon") == ["kyoto", "lisbon", "oaxaca"]
    assert state.add_saved(["kyoto"], "kyoto") == ["kyoto"]
    assert state.drop_saved(None, "kyoto") == []
    views_, recent = state.viewed({"kyoto": 2}, [f"s{i}" for i in range(10)], "kyoto")
    assert views_ == {"kyoto": 3} and recent[0] == "kyoto" and len(recent) == 10
    assert state.viewed(None, ["a", "kyoto", "b"], "kyoto")[1] == ["kyoto", "a", "b"]
    assert state.set_pref(None, "theme", "dark") == {"theme": "dark"}
    assert state.drop_pref({"theme": "dark"}, "lang") == {"theme": "dark"}
    assert state.wizard_complete({"where": {}, "when": {}, "who": {}})
    assert not state.wizard_complete({"where": {}, "when": {}})
    assert state.destination_of({"where": {"destination": "kyoto"}}) == "kyoto"
    assert state.destination_of({"where": {"destination": "Kyoto!"}}) is None
    assert state.valid_key("k-1") and not state.valid_key("") and not state.valid_key("é")


@pytest.mark.parametrize("call", [
    lambda: state.set_pref(None, "theme", ""),
    lambda: state.set_pref(None, "theme", 1),
    lambda: state.wizard_answers({f"k{i}": 1 for i in range(21)}),
    lambda: state.wizard_answers({"k": [1]}),
    lambda: state.wizard_answers({"": 1}),
    lambda: state.wizard_answers([]),
    lambda: state.draft_text({"text": "x" * 2001}),
    lambda: state.draft_text({}),
])
def test_the_trips_state_refuses_out_of_bounds_input(call: Any) -> None:
    with pytest.raises(state.Invalid):
        call()
