"""Re-exports ``testkit.notes_stack`` (moved there, shared with bench/ and rehearsals)."""

from testkit.notes_stack import (
    UNDECLARED,
    NotesStack,
    exports,
    metric,
    typed,
)

__all__ = ["UNDECLARED", "NotesStack", "exports", "metric", "typed"]
