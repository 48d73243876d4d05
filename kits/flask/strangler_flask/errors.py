"""The kit's two exceptions: a configuration it cannot run with, and a hook refusal.

- ``StranglerConfigError`` is raised by ``Strangler.init_app`` (at start, never
  on a request): the message names the config key or the session setup to fix.
- ``HookError`` is how the hook refuses a request; its blueprint turns it into
  ``{"error": code, "detail": text, ...}`` with that status.
"""

from __future__ import annotations

from typing import Any


class StranglerConfigError(ValueError):
    """The app's configuration or session setup cannot carry the export hook."""


class HookError(Exception):
    """A refusal: 400 bad input, 403/503 internal token, 404 unknown, 413 too large."""

    def __init__(self, status: int, code: str, detail: str, **extra: Any) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "detail": self.detail, **self.extra}
