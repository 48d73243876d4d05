"""Names on the wire between the gateway and the backends it fronts.

Every header listed in ``INTERNAL_HEADERS`` is private to Strangler and the
systems behind it: the gateway drops it from client requests (a client cannot
forge identity or a session revision) and from responses (a client never sees
a token, a node id or a revision).
"""

from __future__ import annotations

from typing import Final

SESSION_COOKIE: Final = "shop_session"
"""The monolith's session cookie; new services set the same one at login."""

# --- legacy session-export hook -------------------------------------------
INTERNAL_TOKEN_HEADER: Final = "X-Internal-Token"  # noqa: S105 (a header name)
"""Shared secret guarding the monolith's internal endpoints."""

SESSION_ID_HEADER: Final = "X-Shop-Session-Id"
"""On a legacy response: the session the request ended with (new one after login)."""

SESSION_REV_HEADER: Final = "X-Shop-Session-Rev"
"""On a legacy response: that session's revision; ``0`` when it was destroyed."""

NODE_HEADER: Final = "X-Shop-Node"
"""On a legacy response: the node that served it."""

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
        SESSION_ID_HEADER,
        SESSION_REV_HEADER,
        NODE_HEADER,
        FENCE_HEADER,
        IDENTITY_HEADER,
        SHADOW_HEADER,
        BACKEND_HEADER,
    )
)
"""Lower-cased names stripped in both directions (plus any ``_`` alias of them)."""
