"""Request validation of the new services: malformed input is a 4xx ``ApiError``."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from new_services.errors import ApiError
from new_services.validation import (
    CartItem,
    cart_item,
    credentials,
    fits_db_id,
    idempotency_key,
    json_object,
    path_id,
    request_hash,
)


def code_of(exc: pytest.ExceptionInfo[ApiError]) -> tuple[int, str]:
    return exc.value.status, exc.value.code


@pytest.mark.parametrize("raw,value", [("1", 1), ("007", 7), ("2147483648", 2147483648),
                                       ("-3", -3), ("9" * 30, int("9" * 30))])
def test_path_ids_are_integers_as_the_monolith_reads_them(raw: str, value: int) -> None:
    assert path_id(raw) == value


@pytest.mark.parametrize("raw", ["", "a", "-", "--1", "+1", " 1", "1 ", "1.0", "1_0",
                                 "\u0667", "\uff11", "1e3", "9" * 31, "0x1"])
def test_other_path_ids_are_404(raw: str) -> None:
    with pytest.raises(ApiError) as exc:
        path_id(raw)
    assert code_of(exc) == (404, "not_found")


@pytest.mark.parametrize("value,fits", [(0, False), (1, True), (2**31 - 1, True),
                                        (2**31, False), (-3, False)])
def test_db_ids_fit_an_integer_column(value: int, fits: bool) -> None:
    assert fits_db_id(value) is fits


def test_a_cart_item() -> None:
    assert cart_item({"product_id": 3, "qty": 100, "extra": "ignored"}) == CartItem(3, 100)


@pytest.mark.parametrize("body", [
    {}, {"product_id": 1}, {"qty": 1}, {"product_id": 1, "qty": 0},
    {"product_id": 1, "qty": 101}, {"product_id": 1, "qty": True},
    {"product_id": False, "qty": 1}, {"product_id": 1, "qty": 1.0},
    {"product_id": "1", "qty": 1}, {"product_id": 1, "qty": None},
])
def test_bad_cart_items_are_400(body: dict[str, Any]) -> None:
    with pytest.raises(ApiError) as exc:
        cart_item(body)
    assert code_of(exc) == (400, "bad_request")


@pytest.mark.parametrize("raw", [b"", b" ", b"{", b"[]", b"1", b"null", b'"x"', b"\xff\xfe",
                                 b"[" * 100_000, "{}".encode("utf-16"),
                                 "{}".encode("utf-8-sig")])
def test_json_bodies_must_be_objects(raw: bytes) -> None:
    with pytest.raises(ApiError) as exc:
        json_object(raw)
    assert code_of(exc) == (400, "bad_request")


@pytest.mark.parametrize("body", [{"username": "a"}, {"password": "p"},
                                  {"username": 1, "password": "p"},
                                  {"username": "a", "password": None}])
def test_credentials_must_be_two_strings(body: dict[str, Any]) -> None:
    with pytest.raises(ApiError) as exc:
        credentials(body)
    assert code_of(exc) == (400, "bad_request")


@pytest.mark.parametrize("key", [None, "a", "k" * 255, "with space", "~!@#$%^&*()"])
def test_valid_idempotency_keys(key: str | None) -> None:
    assert idempotency_key(key) == key


@pytest.mark.parametrize("key", ["", "k" * 256, "tab\t", "new\nline", "caf\u00e9", "\x7f"])
def test_invalid_idempotency_keys_are_400(key: str) -> None:
    with pytest.raises(ApiError) as exc:
        idempotency_key(key)
    assert code_of(exc) == (400, "invalid_idempotency_key")


def test_request_hash_is_of_the_canonical_body() -> None:
    canonical = '{"a":[1,2],"b":"\\u00e9"}'
    expected = hashlib.sha256(canonical.encode()).hexdigest()
    assert request_hash('{ "b": "\u00e9", "a": [1, 2] }'.encode()) == expected


def test_no_body_hashes_the_empty_string() -> None:
    assert request_hash(b"") == hashlib.sha256(b"").hexdigest()


@pytest.mark.parametrize("raw", [b"{nope", b" ", b"\n", "{}".encode("utf-16")])
def test_a_body_that_is_not_utf8_json_cannot_be_hashed(raw: bytes) -> None:
    with pytest.raises(ApiError) as exc:
        request_hash(raw)
    assert code_of(exc) == (400, "bad_request")
