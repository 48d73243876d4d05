"""Re-exports ``testkit.notes_node`` (moved there, shared with bench/ and rehearsals)."""

from testkit.notes_node import (
    NODE_APP,
    ensure_installed,
    node_argv,
)

__all__ = ["NODE_APP", "ensure_installed", "node_argv"]
