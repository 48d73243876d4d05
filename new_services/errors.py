"""The shop's API errors. The rest of the tree (503s, 500s, 409) is the SDK's
(``strangler_sdk.errors``), and so is the middleware that turns them into JSON."""

from __future__ import annotations

from typing import Final

from adapters.contracts import ERRORS
from strangler_sdk.errors import HttpError

ERROR_TEXTS: Final = {code: detail for code, (_, detail) in ERRORS.items()}
"""The details the shop's contract gives each code (the SDK's middleware uses them)."""


class ApiError(HttpError):
    """A shop API error whose status and detail come from ``adapters.contracts.ERRORS``."""

    def __init__(self, code: str) -> None:
        self.status, detail = ERRORS[code]
        self.code = code
        super().__init__(detail)


def not_logged_in() -> ApiError:
    return ApiError("not_logged_in")
