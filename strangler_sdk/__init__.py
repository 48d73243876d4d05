"""strangler_sdk: what a new service needs to take over routes from a monolith behind
Strangler (docs/protocol.md sections 5 and 6).

The core knows no web framework:

- ``tokens``      -- ``TokenVerifier`` / ``KeySet``: the gateway's identity token,
                     checked against its JWKS (file and/or URL, refreshed).
- ``sessions``    -- ``SharedSessions``: the shared session record, read and written
                     with compare-and-set and op ids, exactly once.
- ``fields``      -- ``SessionData``: a document's declared fields by their shared
                     names and merge rules (the deployment's ``session:`` profile).
- ``idempotency`` -- ``run_once``: one action per ``Idempotency-Key``.
- ``config``      -- ``SdkSettings`` and ``load_profile`` (a dict or a config.yaml).
- ``runtime``     -- ``Strangler``: the above, wired from the settings.
- ``redis_client``-- a Redis client for one server, Sentinel or Cluster.
- ``errors``      -- the error tree, each error with its HTTP answer.

``strangler_sdk.aiohttp`` plugs it into an aiohttp app (middlewares and the
per-request ``Caller``). The SDK imports ``adapters`` (pure code shared with
the gateway) and nothing else of Strangler's.
"""

from adapters.claims import Identity

from .config import ConfigError, SdkSettings, load_profile
from .errors import (
    BadRequest,
    HttpError,
    IdempotencyKeyReused,
    InvalidToken,
    NotLoggedIn,
    OutcomeUnknown,
    SessionBusy,
    ShadowWriteRefused,
    Unavailable,
    UnknownKey,
)
from .fields import FieldError, SessionData
from .idempotency import JsonResults, KeyTable, Outcome, Response, RowIds, run_once
from .runtime import Strangler
from .sessions import SharedSessions, Snapshot
from .tokens import KeySet, TokenVerifier, load_jwks

__all__ = [
    "BadRequest", "ConfigError", "FieldError", "HttpError", "IdempotencyKeyReused", "Identity",
    "InvalidToken", "JsonResults", "KeySet", "KeyTable", "NotLoggedIn", "Outcome",
    "OutcomeUnknown", "Response", "RowIds", "SdkSettings", "SessionBusy", "SessionData",
    "ShadowWriteRefused", "SharedSessions", "Snapshot", "Strangler", "TokenVerifier",
    "Unavailable", "UnknownKey", "load_jwks", "load_profile", "run_once",
]
