from __future__ import annotations

from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path

import pytest

from tests.support.lifecycle import running
from tests.support.notes_stack import NotesStack
from tests.support.redis_proc import PrivateRedis
from tests.support.shop import Admin
from tests.support.stack import Stack


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A redis-server of the test's own, so it can be paused (SIGSTOP) or killed."""
    server = PrivateRedis(tmp_path / "redis").start()
    yield server
    server.resume()
    server.stop()


@pytest.fixture
def stack(request: pytest.FixtureRequest, tmp_path: Path, redis_url: str) -> Iterator[Stack]:
    """Two legacy nodes, two new instances, one gateway: all real processes."""
    with running(Stack(tmp_path / "stack", redis_url, **getattr(request, "param", {})),
                 request) as s:
        yield s


@pytest.fixture
async def admin(stack: Stack) -> AsyncIterator[Admin]:
    yield Admin(stack.admin_url(), stack.admin_token)


@pytest.fixture
def notes_stack(request: pytest.FixtureRequest, tmp_path: Path,
                redis_url: str) -> Iterator[NotesStack]:
    """The notes app: two legacy nodes, two Node instances of its new service, one gateway."""
    with running(NotesStack(tmp_path / "stack", redis_url, **getattr(request, "param", {})),
                 request) as s:
        yield s


@pytest.fixture
async def notes_admin(notes_stack: NotesStack) -> AsyncIterator[Admin]:
    yield Admin(notes_stack.admin_url(), notes_stack.admin_token)
