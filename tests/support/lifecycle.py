"""A stack's life in one test: started, stopped, and its logs shown when the test failed.

The e2e conftest records each test's report as ``rep_call`` on its node, so a
fixture can tell whether its test failed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Protocol, TypeVar

import pytest


class Running(Protocol):
    def start(self) -> object: ...

    def stop(self) -> None: ...

    def logs(self) -> str: ...


S = TypeVar("S", bound=Running)


def print_logs_if_failed(stack: Running, request: pytest.FixtureRequest) -> None:
    """A stack's log tails on the test's output when its test failed (or never ran)."""
    report = getattr(request.node, "rep_call", None)
    if report is None or report.failed:
        print(stack.logs())


@contextlib.contextmanager
def running(stack: S, request: pytest.FixtureRequest) -> Iterator[S]:
    """``stack`` started for one test, stopped after it, its logs shown if it failed."""
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        print_logs_if_failed(stack, request)


