"""When a request that failed on new may be retried on legacy: rules as data.

The route's ``Fallback`` section says which failures count and whether an
``Idempotency-Key`` makes an unsafe request retryable. The rules:

- a safe method (GET, HEAD, OPTIONS) falls back on any listed failure;
- any method falls back when the request provably never reached new
  (``connect``: refused or unreachable), if ``connect`` is listed;
- an unsafe method with an ``Idempotency-Key`` falls back on any listed
  failure (both sides share the key store, so no second order);
- nothing falls back once response bytes have gone to the client, or when
  the body was streamed (there is nothing left to resend), or on a
  ``complete`` route (legacy is gone).
"""

from __future__ import annotations

from gateway.settings import Fallback


def fallback_reason(
    policy: Fallback, method: str, kind: str, has_idempotency_key: bool
) -> str | None:
    """A reason string if the failure of kind ``kind`` may be retried on legacy, else None."""
    if kind not in policy.on:
        return None
    if method in policy.safe_methods:
        return f"new_{kind}"
    if kind == "connect":
        return "new_connect_never_reached"
    if has_idempotency_key and policy.unsafe_with_idempotency_key:
        return f"new_{kind}_idempotency_key"
    return None
