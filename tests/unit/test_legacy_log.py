"""The monolith's logging: JSON lines, request ids, nothing secret."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
import structlog

from legacy_shop.log import configure_logging, request_id_from


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    configure_logging("info", stream=out, cache=False)
    yield out
    structlog.reset_defaults()


def _fail(password: str) -> None:
    raise RuntimeError("boom")


def test_json_lines_with_context_and_no_locals(stream: io.StringIO) -> None:
    log = structlog.get_logger("t")
    with structlog.contextvars.bound_contextvars(request_id="r-1"):
        log.info("login", user_id=7)
        try:
            _fail(password="hunter2")
        except RuntimeError:
            log.exception("unhandled_error")
    log.debug("hidden")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["login", "unhandled_error"]
    assert lines[0]["request_id"] == "r-1" and lines[0]["level"] == "info"
    assert lines[1]["exception"][0]["exc_type"] == "RuntimeError"
    assert "hunter2" not in stream.getvalue()


@pytest.mark.parametrize("header", ["abc-123", "550e8400-e29b-41d4-a716-446655440000", "a.b:c_d"])
def test_sane_request_ids_are_kept(header: str) -> None:
    assert request_id_from(header) == header


@pytest.mark.parametrize("header", [None, "", "x" * 129, "a b", "a\u00e9", "<script>"])
def test_other_request_ids_are_replaced(header: str | None) -> None:
    rid = request_id_from(header)
    assert rid != header and len(rid) == 32 and int(rid, 16) >= 0
