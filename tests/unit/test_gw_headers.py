"""gateway.edge.headers: what a backend and a client may see of each other's headers."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.edge.headers import Hygiene, TrustedProxies, request_id, screen
from gateway.errors import BadHeader
from tests.support.profiles import shop_profile

HYGIENE = Hygiene(shop_profile().response_headers)
INTERNAL_HEADERS = HYGIENE.internal
"""Strangler's own internal headers and the monolith's session headers the profile names."""
client_response_headers = HYGIENE.to_client

PEER = "203.0.113.9"
PROXY = "10.0.0.5"
RID = "rid-0123456789"


def h(*pairs: tuple[str, str]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(pairs))


def to_backend(*pairs: tuple[str, str], peer: str = PEER, trusted: bool = False,
               proto: str = "http") -> CIMultiDict[str]:
    return HYGIENE.to_upstream(h(*pairs), peer=peer, trusted_proxy=trusted, proto=proto,
                               host="shop.example", rid=RID)


def lower_names(headers: CIMultiDict[str]) -> set[str]:
    return {k.lower() for k in headers}


# ---------------------------------------------------------------- toward a backend

HOP_BY_HOP = ["Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
              "Proxy-Connection", "TE", "Trailer", "Transfer-Encoding", "Upgrade"]


def test_hop_by_hop_headers_do_not_reach_a_backend() -> None:
    out = to_backend(*[(name, "x") for name in HOP_BY_HOP], ("Accept", "application/json"),
                     ("Cookie", "shop_session=abc"), ("Authorization", "Bearer t"))
    assert not lower_names(out) & {n.lower() for n in HOP_BY_HOP}
    assert out["Accept"] == "application/json"
    assert out["Cookie"] == "shop_session=abc"
    assert out["Authorization"] == "Bearer t"


def test_headers_named_in_connection_are_dropped_but_the_gateways_own_are_set() -> None:
    out = to_backend(("Connection", "X-Forwarded-For, Cookie"),
                     ("X-Forwarded-For", "6.6.6.6"), ("Cookie", "shop_session=abc"),
                     ("Accept", "*/*"))
    assert "Cookie" not in out
    assert out.getall("X-Forwarded-For") == [PEER]
    assert out["Accept"] == "*/*"


def test_connection_tokens_are_case_and_space_insensitive() -> None:
    out = to_backend(("Connection", "keep-alive ,  x-debug-Thing"), ("X-Debug-Thing", "1"),
                     ("X-Other", "2"))
    assert "X-Debug-Thing" not in out
    assert out["X-Other"] == "2"


def test_connection_cannot_strip_the_request_id() -> None:
    out = to_backend(("Connection", "X-Request-Id, X-Forwarded-Proto, X-Forwarded-Host"))
    assert out["X-Request-Id"] == RID
    assert out["X-Forwarded-Proto"] == "http"
    assert out["X-Forwarded-Host"] == "shop.example"


def _spellings(name: str) -> list[str]:
    underscore = name.replace("-", "_")
    return [name, name.upper(), name.title(), underscore, underscore.upper(),
            underscore.title()]


@pytest.mark.parametrize("name", sorted(INTERNAL_HEADERS))
def test_internal_headers_never_reach_a_backend_from_a_client(name: str) -> None:
    out = to_backend(*[(s, "forged") for s in _spellings(name)], ("Accept", "*/*"))
    assert "forged" not in out.values()
    assert out["Accept"] == "*/*"


@pytest.mark.parametrize("name", sorted(INTERNAL_HEADERS))
def test_internal_headers_never_reach_a_client(name: str) -> None:
    out = client_response_headers(h(*[(s, "secret") for s in _spellings(name)],
                                    ("Content-Type", "application/json")))
    assert "secret" not in out.values()
    assert out["Content-Type"] == "application/json"


def test_named_underscore_aliases_are_dropped() -> None:
    out = to_backend(("X_Shop_Session_Rev", "99"), ("x_strangler_identity", "eyJ.forged"),
                     ("X_Internal_Token", "guess"))
    assert lower_names(out) == {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host",
                                "x-request-id", "traceparent"}
    back = client_response_headers(h(("X_Shop_Session_Rev", "3"), ("x_shop_node", "a")))
    assert len(back) == 0


@pytest.mark.parametrize("name", ["X-Strangler_Identity", "X_Shop-Session-Rev",
                                  "X-Shop-Session_Id", "X-Internal_Token"])
def test_mixed_underscore_aliases_are_dropped(name: str) -> None:
    assert name not in to_backend((name, "forged"))
    assert name not in client_response_headers(h((name, "leak")))


@pytest.mark.parametrize("name", ["X_Forwarded_For", "x_forwarded-proto", "X-Forwarded_Host",
                                  "X_Real_IP", "Transfer_Encoding", "Content_Length",
                                  "Proxy_Authorization", "X_Request_Id"])
def test_underscore_aliases_of_every_dropped_header_are_dropped(name: str) -> None:
    # a WSGI backend reads X_Forwarded_For and X-Forwarded-For as one HTTP_X_FORWARDED_FOR
    out = to_backend((name, "6.6.6.6"))
    assert name not in out
    assert "6.6.6.6" not in out.values()


def test_underscore_alias_of_a_connection_named_header_is_dropped() -> None:
    out = to_backend(("Connection", "X-Secret-Hop"), ("X_Secret_Hop", "s"))
    assert "X_Secret_Hop" not in out


@pytest.mark.parametrize("name", ["X-Forwarded-Port", "X-Forwarded-Ssl", "X-Forwarded-Scheme",
                                  "X-Forwarded-Prefix", "Front-End-Https", "X-Original-URL",
                                  "X-Rewrite-URL", "X-Client-IP", "True-Client-IP"])
def test_proxy_claims_the_gateway_does_not_make_are_dropped(name: str) -> None:
    for trusted in (False, True):
        assert name not in to_backend((name, "on"), peer=PROXY, trusted=trusted)


@pytest.mark.parametrize(("sent", "seen"), [("https", "https"), ("HTTPS", "https"),
                                            (" https , http", "https"), ("http", "http"),
                                            ("gopher", "http"), ("", "http")])
def test_a_trusted_proxys_scheme_is_one_lower_case_token(sent: str, seen: str) -> None:
    out = to_backend(("X-Forwarded-Proto", sent), peer=PROXY, trusted=True, proto="http")
    assert out.getall("X-Forwarded-Proto") == [seen]


def test_other_underscore_headers_pass() -> None:
    assert to_backend(("X_Custom_Thing", "1"))["X_Custom_Thing"] == "1"


def test_framing_and_host_headers_are_the_gateways_business() -> None:
    out = to_backend(("Host", "evil.example"), ("Content-Length", "5"),
                     ("X-Real-IP", "6.6.6.6"), ("Forwarded", "for=6.6.6.6"),
                     ("X-Forwarded-Host", "evil.example"), ("X-Request-Id", "client-chosen-id"))
    assert not lower_names(out) & {"host", "content-length", "x-real-ip", "forwarded"}
    assert out["X-Forwarded-Host"] == "shop.example"
    assert out.getall("X-Request-Id") == [RID]


def test_repeated_end_to_end_headers_keep_every_value() -> None:
    out = to_backend(("Accept", "a/b"), ("Accept", "c/d"))
    assert out.getall("Accept") == ["a/b", "c/d"]


# ---------------------------------------------------------------- X-Forwarded-*


def test_untrusted_peer_cannot_spoof_forwarded_for_or_proto() -> None:
    out = to_backend(("X-Forwarded-For", "1.2.3.4"), ("X-Forwarded-Proto", "https"),
                     peer=PEER, trusted=False, proto="http")
    assert out.getall("X-Forwarded-For") == [PEER]
    assert out.getall("X-Forwarded-Proto") == ["http"]


def test_trusted_proxy_chain_is_appended() -> None:
    out = to_backend(("X-Forwarded-For", "1.2.3.4"), ("X-Forwarded-Proto", "https"),
                     peer=PROXY, trusted=True, proto="http")
    assert out.getall("X-Forwarded-For") == [f"1.2.3.4, {PROXY}"]
    assert out["X-Forwarded-Proto"] == "https"


def test_trusted_proxy_without_forwarded_for_records_the_peer() -> None:
    out = to_backend(peer=PROXY, trusted=True, proto="https")
    assert out["X-Forwarded-For"] == PROXY
    assert out["X-Forwarded-Proto"] == "https"


def test_every_forwarded_for_line_of_a_trusted_proxy_is_kept() -> None:
    out = to_backend(("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-For", "198.51.100.7"),
                     peer=PROXY, trusted=True)
    assert out["X-Forwarded-For"] == f"6.6.6.6, 198.51.100.7, {PROXY}"


def test_trusted_proxies_membership() -> None:
    trusted = TrustedProxies(("10.0.0.0/8", "2001:db8::/32", "192.168.1.7"))
    assert "10.1.2.3" in trusted
    assert "2001:db8::1" in trusted
    assert "192.168.1.7" in trusted
    assert "192.168.1.8" not in trusted
    assert "11.0.0.1" not in trusted
    assert "not-an-ip" not in trusted
    assert "" not in trusted
    assert "10.1.2.3" in trusted  # cached answer is the same answer
    assert "10.0.0.1" not in TrustedProxies(())


# ---------------------------------------------------------------- toward the client


def test_client_response_keeps_end_to_end_headers_and_every_cookie() -> None:
    out = client_response_headers(h(
        ("Content-Type", "application/json"), ("Set-Cookie", "a=1; Path=/"),
        ("Set-Cookie", "b=2; Path=/"), ("Cache-Control", "no-store"),
        ("Connection", "close, X-Backend-Secret"), ("X-Backend-Secret", "s"),
        ("Keep-Alive", "timeout=5"), ("Transfer-Encoding", "chunked"), ("Content-Length", "9"),
        ("Upgrade", "h2c"), ("Trailer", "X-Checksum"),
    ))
    assert out.getall("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/"]
    assert out["Content-Type"] == "application/json"
    assert out["Cache-Control"] == "no-store"
    assert lower_names(out) == {"content-type", "set-cookie", "cache-control"}


# ---------------------------------------------------------------- screen


@pytest.mark.parametrize(
    "pairs",
    [
        [("Content-Length", "5"), ("Content-Length", "5")],
        [("Content-Length", "5"), ("Content-Length", "6")],
        [("Content-Length", "5"), ("Transfer-Encoding", "chunked")],
        [("Transfer-Encoding", "chunked"), ("Content-Length", "0")],
        [("Content-Length", "abc")],
        [("Content-Length", "-1")],
        [("Content-Length", "1.5")],
        [("Content-Length", "5, 5")],
        [("Content-Length", "+5")],
        [("Content-Length", "0x10")],
        [("Content-Length", "")],
        [("Transfer-Encoding", "gzip")],
        [("Transfer-Encoding", "gzip, chunked")],
        [("Transfer-Encoding", "chunked, chunked")],
        [("Transfer-Encoding", "identity")],
        [("Transfer-Encoding", "chunked"), ("Transfer-Encoding", "chunked")],
        [("Transfer-Encoding", "xchunked")],
        # chunked is the only coding, spelled the only way clients spell it
        [("Transfer-Encoding", "Chunked")],
        [("Transfer-Encoding", "CHUNKED")],
        [("Transfer-Encoding", "identity, chunked")],
        [("Transfer-Encoding", ",chunked")],
        [("Transfer-Encoding", "chunked,")],
    ],
)
def test_smuggling_shapes_are_refused(pairs: list[tuple[str, str]]) -> None:
    with pytest.raises(BadHeader):
        screen(h(*pairs))


@pytest.mark.parametrize(
    "pairs",
    [
        [],
        [("Content-Length", "0")],
        [("Content-Length", "1048576")],
        [("Transfer-Encoding", "chunked")],
        [("transfer-encoding", "chunked")],
        [("Transfer-Encoding", " chunked ")],
        [("Accept", "*/*"), ("Accept", "text/html")],
    ],
)
def test_ordinary_framing_passes(pairs: list[tuple[str, str]]) -> None:
    screen(h(*pairs))


# ---------------------------------------------------------------- request ids


@pytest.mark.parametrize(
    "rid",
    ["0f8b5b1e-3c1a-4e7e-9f5e-3a2b1c0d9e8f", "req_12345678", "a.b-c_d.e", "A" * 64, "12345678"],
)
def test_sane_request_ids_are_kept_for_tracing(rid: str) -> None:
    assert request_id(rid) == rid


@pytest.mark.parametrize(
    "rid",
    [None, "", "short", "A" * 65, "abc\r\nSet-Cookie: x=1", "has space in it",
     "<script>alert(1)</script>", "ünïcödé-request", "id-12345678\n", "id;12345678",
     "../../../../etc"],
)
def test_hostile_request_ids_are_replaced(rid: str | None) -> None:
    fresh = request_id(rid)
    assert fresh != rid
    assert request_id(fresh) == fresh  # a generated id is itself a sane id
    assert request_id(rid) != fresh  # and it is fresh each time


def test_another_monolith_s_session_headers_are_internal_too() -> None:
    notes = Hygiene(("X-Notes-Session", "X-Notes-Rev", "X-Notes-Node"))
    out = notes.to_client(h(("X-Notes-Rev", "4"), ("x_notes_session", "s"), ("X-Shop-Node", "a")))
    assert lower_names(out) == {"x-shop-node"}, "only the profile's names are the monolith's"
    assert "X_Notes_Node" not in notes.to_upstream(h(("X_Notes_Node", "forged")), peer=PEER,
                                                  trusted_proxy=False, proto="http",
                                                  host="h", rid=RID)
