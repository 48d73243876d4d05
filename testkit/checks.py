"""Set-up steps that fail where they fail, with the reason.

A login, a cart line, a flip or a write that a test makes only to prepare a
state is checked at once. Unchecked, its failure surfaces later as a puzzling
assertion about something else -- or not at all (issue 12: 16 of 40 logins had
failed with 401s and the test went on counting their backends).
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

from aiohttp import ClientResponse


class Answer(Protocol):
    @property
    def status(self) -> int: ...

    @property
    def body(self) -> Any: ...


A = TypeVar("A", bound=Answer)


def expect(reply: A, status: int, what: str) -> A:
    """``reply`` if its status is ``status``; else fail the test: ``what failed: 401 {...}``."""
    if reply.status != status:
        raise AssertionError(f"{what} failed: {reply.status} {reply.body}")
    return reply


async def expect_response(resp: ClientResponse, status: int, what: str) -> ClientResponse:
    """The same for a raw aiohttp response (a ``TestClient``'s): the body is the reason."""
    if resp.status != status:
        raise AssertionError(f"{what} failed: {resp.status} {await resp.text()}")
    return resp
