"""Route flags: which backend serves a route, decided with the Unleash SDK.

Every route has a *stage* (legacy, shadow, canary with a percentage, new,
complete). A stage is stored as an Unleash feature per route -- a
``flexibleRollout`` strategy sticky on ``sessionId`` whose variant payload
names the stage -- and canary membership is evaluated by the official SDK
(``UnleashClient``), so a session's answer is the one any Unleash-based
system would give.

Providers:

- ``LocalProvider``: feature definitions built from config.yaml, runtime
  changes kept in Redis and announced on a pub/sub channel so every gateway
  process follows a flip within a second.
- ``UnleashServerProvider``: a real Unleash server holds the features; the
  gateway polls it as an ordinary SDK client (registration, usage metrics),
  flips go through its Admin API, and a snapshot on disk covers an outage.

``FlagService`` puts every change through the same door (ledger, pins).

This package imports nothing of ours.
"""

from flags.model import FlagError, FlagState, RouteFlag, Stage, UnknownRoute
from flags.view import FlagView

__all__ = ["FlagError", "FlagState", "FlagView", "RouteFlag", "Stage", "UnknownRoute"]
