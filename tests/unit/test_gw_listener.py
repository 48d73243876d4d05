"""gateway.edge.server: the connection limits from config, and what a client is told when
the HTTP parser refuses its request (general terms, never its own bytes)."""

from __future__ import annotations

import copy
import resource
from pathlib import Path
from typing import Any

import httptools
import pytest
import yaml

from gateway.edge.server import ConnectionLimits, connection_limits, describe
from gateway.settings import ConfigError, Limits, parse

ROOT = Path(__file__).resolve().parents[2]
DEMO = yaml.safe_load((ROOT / "config.yaml").read_text())
MARK = "QZXMARK7"


def with_limits(**limits: Any) -> str:
    data = copy.deepcopy(DEMO)
    data["gateway"]["limits"] = limits
    with pytest.raises(ConfigError) as info:
        parse(data, "config.yaml")
    return str(info.value)


@pytest.mark.parametrize(("key", "value", "says"), [
    ("header_read_ms", 0, "greater than 0"),
    ("keepalive_idle_ms", -1, "greater than 0"),
    ("body_read_ms", "10s", "valid integer"),
    ("body_read_ms", True, "valid integer"),
    ("max_connections", 3, "greater than or equal to 16"),
    ("header_read_ms", 3_600_000, "less than or equal to 600000"),
])
def test_a_bad_connection_limit_is_refused_naming_its_key(key: str, value: Any,
                                                          says: str) -> None:
    error = with_limits(**{key: value})
    assert f"gateway.limits.{key}: " in error and says in error, error


def test_defaults_are_those_of_a_production_edge() -> None:
    limits = connection_limits(Limits())
    assert limits == ConnectionLimits(10.0, 60.0, 60.0, 4096)


def test_the_open_file_limit_is_raised_to_fit_or_the_cap_lowered() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        fitted = connection_limits(Limits(max_connections=1000))
        now = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        assert now == hard or hard == resource.RLIM_INFINITY
        if hard != resource.RLIM_INFINITY and hard < 1512:
            assert fitted.max_connections == max(hard - 512, 16)
        else:
            assert fitted.max_connections == 1000
        big = connection_limits(Limits(max_connections=1_000_000))
        if hard != resource.RLIM_INFINITY and hard < 1_000_512:
            assert big.max_connections == max(hard - 512, 16)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class _Quiet:
    """Parser callbacks that do nothing: only llhttp's own verdict matters here."""


def _refused(data: bytes) -> str:
    parser = httptools.HttpRequestParser(_Quiet())
    with pytest.raises(httptools.HttpParserError) as info:
        parser.feed_data(data)
    return describe(info.value, data)


@pytest.mark.parametrize(("data", "told"), [
    (b"G\x01T / HTTP/1.1\r\n\r\n", "bad request method"),
    (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + MARK.encode(),
     "TLS sent to a plain HTTP port"),
    (b"GET / HTTP/3.1\r\n\r\n", "bad request line"),
    (b"GET / HTTP/1.1\r\nX\x01" + MARK.encode() + b": a\r\n\r\n", "invalid header line"),
    (b"GET /\x01" + MARK.encode() + b" HTTP/1.1\r\n\r\n", "invalid request target"),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + MARK.encode() + b"\r\n",
     "invalid chunked encoding"),
    (b"GET / HTTP/1.1\r\nContent-Length: 1" + MARK.encode() + b"\r\n\r\n",
     "invalid Content-Length"),
    (b"GET / HTTP/1.1\r\nX: a\x01" + MARK.encode() + b"\r\n\r\n", "invalid header line"),
    (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "HTTP/2 is not served here"),
    # words in the client's bytes are never read as the parser's description
    (b"GET /chunk-header-method x-version " + MARK.encode() + b"\r\n\r\n",
     "malformed request"),
])
def test_a_parse_error_is_told_in_general_terms(data: bytes, told: str) -> None:
    assert _refused(data) == told
