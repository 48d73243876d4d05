"""Re-exports ``testkit.notes_user`` (moved there, shared with bench/ and rehearsals)."""

from testkit.notes_user import (
    NotesModel,
    NotesUser,
    do,
)

__all__ = ["NotesModel", "NotesUser", "do"]
