"""Names on the wire between the gateway and the backends it fronts.

Every header listed in ``INTERNAL_HEADERS`` is private to Strangler and the
systems behind it: the gateway drops it from client requests (a client cannot
forge identity or a session revision) and from responses (a client never sees
a token, a node id or a revision).
"""

from __future__ import annotations

from typing import Final

# --- legacy session-export hook -------------------------------------------
INTERNAL_TOKEN_HEADER: Final = "X-Internal-Token"  # noqa: S105 (a header name)
"""Shared secret guarding the monolith's internal endpoints."""

INTERNAL_SESSIONS_PATH: Final = "/_internal/sessions/{sid}"
"""GET exports, PUT imports (compare-and-set on revision), DELETE drops a session."""

FENCE_HEADER: Final = "X-Strangler-Fence"
"""On an export: the fence of the gateway's sync lock (imports carry it in the body)."""

# --- gateway -> new services ----------------------------------------------
IDENTITY_HEADER: Final = "X-Strangler-Identity"
"""Carries the gateway-minted JWT to new services; never reaches a client or legacy."""

SHADOW_HEADER: Final = "X-Strangler-Shadow"
"""Marks a shadowed copy of a request (it must not change state)."""

# --- gateway -> client ---------------------------------------------------
REQUEST_ID_HEADER: Final = "X-Request-Id"
BACKEND_HEADER: Final = "X-Strangler-Backend"
"""Debug header (off by default): which backend served the response."""

AFFINITY_COOKIE: Final = "strangler_aff"
"""Legacy node affinity: keeps sticky routing when Redis is unavailable."""

SYNC_COOKIE: Final = "strangler_sync"
"""An opaque token the gateway renews whenever new may have changed the session; while a
client presents the token a gateway last saw in sync, it can skip re-reading the record."""

CLIENT_COOKIE: Final = "strangler_cid"
"""Stickiness key for canary decisions of requests that have no session."""

INTERNAL_HEADERS: Final = frozenset(
    h.lower()
    for h in (
        INTERNAL_TOKEN_HEADER,
        FENCE_HEADER,
        IDENTITY_HEADER,
        SHADOW_HEADER,
        BACKEND_HEADER,
    )
)
"""Lower-cased names stripped in both directions (plus any ``_`` alias of them). The
monolith's own session headers (session id, revision, node) are named by the session
profile (``adapters.profile``) and stripped alike."""

# --- the demo shop's own names ---------------------------------------------
# Used by legacy_shop and new_services only: the gateway knows a monolith's cookie and
# session headers from the session profile (config.yaml ``session:``), never from here.
SESSION_COOKIE: Final = "shop_session"
SESSION_ID_HEADER: Final = "X-Shop-Session-Id"
SESSION_REV_HEADER: Final = "X-Shop-Session-Rev"
NODE_HEADER: Final = "X-Shop-Node"
