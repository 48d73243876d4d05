"""Untrusted input of the monolith's API and of its import endpoint."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from legacy_shop.errors import ApiError
from legacy_shop.export_hook import parse_import
from legacy_shop.sessions import SETTLED_KEPT, BadSessionData
from legacy_shop.validation import (
    parse_cart_item,
    parse_credentials,
    parse_json,
    parse_object,
    parse_path_id,
    request_hash,
    storable_id,
    valid_idempotency_key,
)


def _code(fn: Any, *args: Any) -> str:
    with pytest.raises(ApiError) as info:
        fn(*args)
    return info.value.code


@pytest.mark.parametrize("raw", [b"", b"{", b"\xff\xfe", b"[" * 100_000, b"1" * 5000, b"nul"])
def test_parse_json_rejects_non_json(raw: bytes) -> None:
    assert _code(parse_json, raw) == "bad_request"


@pytest.mark.parametrize("raw", [b"[]", b'"x"', b"1", b"null", b"true"])
def test_parse_object_wants_an_object(raw: bytes) -> None:
    assert _code(parse_object, raw) == "bad_request"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"product_id": 1},
        {"qty": 1},
        {"product_id": "1", "qty": 1},
        {"product_id": 1, "qty": "1"},
        {"product_id": True, "qty": 1},
        {"product_id": 1, "qty": True},
        {"product_id": 1.0, "qty": 1},
        {"product_id": 1, "qty": 1.0},
        {"product_id": None, "qty": 1},
        {"product_id": 1, "qty": 0},
        {"product_id": 1, "qty": 101},
        {"product_id": 1, "qty": -1},
        {"product_id": 1, "qty": 10**30},
        {"product_id": [1], "qty": 1},
    ],
)
def test_cart_item_rejects(body: dict[str, Any]) -> None:
    assert _code(parse_cart_item, body) == "bad_request"


def test_cart_item_accepts_the_whole_range() -> None:
    assert parse_cart_item({"product_id": 3, "qty": 1}) == (3, 1)
    assert parse_cart_item({"product_id": 3, "qty": 100, "extra": "ignored"}) == (3, 100)
    # A well-typed but absurd id is the handler's "no such product", not a crash.
    assert parse_cart_item({"product_id": 10**30, "qty": 1}) == (10**30, 1)


@pytest.mark.parametrize("body", [{}, {"username": "a"}, {"username": 1, "password": "x"},
                                  {"username": "a", "password": None}])
def test_credentials_must_be_strings(body: dict[str, Any]) -> None:
    assert _code(parse_credentials, body) == "bad_request"


@pytest.mark.parametrize("text,value", [("1", 1), ("12", 12), ("007", 7), ("-1", -1)])
def test_path_id_accepts_integers(text: str, value: int) -> None:
    assert parse_path_id(text) == value


@pytest.mark.parametrize("text", ["", "abc", "1.5", "1e3", " 1", "+1", "1_0", "\u0661", "9" * 31])
def test_path_id_rejects_everything_else(text: str) -> None:
    assert _code(parse_path_id, text) == "not_found"


def test_storable_id_is_the_int32_range() -> None:
    assert storable_id(1) and storable_id(2**31 - 1)
    assert not storable_id(0) and not storable_id(-1) and not storable_id(2**31)


@pytest.mark.parametrize("key", ["a", "a b", "~!@#", "k" * 255, "550e8400-e29b-41d4-a716"])
def test_idempotency_key_valid(key: str) -> None:
    assert valid_idempotency_key(key)


@pytest.mark.parametrize("key", ["", "k" * 256, "caf\u00e9", "a\tb", "a\x7f", "a\nb"])
def test_idempotency_key_invalid(key: str) -> None:
    assert not valid_idempotency_key(key)


def test_request_hash_is_of_the_canonical_body() -> None:
    assert request_hash(b"") == hashlib.sha256(b"").hexdigest()
    canonical = json.dumps({"a": 2, "b": [1, {"c": None}]}, sort_keys=True,
                           separators=(",", ":"))
    expected = hashlib.sha256(canonical.encode()).hexdigest()
    assert request_hash(b'{"b": [1, {"c": null}],\n "a": 2}') == expected
    assert request_hash(b'{"a":2,"b":[1,{"c":null}]}') == expected
    assert request_hash(b"{}") != request_hash(b"")
    assert _code(request_hash, b"{") == "bad_request"


GOOD = {"uid": 1, "uname": "alice", "basket": [{"sku": 3, "quantity": 2}], "csrf": "t"}


def test_parse_import_normalises_the_basket() -> None:
    data = {"uid": 1, "uname": "alice", "csrf": "t", "basket": [
        {"sku": 5, "quantity": 1}, {"sku": 3, "quantity": 2}, {"sku": 5, "quantity": 1},
        {"sku": 9, "quantity": 0},
    ]}
    parsed, expected, fence = parse_import({"data": data, "expected_revision": 4, "fence": 17})
    assert expected == 4 and fence == 17
    assert parsed == {**data, "basket": [{"sku": 3, "quantity": 2}, {"sku": 5, "quantity": 2}]}


def test_parse_import_keeps_settled_orders_once_each_and_the_newest() -> None:
    orders = [*range(SETTLED_KEPT + 5, 0, -1), 7]
    parsed, _, _ = parse_import({"data": {**GOOD, "settled_orders": orders},
                                 "expected_revision": None})
    assert parsed["settled_orders"] == list(range(6, SETTLED_KEPT + 6))


def test_parse_import_anonymous() -> None:
    parsed, expected, fence = parse_import({"data": {"uid": None, "uname": None, "basket": []},
                                            "expected_revision": None})
    assert parsed == {"uid": None, "uname": None, "basket": []}
    assert expected is None and fence is None


def test_parse_import_keeps_what_it_does_not_read_and_adds_nothing() -> None:
    """A session born on new has no basket yet; the node's own keys come as they went."""
    data = {"uid": 2, "uname": "bob", "theme": "dark", "flash": {"\u00fc": [1, 2.5, None, True]},
            "csrf": "t"}
    assert parse_import({"data": data, "expected_revision": None})[0] == data
    assert parse_import({"data": {}, "expected_revision": 0})[0] == {}


def test_parse_import_does_not_change_what_it_was_given() -> None:
    data = {**GOOD, "basket": [{"sku": 5, "quantity": 1}, {"sku": 3, "quantity": 0}]}
    before = json.dumps(data)
    parse_import({"data": data, "expected_revision": None})
    assert json.dumps(data) == before


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"data": GOOD},
        {"expected_revision": 1},
        {"data": [], "expected_revision": None},
        {"data": GOOD, "expected_revision": "1"},
        {"data": GOOD, "expected_revision": 1, "fence": "1"},
        {"data": GOOD, "expected_revision": 1, "fence": True},
        {"data": GOOD, "expected_revision": 1, "fence": -3},
        {"data": GOOD, "expected_revision": True},
        {"data": GOOD, "expected_revision": -1},
        {"data": GOOD, "expected_revision": 1.0},
        {"data": {**GOOD, "uid": "1"}, "expected_revision": None},
        {"data": {**GOOD, "uid": True}, "expected_revision": None},
        {"data": {**GOOD, "uid": 1.0}, "expected_revision": None},
        {"data": {**GOOD, "uname": None}, "expected_revision": None},
        {"data": {"uid": 1, "basket": []}, "expected_revision": None},
        {"data": {**GOOD, "uname": 5}, "expected_revision": None},
        {"data": {**GOOD, "basket": {}}, "expected_revision": None},
        {"data": {**GOOD, "basket": None}, "expected_revision": None},
        {"data": {**GOOD, "basket": [1]}, "expected_revision": None},
        {"data": {**GOOD, "basket": [{"sku": 3}]}, "expected_revision": None},
        {"data": {**GOOD, "basket": [{"sku": 3, "quantity": 1, "x": 1}]},
         "expected_revision": None},
        {"data": {**GOOD, "basket": [{"sku": "3", "quantity": 1}]}, "expected_revision": None},
        {"data": {**GOOD, "basket": [{"sku": True, "quantity": 1}]}, "expected_revision": None},
        {"data": {**GOOD, "basket": [{"sku": 3, "quantity": -1}]}, "expected_revision": None},
        {"data": {**GOOD, "basket": [{"sku": 3, "quantity": False}]}, "expected_revision": None},
        {"data": {**GOOD, "basket": [{"sku": 3, "quantity": 1.0}]}, "expected_revision": None},
        {"data": {**GOOD, "settled_orders": "41"}, "expected_revision": None},
        {"data": {**GOOD, "settled_orders": [41, "57"]}, "expected_revision": None},
        {"data": {**GOOD, "settled_orders": [0]}, "expected_revision": None},
        {"data": {**GOOD, "settled_orders": [-41]}, "expected_revision": None},
        {"data": {**GOOD, "settled_orders": [True]}, "expected_revision": None},
    ],
)
def test_parse_import_rejects(body: Any) -> None:
    with pytest.raises(BadSessionData):
        parse_import(body)
