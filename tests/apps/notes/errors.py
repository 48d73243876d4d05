"""The one exception the app answers with: a status, an error code, maybe a detail.

Handlers raise ``NotesError``; ``web.session_middleware`` turns it into
``{"error": code, ...}`` with that status. Anything else a handler raises is a
bug (aiohttp answers 500 and logs it).
"""

from __future__ import annotations

from typing import Any


class NotesError(Exception):
    """A refusal: 400 bad input, 401 not logged in, 403/503 internal token, 404, 413."""

    def __init__(self, status: int, code: str, **extra: Any) -> None:
        super().__init__(f"{status} {code}")
        self.status = status
        self.code = code
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": self.code, **self.extra}
