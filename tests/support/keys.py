"""Re-exports ``testkit.keys`` (moved there, shared with bench/ and rehearsals)."""

from testkit.keys import (
    SESSION_KEY,
    KeyPair,
    make_keypair,
)

__all__ = ["SESSION_KEY", "KeyPair", "make_keypair"]
