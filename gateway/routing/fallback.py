"""When a request that failed on new may be retried on legacy: rules as data.

The route's ``Fallback`` section says which failures count and whether the
two backends share an idempotency store. Each rule rests on one assumption:

- a safe method (GET, HEAD, OPTIONS) falls back on any listed failure:
  it is idempotent, so sending it twice changes nothing;
- any method falls back when the request provably never reached new
  (``connect``: refused or unreachable), if ``connect`` is listed: new did
  nothing, so legacy doing it is the first and only time;
- an unsafe method with an ``Idempotency-Key`` falls back on any listed
  failure only with ``shared_idempotency_store: true``: legacy then finds the
  key new may have recorded and answers with new's result (no second order).
  Without it, nothing tells legacy what new did, so the client gets the error;
- nothing falls back once response bytes have gone to the client, or when
  the body was streamed (there is nothing left to resend), or on a
  ``complete`` route (legacy is gone).

Every answer names its reason: why the retry is allowed (counted in
``strangler_fallbacks_total``) or why it is not (``..._refused_total``).
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.settings import Fallback

NOT_LISTED = "failure_not_listed"
"""The failure's kind is not in the route's ``fallback.on``."""
WRITE_MAY_HAVE_REACHED_NEW = "write_may_have_reached_new"
"""An unsafe request without an ``Idempotency-Key`` that new may have acted on."""
STORE_NOT_SHARED = "idempotency_store_not_shared"
"""A keyed write new may have acted on, and config does not say legacy would know."""


@dataclass(frozen=True, slots=True)
class Verdict:
    retry: bool
    reason: str
    """Why it may be retried on legacy (``new_5xx``...), or why not (``NOT_LISTED``...)."""


def fallback_verdict(policy: Fallback, method: str, kind: str,
                     has_idempotency_key: bool) -> Verdict:
    """May a request that failed on new with a failure of ``kind`` be retried on legacy?"""
    if kind not in policy.on:
        return Verdict(False, NOT_LISTED)
    if method in policy.safe_methods:
        return Verdict(True, f"new_{kind}")
    if kind == "connect":
        return Verdict(True, "new_connect_never_reached")
    if not has_idempotency_key:
        return Verdict(False, WRITE_MAY_HAVE_REACHED_NEW)
    if not policy.shared_idempotency_store:
        return Verdict(False, STORE_NOT_SHARED)
    return Verdict(True, f"new_{kind}_idempotency_key")
