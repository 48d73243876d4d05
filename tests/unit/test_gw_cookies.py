from __future__ import annotations

from http.cookies import SimpleCookie

import pytest

from gateway.cookies import parse, set_cookie


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


def test_the_gateways_own_cookies_read_back_as_a_browser_would() -> None:
    line = set_cookie("strangler_aff", "a-1", secure=True, max_age=60)
    jar: SimpleCookie = SimpleCookie()
    jar.load(line)
    morsel = jar["strangler_aff"]
    assert morsel.value == "a-1" and morsel["path"] == "/" and morsel["samesite"] == "Lax"
    assert morsel["httponly"] and morsel["secure"] and morsel["max-age"] == "60"
    plain = set_cookie("strangler_sync", "Zx_9-q", secure=False)
    assert "Secure" not in plain and "Max-Age" not in plain


@pytest.mark.parametrize("value", ["", "a;b", "a b", 'a"', "a\r\nSet-Cookie: x=1", "é"])
def test_a_value_outside_the_token_alphabet_is_refused(value: str) -> None:
    with pytest.raises(ValueError):
        set_cookie("strangler_aff", value, secure=False)
