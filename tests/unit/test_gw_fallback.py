"""gateway.routing.fallback: when a request that failed on new may be retried on legacy.

The table below is the module docstring, spelled out per method x failure
kind x Idempotency-Key x shared idempotency store, so a change to the rules
shows up as a failing row.
"""

from __future__ import annotations

import itertools

import pytest

from gateway.routing.fallback import (
    NOT_LISTED,
    STORE_NOT_SHARED,
    WRITE_MAY_HAVE_REACHED_NEW,
    Verdict,
    fallback_verdict,
)
from gateway.settings import Fallback

SAFE = ("GET", "HEAD", "OPTIONS")
UNSAFE = ("POST", "PUT", "PATCH", "DELETE")
KINDS = ("connect", "reset", "timeout", "protocol", "5xx")
DEFAULT = Fallback()
SHARED = Fallback(shared_idempotency_store=True)


def expected(method: str, kind: str, key: bool, shared: bool) -> bool:
    """The docstring's rules, written as a table lookup."""
    if method in SAFE:
        return True  # safe: any listed failure
    if kind == "connect":
        return True  # never reached new: any method
    return key and shared  # may have reached new: only a key legacy can look up


ROWS = list(itertools.product(SAFE + UNSAFE, KINDS, (False, True), (False, True)))


@pytest.mark.parametrize(("method", "kind", "key", "shared"), ROWS)
def test_policy_table(method: str, kind: str, key: bool, shared: bool) -> None:
    verdict = fallback_verdict(SHARED if shared else DEFAULT, method, kind, key)
    assert verdict.retry == expected(method, kind, key, shared)
    if verdict.retry:
        assert kind in verdict.reason  # the logged reason says what failed


def test_by_default_a_keyed_write_that_may_have_reached_new_is_not_replayed() -> None:
    # Nothing in a default config says legacy can look up a key new recorded: a replay
    # could place a second order.
    assert DEFAULT.shared_idempotency_store is False
    for method, kind in itertools.product(UNSAFE, ("reset", "timeout", "protocol", "5xx")):
        assert fallback_verdict(DEFAULT, method, kind, True) == Verdict(False, STORE_NOT_SHARED)


def test_a_write_that_never_reached_new_falls_back_whatever_the_store() -> None:
    for policy, key in itertools.product((DEFAULT, SHARED), (False, True)):
        assert fallback_verdict(policy, "POST", "connect", key) == Verdict(
            True, "new_connect_never_reached")


def test_the_dangerous_cases_are_never_retried() -> None:
    # a POST /api/checkout that may have reached new, without a key: a retry could
    # place a second order, shared store or not
    for policy, method, kind in itertools.product(
            (DEFAULT, SHARED), UNSAFE, ("reset", "timeout", "protocol", "5xx")):
        assert fallback_verdict(policy, method, kind, False) == Verdict(
            False, WRITE_MAY_HAVE_REACHED_NEW), (method, kind)


def test_reasons_say_why_the_retry_was_allowed_or_refused() -> None:
    assert fallback_verdict(DEFAULT, "GET", "timeout", False) == Verdict(True, "new_timeout")
    assert fallback_verdict(DEFAULT, "POST", "connect", False).reason == \
        "new_connect_never_reached"
    assert fallback_verdict(SHARED, "POST", "5xx", True) == Verdict(
        True, "new_5xx_idempotency_key")
    assert fallback_verdict(DEFAULT, "POST", "5xx", True).reason == STORE_NOT_SHARED
    assert fallback_verdict(DEFAULT, "POST", "5xx", False).reason == WRITE_MAY_HAVE_REACHED_NEW


def test_unlisted_failures_are_never_retried() -> None:
    policy = Fallback(on=("connect",), shared_idempotency_store=True)
    for method, key in itertools.product(SAFE + UNSAFE, (False, True)):
        assert fallback_verdict(policy, method, "timeout", key) == Verdict(False, NOT_LISTED)
        assert fallback_verdict(policy, method, "5xx", key) == Verdict(False, NOT_LISTED)
        assert fallback_verdict(policy, method, "connect", key).retry
    assert not fallback_verdict(DEFAULT, "GET", "something-else", True).retry


def test_policy_decides_which_methods_are_safe() -> None:
    policy = Fallback(safe_methods=("GET",))
    assert fallback_verdict(policy, "GET", "5xx", False).retry
    assert not fallback_verdict(policy, "OPTIONS", "5xx", False).retry
    assert fallback_verdict(policy, "OPTIONS", "connect", False).retry
