"""Re-exports ``testkit.redis_proc`` (moved there, shared with bench/ and rehearsals)."""

from testkit.redis_proc import (
    PrivateRedis,
)

__all__ = ["PrivateRedis"]
