"""gateway.fallback: when a request that failed on new may be retried on legacy.

The table below is the module docstring, spelled out per method x failure
kind x Idempotency-Key, so a change to the rules shows up as a failing row.
"""

from __future__ import annotations

import itertools

import pytest

from gateway.fallback import fallback_reason
from gateway.settings import Fallback

SAFE = ("GET", "HEAD", "OPTIONS")
UNSAFE = ("POST", "PUT", "PATCH", "DELETE")
KINDS = ("connect", "reset", "timeout", "protocol", "5xx")
DEFAULT = Fallback()


def expected_default(method: str, kind: str, key: bool) -> bool:
    """The docstring's rules for the default policy, written as a table lookup."""
    if method in SAFE:
        return True  # safe: any listed failure
    if kind == "connect":
        return True  # never reached new: any method
    return key  # unsafe and maybe reached new: only with an Idempotency-Key


ROWS = list(itertools.product(SAFE + UNSAFE, KINDS, (False, True)))


@pytest.mark.parametrize(("method", "kind", "key"), ROWS)
def test_default_policy_table(method: str, kind: str, key: bool) -> None:
    reason = fallback_reason(DEFAULT, method, kind, key)
    assert (reason is not None) == expected_default(method, kind, key)
    if reason is not None:
        assert kind in reason  # the logged reason says what failed


def test_the_dangerous_cases_are_never_retried() -> None:
    # a POST /api/checkout that may have reached new, without a key: a retry could
    # place a second order
    for method, kind in itertools.product(UNSAFE, ("reset", "timeout", "protocol", "5xx")):
        assert fallback_reason(DEFAULT, method, kind, False) is None, (method, kind)


def test_reasons_distinguish_why_the_retry_was_allowed() -> None:
    assert fallback_reason(DEFAULT, "GET", "timeout", False) == "new_timeout"
    assert fallback_reason(DEFAULT, "POST", "connect", False) == "new_connect_never_reached"
    assert fallback_reason(DEFAULT, "POST", "5xx", True) == "new_5xx_idempotency_key"


def test_unlisted_failures_are_never_retried() -> None:
    policy = Fallback(on=("connect",))
    for method, key in itertools.product(SAFE + UNSAFE, (False, True)):
        assert fallback_reason(policy, method, "timeout", key) is None
        assert fallback_reason(policy, method, "5xx", key) is None
        assert fallback_reason(policy, method, "connect", key) is not None
    assert fallback_reason(DEFAULT, "GET", "something-else", True) is None


def test_policy_can_refuse_idempotency_key_retries() -> None:
    policy = Fallback(unsafe_with_idempotency_key=False)
    assert fallback_reason(policy, "POST", "timeout", True) is None
    assert fallback_reason(policy, "POST", "connect", True) is not None
    assert fallback_reason(policy, "GET", "timeout", True) is not None


def test_policy_decides_which_methods_are_safe() -> None:
    policy = Fallback(safe_methods=("GET",))
    assert fallback_reason(policy, "GET", "5xx", False) is not None
    assert fallback_reason(policy, "OPTIONS", "5xx", False) is None
    assert fallback_reason(policy, "OPTIONS", "connect", False) is not None
