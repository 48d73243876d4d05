"""gateway.edge.canonical: the path the gateway matches is the path the backend serves.

Every test here is about one promise: no encoding trick makes the gateway
match one route while the backend resolves another. ``forward.py`` hands
``base_url + Target.forward`` to aiohttp, which parses it with yarl; the
tests model the backend's view of the forwarded target the same way.
"""

from __future__ import annotations

import random
from urllib.parse import unquote

import pytest
import yarl

from gateway.edge.canonical import Target, canonical
from gateway.errors import BadPath, UriTooLong

MAX = 8192
BACKEND = "http://127.0.0.1:8101"


def backend_path(forward: str) -> str:
    """The decoded path a backend sees for ``forward``, parsed as forward.py has aiohttp do."""
    return yarl.URL(BACKEND + forward).path


def segments(path: str) -> list[str]:
    return path.split("/")[1:]


# ---------------------------------------------------------------- dot segments


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ("/api/../admin", "/admin"),
        ("/api/%2e%2e/admin", "/admin"),
        ("/api/%2E%2E/admin", "/admin"),
        ("/api/%2E%2e/admin", "/admin"),
        ("/api/.%2e/admin", "/admin"),
        ("/api/%2e./admin", "/admin"),
        ("/api/cart/%2e%2e/%2e%2e/admin", "/admin"),
        ("/api/./cart", "/api/cart"),
        ("/api/%2e/cart", "/api/cart"),
        ("/api/%2E/cart", "/api/cart"),
        ("/../../../etc/passwd", "/etc/passwd"),
        ("/%2e%2e/%2e%2e/etc", "/etc"),
        ("/api/cart/items/1/../../../orders", "/api/orders"),
    ],
)
def test_dot_segments_resolve_before_matching(raw: str, path: str) -> None:
    target = canonical(raw, MAX)
    assert target.path == path
    assert target.forward == path
    assert backend_path(target.forward) == path


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ("/api/%2E%2e/", "/"),
        ("/api/..", "/"),
        ("/api/%2e%2e", "/"),
        ("/api/cart/.", "/api/cart/"),
        ("/api/cart/%2e", "/api/cart/"),
        ("/api/cart/..", "/api/"),
        ("/..", "/"),
        ("/.", "/"),
    ],
)
def test_trailing_dot_segments_leave_a_directory(raw: str, path: str) -> None:
    assert canonical(raw, MAX).path == path


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ("/api//cart", "/api/cart"),
        ("//api/cart", "/api/cart"),
        ("/api///cart//items", "/api/cart/items"),
        ("/api/cart//", "/api/cart/"),
        ("//", "/"),
    ],
)
def test_empty_segments_collapse(raw: str, path: str) -> None:
    target = canonical(raw, MAX)
    assert target.path == path
    assert "//" not in target.forward


def test_dots_inside_a_name_are_not_dot_segments() -> None:
    target = canonical("/static/app.min.js/.../..x/x..", MAX)
    assert target.path == "/static/app.min.js/.../..x/x.."


def test_an_encoded_percent_is_decoded_once_only() -> None:
    # %252e is a literal "%2e", not a dot: decoding twice would climb out of /api.
    target = canonical("/api/%252e%252e/admin", MAX)
    assert target.path == "/api/%2e%2e/admin"
    assert backend_path(target.forward) == "/api/%2e%2e/admin"


def test_plain_path_is_forwarded_untouched() -> None:
    assert canonical("/api/cart/items/12", MAX) == Target("/api/cart/items/12",
                                                          "/api/cart/items/12")


def test_utf8_is_decoded_for_matching_and_encoded_for_forwarding() -> None:
    target = canonical("/caf%C3%A9/men%c3%bc", MAX)
    assert target.path == "/café/menü"
    assert backend_path(target.forward) == "/café/menü"


def test_encoded_unreserved_characters_match_their_plain_form() -> None:
    assert canonical("/api/%63art", MAX).path == "/api/cart"
    assert canonical("/api/%63art", MAX).forward == "/api/cart"


# ---------------------------------------------------------------- refused


@pytest.mark.parametrize(
    "raw",
    [
        "/api/cart%2F..%2F..%2Fadmin",
        "/api/cart%2f..%2fadmin",
        "/api/%2F",
        "/api/cart%5C..%5Cadmin",
        "/api/cart%5c",
    ],
)
def test_encoded_separators_are_refused(raw: str) -> None:
    with pytest.raises(BadPath):
        canonical(raw, MAX)


@pytest.mark.parametrize("raw", ["/api/cart;jsessionid=1", "/api/cart/..;/admin", "/api;/cart"])
def test_path_parameters_are_refused(raw: str) -> None:
    with pytest.raises(BadPath):
        canonical(raw, MAX)


@pytest.mark.parametrize("raw", ["/api/%3b/cart", "/api/%3B"])
def test_an_encoded_semicolon_stays_data(raw: str) -> None:
    try:
        target = canonical(raw, MAX)
    except BadPath:
        return  # refusing it is fine too
    assert ";" not in target.forward
    assert backend_path(target.forward) == target.path


@pytest.mark.parametrize("raw", ["/api\\..\\admin", "/api/cart\\", "\\api"])
def test_backslash_is_refused(raw: str) -> None:
    with pytest.raises(BadPath):
        canonical(raw, MAX)


@pytest.mark.parametrize(
    "raw",
    ["/api/%00", "/api/cart%00.json", "/api/%0a", "/api/%0D%0AX-Injected:1", "/api/%7f",
     "/api/%1b", "/api/%09"],
)
def test_encoded_control_characters_are_refused(raw: str) -> None:
    with pytest.raises(BadPath):
        canonical(raw, MAX)


@pytest.mark.parametrize("char", ["\x00", "\x01", "\t", "\n", "\r", "\x1f", "\x7f"])
def test_raw_control_characters_are_refused(char: str) -> None:
    with pytest.raises(BadPath):
        canonical(f"/api/ca{char}rt", MAX)
    with pytest.raises(BadPath):
        canonical(f"/api/%41{char}", MAX)


@pytest.mark.parametrize("raw", ["/api/%C3", "/api/%ff", "/api/%FF%FE", "/api/%C3%28",
                                 "/api/%e2%82", "/api/%c0%ae%c0%ae/admin", "/a\udcffb"])
def test_invalid_utf8_is_refused(raw: str) -> None:
    # %c0%ae is the over-long encoding of "." (the classic IIS traversal).
    with pytest.raises(BadPath):
        canonical(raw, MAX)


@pytest.mark.parametrize("raw", ["/api/%", "/api/%4", "/api/%zz", "/api/%%32%65", "/api/%G0"])
def test_malformed_percent_encoding_is_refused(raw: str) -> None:
    with pytest.raises(BadPath):
        canonical(raw, MAX)


@pytest.mark.parametrize("raw", ["", "*", "api/cart", "http://evil.example/api/cart",
                                 "?a=1", "%2Fapi"])
def test_only_an_absolute_path_is_a_target(raw: str) -> None:
    with pytest.raises(BadPath):
        canonical(raw, MAX)


def test_over_long_target_is_414() -> None:
    ok = "/" + "a" * 255
    assert canonical(ok, 256).path == ok
    with pytest.raises(UriTooLong):
        canonical(ok + "a", 256)
    # the query counts too: the limit is on the whole request target
    with pytest.raises(UriTooLong):
        canonical("/a?" + "q" * 300, 256)


def test_over_long_is_checked_before_anything_else() -> None:
    with pytest.raises(UriTooLong):
        canonical("/%00" * 100, 256)


# ---------------------------------------------------------------- query


def test_query_passes_through_raw() -> None:
    raw = "/api/products?q=caf%C3%A9+au+lait&x=%2e%2e%2F&y=a;b&z=/../"
    target = canonical(raw, MAX)
    assert target.path == "/api/products"
    assert target.forward == raw


def test_query_is_kept_after_a_rewritten_path() -> None:
    target = canonical("/api/../api/products?page=2&q=%2e%2e", MAX)
    assert target.path == "/api/products"
    assert target.forward == "/api/products?page=2&q=%2e%2e"


def test_empty_query_is_kept() -> None:
    assert canonical("/api/products?", MAX).forward == "/api/products?"


@pytest.mark.parametrize(
    "raw",
    [
        "/api/products?q=%00",
        "/api/products?q=a%00b",
        "/api/products?q=%C3",
        "/api/products?q=%ff",
        "/api/products?q=%",
        "/api/products?q=%4",
        "/api/products?q=%zz",
        "/api/products?q=a\x00b",
        "/api/products?q=a\nb",
    ],
)
def test_bad_query_is_refused(raw: str) -> None:
    with pytest.raises(BadPath):
        canonical(raw, MAX)


# ---------------------------------------------------------------- fragments


@pytest.mark.parametrize("raw", ["/api/checkout#x", "/api/orders#", "/api/cart#/items"])
def test_a_fragment_cannot_change_the_route_the_backend_serves(raw: str) -> None:
    try:
        target = canonical(raw, MAX)
    except BadPath:
        return  # refusing a fragment (never valid in a request target) is the clean answer
    assert backend_path(target.forward) == target.path


# ---------------------------------------------------------------- properties

_ATOMS = [
    "api", "cart", "admin", "items", "12", "", ".", "..", "...", ".x", "x.", "a.b",
    "%2e", "%2E", "%2e%2e", "%2E%2e", "%2e%2E", ".%2e", "%2e.", "%2E.", "%252e%252e",
    "%25", "%41", "%7e", "%7E", "%20", " ", "+", "~", "-", "_", ":", "@", "!", "$", "&",
    "'", "(", ")", "*", ",", "=", "[", "]", "{", "}", "|", "^", "`", "<", ">", '"',
    "é", "%C3%A9", "€", "%E2%82%AC", "%3F", "%23", "%3b",
    # refused ones, so the loop also proves refusal never leaks a partial result
    "%2f", "%2F", "%5c", "%00", ";", "\\", "\t", "%ff", "%C3", "%", "%g1", "\x7f",
]


def _tricky_paths(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        prefix = rng.choice(["", "/api", "/api/cart", "/api/products"])
        body = "/".join(rng.choice(_ATOMS) for _ in range(rng.randint(0, 7)))
        path = f"{prefix}/{body}"
        if rng.random() < 0.2:
            path += "/"
        if rng.random() < 0.2:
            path += "?q=" + rng.choice(["1", "%2e%2e", "a+b", "x;y", "/../"])
        out.append(path)
    return out


def test_whatever_canonical_returns_is_canonical_and_stable() -> None:
    accepted = 0
    for raw in _tricky_paths(8_000, seed=20_260_101):
        try:
            target = canonical(raw, MAX)
        except BadPath:
            continue
        accepted += 1
        path, forward = target.path, target.forward
        fwd_path = forward.partition("?")[0]
        assert path.startswith("/"), raw
        assert fwd_path.startswith("/"), raw
        for form in (path, fwd_path, unquote(fwd_path)):
            assert "/../" not in f"{form}/", raw
            assert "/./" not in f"{form}/", raw
            assert "//" not in form, raw
        # what is forwarded is what was matched, as the backend decodes it
        assert unquote(fwd_path) == path, raw
        assert backend_path(forward) == path, raw
        # idempotence: canonicalising the forward form changes nothing
        assert canonical(forward, MAX) == target, raw
        # and the query is never rewritten
        assert forward.partition("?")[2] == raw.partition("?")[2], raw
    assert accepted > 2_000  # the generator must exercise the accepting side too


def test_a_match_under_a_prefix_is_served_under_that_prefix() -> None:
    """If the canonical path is under /api/cart/, so is what the backend resolves -- and
    a path that climbs out of /api/cart/ is matched outside it."""
    for raw in _tricky_paths(4_000, seed=7):
        try:
            target = canonical(raw, MAX)
        except BadPath:
            continue
        inside = target.path.startswith("/api/cart/")
        assert backend_path(target.forward).startswith("/api/cart/") == inside, raw
    escape = canonical("/api/cart/%2e%2e/%2E%2e/admin", MAX)
    assert not escape.path.startswith("/api/cart/")
    assert escape.path == "/admin"
