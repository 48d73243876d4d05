"""Re-exports ``testkit.profiles`` (moved there, shared with bench/ and rehearsals)."""

from testkit.profiles import (
    notes_profile,
    notes_session,
    shop_profile,
    shop_session,
)

__all__ = ["notes_profile", "notes_session", "shop_profile", "shop_session"]
