"""Re-exports ``testkit.net`` (moved there, shared with bench/ and rehearsals)."""

from testkit.net import (
    await_until,
    free_port,
    port_open,
    wait_until,
)

__all__ = ["await_until", "free_port", "port_open", "wait_until"]
