from __future__ import annotations

from http.cookies import SimpleCookie

import pytest

from gateway.edge.cookies import DuplicateCookie, expire_lines, parse, set_cookie


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


def test_the_session_cookie_resolves_as_the_monolith_does() -> None:
    header = "sessionid=first; strangler_aff=a; sessionid=second; strangler_aff=b"
    assert parse(header, "sessionid", "first") == {"sessionid": "first", "strangler_aff": "a"}
    assert parse(header, "sessionid", "last") == {"sessionid": "second", "strangler_aff": "a"}
    with pytest.raises(DuplicateCookie):
        parse(header, "sessionid", "reject")
    with pytest.raises(DuplicateCookie):  # a browser holding two will not keep them equal
        parse("sessionid=x; sessionid=x", "sessionid", "reject")
    assert parse("sessionid=only", "sessionid", "reject") == {"sessionid": "only"}


def test_expiring_duplicates_covers_each_path_and_the_domain() -> None:
    lines = expire_lines("sessionid", "/app/cart/7", "shop.example:8080", secure=True)
    assert "sessionid=; Max-Age=0; Path=/; Secure" in lines
    assert "sessionid=; Max-Age=0; Path=/app/cart; Domain=shop.example; Secure" in lines
    assert len(lines) == 8  # 4 paths, host-only and for the domain
    assert expire_lines("s", "/", "127.0.0.1:80", secure=False) == ["s=; Max-Age=0; Path=/"]


def test_expiring_never_echoes_what_could_end_the_attribute() -> None:
    lines = expire_lines("s", "/a;Domain=evil/b", "h", secure=False)
    assert all("evil" not in line for line in lines)


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
