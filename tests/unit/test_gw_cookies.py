from __future__ import annotations

from http.cookies import SimpleCookie

import pytest

from gateway.cookies import parse


@pytest.mark.parametrize("header", [
    "shop_session=abc-DEF_123; strangler_aff=a; strangler_sync=xyz",
    "  shop_session = abc ;strangler_aff=b",
    'shop_session="quoted"; other=1',
    "a=1; b=2; c=3=4",
])
def test_agrees_with_the_standard_library_on_ordinary_headers(header: str) -> None:
    ours = parse(header)
    theirs = {k: m.value for k, m in SimpleCookie(header).items()}
    assert ours == theirs


def test_the_first_of_two_same_named_cookies_wins() -> None:
    assert parse("shop_session=first; shop_session=second") == {"shop_session": "first"}


def test_junk_is_ignored_not_fatal() -> None:
    assert parse("garbage; ; =novalue; ok=1;;") == {"ok": "1"}
    assert parse(None) == {} and parse("") == {}
