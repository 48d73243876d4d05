"""The Host header: one syntax check, and who may be named, for both listeners.

A Host is a DNS name (ASCII letters, digits, ``-`` and ``_``; labels of 1..63,
253 in all; one trailing dot ignored), an IPv4 address or a bracketed IPv6
address (no zone), with an optional port 1..65535 -- RFC 3986's ``host[:port]``
minus what no browser sends and backends read differently: spaces, commas
(``a,b`` is two hosts to some), userinfo (``user@host``), percent-encoding.
Names compare case-insensitively; a port never decides who may be named.

The public listener (``PublicHosts``) answers the names in
``gateway.public_hosts`` (exact, or ``*.example.com``: any name below it);
a valid name not on the list is refused, or taken as ``gateway.default_host``
when that is set. The validated host, never the client's bytes, becomes
``X-Forwarded-Host``. The admin listener (``AdminHosts``) answers its own
names and any IP address: a DNS-rebinding page always sends its own domain
name as Host, so an IP literal cannot be one, and probes and scrapers that
reach a pod by its address keep working.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from gateway.errors import BadHost, UnknownHost

_LABEL = re.compile(r"[a-z0-9_-]{1,63}")
_PORT = re.compile(r"[0-9]{1,5}")
_CACHE_MAX = 1024


@dataclass(frozen=True, slots=True)
class Host:
    name: str
    """Lower-cased, without a trailing dot; an IPv6 address in brackets, compressed."""
    port: int | None = None
    ip: bool = False

    def __str__(self) -> str:
        return self.name if self.port is None else f"{self.name}:{self.port}"


def parse(value: str) -> Host | None:
    """``value`` as a Host, or None when it is not a valid ``host[:port]``."""
    if not value or len(value) > 262 or not value.isascii():
        return None
    value = value.lower()
    if value.startswith("["):
        end = value.find("]")
        addr, rest = value[1:end], value[end + 1:]
        if end < 0 or "%" in addr or (rest and not rest.startswith(":")):
            return None
        try:
            name = f"[{ipaddress.IPv6Address(addr).compressed}]"
        except ValueError:
            return None
        port = _port(rest[1:]) if rest else None
        return None if port == 0 else Host(name, port, ip=True)
    name, sep, port_text = value.partition(":")
    port = _port(port_text) if sep else None
    if port == 0:
        return None
    return _name(name, port)


def _port(text: str) -> int:
    """The port, or 0 when it is not one."""
    if not _PORT.fullmatch(text):
        return 0
    port = int(text)
    return port if port <= 65535 else 0


def _name(name: str, port: int | None) -> Host | None:
    if name.endswith("."):
        name = name[:-1]
    if not name or len(name) > 253:
        return None
    labels = name.split(".")
    if not all(_LABEL.fullmatch(label) for label in labels):
        return None
    if all(label.isdigit() for label in labels):
        # all digits is an address or nothing: never a name a resolver would look up
        try:
            return Host(str(ipaddress.IPv4Address(name)), port, ip=True)
        except ValueError:
            return None
    return Host(name, port)


def entry_problem(entry: str) -> str | None:
    """Why ``entry`` cannot be in a host list (``example.com``, ``*.example.com``,
    an address), or None."""
    name = entry[2:] if entry.startswith("*.") else entry
    host = parse(name)
    if host is None:
        return "not a host name, *.name or IP address"
    if host.port is not None:
        return "give the name without a port: ports are not compared"
    if entry.startswith("*.") and host.ip:
        return "a wildcard covers names, not addresses"
    return None


class HostNames:
    """A host list: exact names and ``*.example.com`` (any name below example.com,
    at any depth, not example.com itself: list both for both)."""

    def __init__(self, entries: tuple[str, ...]) -> None:
        exact, suffixes = set(), []
        for entry in entries:
            if entry.startswith("*."):
                host = parse(entry[2:])
                assert host is not None, entry  # settings checked it
                suffixes.append("." + host.name)
            else:
                host = parse(entry)
                assert host is not None, entry
                exact.add(host.name)
        self._exact = frozenset(exact)
        self._suffixes = tuple(suffixes)

    def __contains__(self, name: str) -> bool:
        return name in self._exact or (bool(self._suffixes) and name.endswith(self._suffixes))

    def __bool__(self) -> bool:
        return bool(self._exact or self._suffixes)


def _one(values: list[str]) -> str:
    if len(values) > 1:
        raise BadHost("more than one Host header")
    return values[0]


class PublicHosts:
    """Which Host the public listener serves, and what a backend is told it was.

    ``allowed`` empty: any valid host (as before the list existed). ``default``
    (a ``host[:port]``): what a valid host not on the list -- or an HTTP/1.0
    request without one -- is taken to be; without it, such a request is 400.
    """

    def __init__(self, allowed: tuple[str, ...], default: str | None) -> None:
        self._names = HostNames(allowed)
        self._any = not self._names
        self._default = str(parse(default)) if default else None
        self._seen: dict[str, str] = {}

    def resolve(self, values: list[str], *, http10: bool) -> str | None:
        """The host for ``X-Forwarded-Host`` (None: an HTTP/1.0 request naming none, with
        no default); raise BadHost or UnknownHost."""
        if not values:
            if not http10:
                raise BadHost("no Host header")
            return self._unlisted(None)
        value = _one(values)
        known = self._seen.get(value)
        if known is not None:
            return known
        host = parse(value)
        if host is None:
            raise BadHost("Host is not a valid host name or address with an optional port")
        if not (self._any or host.name in self._names):
            return self._unlisted(host)
        if len(self._seen) < _CACHE_MAX:
            self._seen[value] = str(host)
        return str(host)

    def _unlisted(self, host: Host | None) -> str | None:
        if self._default is not None:
            return self._default
        if host is None and self._any:
            return None
        raise UnknownHost(f"host {host.name if host else '(none)'} is not served here")


class AdminHosts:
    """The admin listener's check against DNS rebinding: its names and any address."""

    def __init__(self, names: tuple[str, ...], listen_host: str = "") -> None:
        extra = (listen_host,) if listen_host and entry_problem(listen_host) is None else ()
        self._names = HostNames(names + extra)

    def refusal(self, values: list[str], *, http10: bool) -> BadHost | UnknownHost | None:
        """Why this Host may not reach the admin listener, or None."""
        if not values:
            # A browser always names a host: a request without one is no rebinding page.
            return None if http10 else BadHost("no Host header")
        if len(values) > 1:
            return BadHost("more than one Host header")
        host = parse(values[0])
        if host is None:
            return BadHost("Host is not a valid host name or address with an optional port")
        if host.ip or host.name in self._names:
            return None
        return UnknownHost(f"host {host.name} is not one of gateway.admin_hosts")
