"""The live display: a rich panel on a terminal, a line every few seconds anywhere else."""

from __future__ import annotations

import io
import re
from typing import Any

from rich.console import Console

from strangler.rehearse.live import LiveDisplay, compact_line, new_events, render_panel

SNAPSHOT: dict[str, Any] = {
    "title": "cutover catalog then cart", "stage": "cart canary", "stage_index": 2,
    "stages_total": 3, "elapsed_s": 35.4, "duration_s": 120.0, "users": 20, "requests": 1234,
    "errors": 5, "error_rate": 0.0041, "p99_ms": 181.6, "fallback_rate": 0.002,
    "by_backend": {"legacy": 600, "new": 634},
    "events": ["0:00 stage baseline", "0:30 stage cart canary", "0:31 fault: stop new n1"],
}


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def plain(out: io.StringIO) -> list[str]:
    return out.getvalue().splitlines()


def test_without_a_terminal_it_prints_a_line_every_interval_and_each_new_event() -> None:
    out, clock = io.StringIO(), Clock()
    display = LiveDisplay(True, stream=out, clock=clock)  # enabled, but no TTY: lines
    assert not display.rich
    display.start()
    first = dict(SNAPSHOT, events=SNAPSHOT["events"][:1])
    display.update(first)
    assert plain(out) == ["  event: 0:00 stage baseline", compact_line(first)]

    clock.now += 4.9
    display.update(dict(first, requests=1300))
    assert len(plain(out)) == 2  # within the interval: nothing
    clock.now += 0.2
    display.update(SNAPSHOT)  # two new events and, 5.1 s on, a line
    assert plain(out)[2:] == ["  event: 0:30 stage cart canary", "  event: 0:31 fault: stop new n1",
                              compact_line(SNAPSHOT)]
    clock.now += 1
    last = dict(SNAPSHOT, elapsed_s=120.0, requests=5000)
    display.update(last)
    display.stop()  # the end state is printed whatever the interval
    assert plain(out)[-1] == compact_line(last)
    assert len(plain(out)) == 6


def test_disabled_prints_lines_even_on_a_terminal() -> None:
    out = Tty()
    display = LiveDisplay(False, stream=out, clock=Clock())
    assert not display.rich
    display.start()
    display.update(SNAPSHOT)
    display.stop()
    assert plain(out)[-1] == compact_line(SNAPSHOT)
    assert "\x1b[" not in out.getvalue()


def test_the_compact_line_says_everything_in_one_line() -> None:
    line = compact_line(SNAPSHOT)
    assert line == ("cutover catalog then cart  0:35/2:00  stage 2/3 cart canary | users 20 "
                    "| req 1,234 | err 0.41% | p99 182 ms | fallback 0.20% "
                    "| legacy 600 / new 634 (51% new)")
    assert compact_line({}) == ("rehearsal  0:00/0:00  stage - | users 0 | req 0 | err - | p99 - "
                                "| fallback - | legacy 0 / new 0")
    assert "1:02:03/2:00:00" in compact_line({"elapsed_s": 3723, "duration_s": 7200})


def test_on_a_terminal_it_draws_the_panel_live() -> None:
    out = Tty()
    display = LiveDisplay(True, stream=out)
    assert display.rich
    display.start()
    display.update(SNAPSHOT)
    display.stop()
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())
    for text in ("cutover catalog then cart", "2/3 cart canary", "0:35 / 2:00", "1,234",
                 "5 (0.41%)", "182 ms", "0.20%", "legacy 600", "634 new",
                 "0:31 fault: stop new n1"):
        assert text in screen, text


def test_the_panel_shows_only_the_last_few_events_and_copes_with_nothing() -> None:
    console = Console(file=io.StringIO(), width=100, color_system=None)
    events = [f"event {i}" for i in range(12)]
    console.print(render_panel(dict(SNAPSHOT, events=events)))
    console.print(render_panel({}))
    console.print(render_panel({"by_backend": None, "elapsed_s": "x", "events": None}))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "event 11" in text and "event 7" in text and "event 6" not in text
    assert "(none yet)" in text


def test_new_events_finds_what_the_sliding_window_added() -> None:
    assert new_events([], ["a", "b"]) == ["a", "b"]
    assert new_events(["a", "b"], ["a", "b"]) == []
    assert new_events(["a", "b", "c"], ["b", "c", "d"]) == ["d"]
    assert new_events(["a", "b"], ["x", "y"]) == ["x", "y"]
    assert new_events(["x", "x"], ["x", "x", "x"]) == ["x"]
