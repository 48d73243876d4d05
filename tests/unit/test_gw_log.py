"""The gateway's log lines: one JSON object per line, whichever way they are written."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator

import pytest
import structlog

from gateway.observe import log

ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


@pytest.fixture
def out() -> Iterator[io.TextIOWrapper]:
    stream = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    yield stream
    structlog.contextvars.clear_contextvars()
    log.reset()


def lines(stream: io.TextIOWrapper) -> list[dict[str, object]]:
    raw = stream.buffer.getvalue().decode()  # type: ignore[attr-defined]
    return [json.loads(line) for line in raw.splitlines()]


def test_the_request_line_is_the_object_structlog_would_write(
        out: io.TextIOWrapper) -> None:
    log.configure("info", out, static={"worker": 1})
    fields = {"route": "cart", "backend": "legacy", "reason": "stage_legacy", "status": 200,
              "ms": 1.5, "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}
    with structlog.contextvars.bound_contextvars(request_id="r-123456789"):
        log.get("pipeline").info("backend_decided", **fields)
    log.request_line("r-123456789", **fields)
    slow, fast = lines(out)
    assert ISO.fullmatch(str(slow.pop("timestamp"))) and ISO.fullmatch(str(fast.pop("timestamp")))
    assert fast == slow == {**fields, "request_id": "r-123456789", "worker": 1,
                            "event": "backend_decided", "level": "info"}


def test_above_info_the_request_line_is_not_written(out: io.TextIOWrapper) -> None:
    log.configure("warning", out)
    log.request_line("r-123456789", route="cart")
    log.get("pipeline").warning("fallback_taken", route="cart")
    assert [line["event"] for line in lines(out)] == ["fallback_taken"]


def test_timestamps_are_utc_with_microseconds_and_move_forward(out: io.TextIOWrapper) -> None:
    log.configure("info", out)
    for i in range(200):
        log.request_line(f"r-{i:09d}")
    stamps = [str(line["timestamp"]) for line in lines(out)]
    assert all(ISO.fullmatch(s) for s in stamps)
    assert stamps == sorted(stamps)
