"""W3C trace context: the gateway is one hop of the caller's trace."""

from __future__ import annotations

import pytest

from gateway.observe.tracing import child, trace_id

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


def test_a_valid_traceparent_keeps_its_trace_and_flags_under_a_new_parent() -> None:
    out, keep_state = child([f"00-{TRACE}-{PARENT}-01"])
    version, trace, parent, flags = out.split("-")
    assert (version, trace, flags) == ("00", TRACE, "01")
    assert len(parent) == 16 and parent != PARENT and parent != "0" * 16
    assert keep_state and trace_id(out) == TRACE


def test_each_request_gets_its_own_parent_id() -> None:
    parents = {child([f"00-{TRACE}-{PARENT}-00"])[0].split("-")[2] for _ in range(50)}
    assert len(parents) == 50


def test_a_later_version_is_read_as_version_00_and_sent_on_as_00() -> None:
    out, keep_state = child([f"01-{TRACE}-{PARENT}-01-what-the-future-adds"])
    assert out.startswith(f"00-{TRACE}-") and out.endswith("-01") and keep_state


@pytest.mark.parametrize("bad", [
    [], [""], ["garbage"],
    [f"00-{TRACE}-{PARENT}-01", f"00-{TRACE}-{PARENT}-01"],  # two of them
    [f"ff-{TRACE}-{PARENT}-01"],                              # forbidden version
    [f"00-{'0' * 32}-{PARENT}-01"], [f"00-{TRACE}-{'0' * 16}-01"],
    [f"00-{TRACE.upper()}-{PARENT}-01"],                      # upper-case hex
    [f"00-{TRACE}-{PARENT}-01-extra"],                        # 00 has nothing after flags
    [f"00-{TRACE[:-1]}-{PARENT}-01"], [f"00-{TRACE}-{PARENT}-1"],
])
def test_a_missing_or_malformed_traceparent_starts_a_new_unsampled_trace(
        bad: list[str]) -> None:
    out, keep_state = child(bad)
    version, trace, parent, flags = out.split("-")
    assert version == "00" and flags == "00" and not keep_state
    assert len(trace) == 32 and trace != TRACE and trace != "0" * 32
    assert len(parent) == 16 and int(trace, 16) and int(parent, 16)
