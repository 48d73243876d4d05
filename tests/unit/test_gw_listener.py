"""gateway.listener: the connection limits from config, and what a client is told when
the HTTP parser refuses its request (general terms, never its own bytes)."""

from __future__ import annotations

import copy
import resource
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.http_exceptions import (
    BadHttpMessage,
    BadHttpMethod,
    BadStatusLine,
    InvalidHeader,
    InvalidURLError,
    LineTooLong,
    TransferEncodingError,
)

from gateway.listener import Connection, ConnectionLimits, connection_limits
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


def _describe(exc: Exception) -> str:
    conn = Connection.__new__(Connection)
    conn.max_line_size, conn.max_field_size = 1088, 2048
    return conn._describe(exc)  # type: ignore[arg-type]


@pytest.mark.parametrize(("exc", "told"), [
    (BadHttpMethod(f"G{MARK}T"), "bad request method"),
    (BadHttpMethod("\x16\x03\x01" + MARK), "TLS sent to a plain HTTP port"),
    (BadStatusLine(f"GET / HTTP/{MARK}"), "bad request line"),
    (InvalidHeader(f"X-{MARK}"), "invalid header line"),
    (InvalidURLError(f"/{MARK}"), "invalid request target"),
    (LineTooLong(MARK, 2048), "header too long"),
    (LineTooLong(MARK, 1088), "request line too long"),
    (TransferEncodingError(MARK), "invalid chunked encoding"),
    (BadHttpMessage(f"Invalid character in chunk size:\n\n    b'{MARK}'"),
     "invalid chunked encoding"),
    (BadHttpMessage(f"Invalid character in Content-Length:\n\n    b'{MARK}'"),
     "invalid Content-Length"),
    (BadHttpMessage(f"Invalid header value char:\n\n    b'{MARK}'"), "invalid header line"),
    (BadHttpMessage(f"Pause on PRI/Upgrade:\n\n    b'{MARK}'"), "HTTP/2 is not served here"),
    # words in the client's bytes are not read as the parser's description
    (BadHttpMessage(f"Oops:\n\n    b'chunk header method {MARK}'"), "malformed request"),
    (BadHttpMessage(f"Bad 'chunk {MARK}'"), "malformed request"),
])
def test_a_parse_error_is_told_in_general_terms(exc: Exception, told: str) -> None:
    assert _describe(exc) == told
