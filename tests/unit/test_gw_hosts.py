"""gateway.edge.hosts: what a Host may be, which ones each listener answers."""

from __future__ import annotations

import pytest

from gateway.edge.hosts import AdminHosts, HostNames, PublicHosts, entry_problem, parse
from gateway.errors import BadHost, UnknownHost

VALID = {
    "shop.example": "shop.example",
    "Shop.Example:8080": "shop.example:8080",
    "shop.example.": "shop.example",
    "localhost": "localhost",
    "my_host-1.internal": "my_host-1.internal",
    "127.0.0.1:8081": "127.0.0.1:8081",
    "[::1]": "[::1]",
    "[0:0:0:0:0:0:0:1]:8081": "[::1]:8081",
    "a" * 63 + ".example": "a" * 63 + ".example",
}

INVALID = [
    "", " ", "evil.example foo", "a,b", "user@host", "user:pw@host", "shop.example:",
    "shop.example:0", "shop.example:65536", "shop.example:80:80", "shop.example:8o",
    "shop..example", ".shop.example", "a" * 64 + ".example", ("a" * 60 + ".") * 5,
    "sh%6fp.example", "shop/example", "shop.example/x", "shop\\example", "shop.example\t",
    "[::1", "::1", "[::1]x", "[fe80::1%eth0]", "[::1]:", "[1.2.3.4]", "999.1.1.1",
    "1.2.3", "01.2.3.4", "shöp.example", "*.example", "shop.example#", "shop.example?",
]


@pytest.mark.parametrize("raw", list(VALID))
def test_valid_hosts_parse_into_one_spelling(raw: str) -> None:
    host = parse(raw)
    assert host is not None and str(host) == VALID[raw]


@pytest.mark.parametrize("raw", INVALID)
def test_what_is_not_a_host_is_refused(raw: str) -> None:
    assert parse(raw) is None


def test_addresses_are_known_as_addresses() -> None:
    assert [parse(h).ip for h in ("10.0.0.1", "[::1]", "ten.example")  # type: ignore[union-attr]
            ] == [True, True, False]


def test_wildcards_cover_names_below_not_the_name_itself() -> None:
    names = HostNames(("shop.example", "*.cdn.example"))
    assert "shop.example" in names
    assert "a.cdn.example" in names and "a.b.cdn.example" in names
    assert "cdn.example" not in names
    assert "evilcdn.example" not in names and "www.shop.example" not in names


@pytest.mark.parametrize(("entry", "problem"), [
    ("shop.example:8080", "without a port"),
    ("*.10.0.0.1", "names, not addresses"),
    ("shop example", "not a host name"),
    ("*", "not a host name"),
    ("*.*.example", "not a host name"),
])
def test_list_entries_are_names_wildcards_or_addresses(entry: str, problem: str) -> None:
    found = entry_problem(entry)
    assert found is not None and problem in found
    assert entry_problem("*.shop.example") is None and entry_problem("[::1]") is None


def test_public_hosts_any_valid_host_when_the_list_is_empty() -> None:
    hosts = PublicHosts((), None)
    assert hosts.resolve(["Anything.Example:81"], http10=False) == "anything.example:81"
    with pytest.raises(BadHost):
        hosts.resolve(["evil.example foo"], http10=False)
    with pytest.raises(BadHost):
        hosts.resolve([], http10=False)  # HTTP/1.1 requires one
    assert hosts.resolve([], http10=True) is None  # HTTP/1.0 may omit it: none is passed on
    with pytest.raises(BadHost):
        hosts.resolve(["a.example", "b.example"], http10=False)


def test_public_hosts_refuse_or_default_what_is_not_listed() -> None:
    strict = PublicHosts(("shop.example", "*.shop.example"), None)
    assert strict.resolve(["WWW.shop.example:8443"], http10=False) == "www.shop.example:8443"
    with pytest.raises(UnknownHost):
        strict.resolve(["evil.example"], http10=False)
    with pytest.raises(UnknownHost):
        strict.resolve([], http10=True)
    lenient = PublicHosts(("shop.example",), "shop.example")
    assert lenient.resolve(["evil.example"], http10=False) == "shop.example"
    assert lenient.resolve([], http10=True) == "shop.example"
    with pytest.raises(BadHost):  # invalid is invalid, default or not
        lenient.resolve(["evil.example foo"], http10=False)


def test_a_cached_answer_is_never_served_for_another_policy() -> None:
    hosts = PublicHosts(("shop.example",), None)
    assert hosts.resolve(["shop.example"], http10=False) == "shop.example"
    assert hosts.resolve(["shop.example"], http10=False) == "shop.example"
    with pytest.raises(UnknownHost):
        hosts.resolve(["evil.example"], http10=False)
    with pytest.raises(UnknownHost):
        hosts.resolve(["evil.example"], http10=False)  # a refusal is not cached as a pass


def test_admin_hosts_answer_their_names_and_any_address_not_another_name() -> None:
    admin = AdminHosts(("localhost", "gateway-admin"), "ops.internal")
    for ok in ("127.0.0.1:8081", "[::1]:8081", "10.1.2.3:8081", "localhost:8081",
               "gateway-admin:8081", "ops.internal", "LOCALHOST"):
        assert admin.refusal([ok], http10=False) is None, ok
    rebinding = admin.refusal(["attacker.example:8081"], http10=False)
    assert isinstance(rebinding, UnknownHost)
    assert isinstance(admin.refusal(["127.0.0.1.nip.io:8081"], http10=False), UnknownHost)
    assert isinstance(admin.refusal(["a b"], http10=False), BadHost)
    assert isinstance(admin.refusal([], http10=False), BadHost)
    assert admin.refusal([], http10=True) is None
    any_interface = "0.0.0.0"  # noqa: S104 (a listen host that names nobody)
    assert AdminHosts(("localhost",), any_interface).refusal(["x.example"], http10=False)
