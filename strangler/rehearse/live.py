"""Live progress of a rehearsal or drill in the terminal.

On a terminal it is a rich ``Live`` panel redrawn four times a second: title,
stage (index/total) with a bar over the run's duration, elapsed, users,
requests, error rate, p99, fallback rate, the legacy/new split and the last
few events. Anywhere else (CI logs, a pipe, ``enabled=False``) it prints one
compact line every ``interval_s`` seconds, plus each new event on its own
line, so a log stays readable and still tells the story.

The engine calls ``update(snapshot)`` as often as it likes; the snapshot is a
plain dict (keys in ``Snapshot``), every key optional. Rates are fractions
(0.012 is 1.2 %).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

Snapshot = Mapping[str, Any]
"""title, stage, stage_index, stages_total, elapsed_s, duration_s, users, requests,
errors, error_rate, p99_ms, fallback_rate, by_backend {legacy, new}, events [str]."""

EVENTS_SHOWN = 5


class LiveDisplay:
    """A live terminal display, or a line every few seconds where there is no terminal."""

    def __init__(
        self,
        enabled: bool,
        *,
        stream: TextIO | None = None,
        interval_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream if stream is not None else sys.stdout
        self._rich = enabled and _isatty(self._stream)
        self._interval_s = interval_s
        self._clock = clock
        self._snapshot: Snapshot = {}
        self._live: Live | None = None
        self._last_line_at: float | None = None
        self._line_pending = False
        self._events_seen: list[str] = []

    @property
    def rich(self) -> bool:
        """True when this display redraws a panel, False when it prints lines."""
        return self._rich

    def start(self) -> None:
        if self._rich and self._live is None:
            console = Console(file=self._stream)
            self._live = Live(console=console, refresh_per_second=4,
                              get_renderable=self._render, transient=False)
            self._live.start()

    def update(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot  # one reference swap: the refresh thread reads it as a whole
        if self._rich:
            return
        self._line_pending = True
        self._print_new_events(snapshot)
        now = self._clock()
        if self._last_line_at is None or now - self._last_line_at >= self._interval_s:
            self._print_line(now)

    def stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
        elif not self._rich and self._line_pending:
            self._print_line(self._clock())  # the end state, whatever the interval

    # -- plain lines -----------------------------------------------------------

    def _print_line(self, now: float) -> None:
        self._last_line_at = now
        self._line_pending = False
        print(compact_line(self._snapshot), file=self._stream, flush=True)

    def _print_new_events(self, snapshot: Snapshot) -> None:
        events = [str(e) for e in snapshot.get("events") or []]
        for event in new_events(self._events_seen, events):
            print(f"  event: {event}", file=self._stream, flush=True)
        self._events_seen = events

    # -- the rich panel --------------------------------------------------------

    def _render(self) -> RenderableType:
        return render_panel(self._snapshot)


def new_events(before: Sequence[str], now: Sequence[str]) -> list[str]:
    """The events in ``now`` that ``before`` did not end with (the lists are sliding windows)."""
    for overlap in range(min(len(before), len(now)), 0, -1):
        if list(before[-overlap:]) == list(now[:overlap]):
            return list(now[overlap:])
    return list(now)


def compact_line(s: Snapshot) -> str:
    legacy, new = _split(s)
    share = f" ({new / (legacy + new):.0%} new)" if legacy + new else ""
    return (
        f"{s.get('title') or 'rehearsal'}"
        f"  {_clock(s.get('elapsed_s'))}/{_clock(s.get('duration_s'))}  stage {_stage(s)}"
        f" | users {_int(s.get('users'))} | req {_int(s.get('requests'))}"
        f" | err {_pct(s.get('error_rate'))} | p99 {_ms(s.get('p99_ms'))}"
        f" | fallback {_pct(s.get('fallback_rate'))} | legacy {legacy:,} / new {new:,}{share}"
    )


def render_panel(s: Snapshot) -> RenderableType:
    elapsed = _num(s.get("elapsed_s"))
    duration = _num(s.get("duration_s"))
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("Stage", Text(_stage(s), style="cyan"))
    bar = Table.grid(padding=(0, 1))
    bar.add_row(ProgressBar(total=duration or None, completed=min(elapsed, duration or elapsed),
                            width=40),
                Text(f"{_clock(elapsed)} / {_clock(duration)}"))
    head.add_row("Elapsed", bar)

    errors = _int(s.get("errors"))
    metrics = Table.grid(padding=(0, 3))
    for _ in range(3):
        metrics.add_column(justify="left")
    err_style = "bold red" if _num(s.get("errors")) > 0 else "green"
    metrics.add_row(_metric("Users", _int(s.get("users"))),
                    _metric("Requests", _int(s.get("requests"))),
                    _metric("Errors", f"{errors} ({_pct(s.get('error_rate'))})", err_style))
    metrics.add_row(_metric("p99", _ms(s.get("p99_ms"))),
                    _metric("Fallback rate", _pct(s.get("fallback_rate"))),
                    _split_renderable(s))

    events = [str(e) for e in (s.get("events") or [])][-EVENTS_SHOWN:]
    lines = Text("\n".join(events) if events else "(none yet)", style="dim")
    body = Group(head, Text(""), metrics, Text(""), Text("Last events", style="bold"), lines)
    return Panel(body, title=Text(str(s.get("title") or "rehearsal"), style="bold"),
                 border_style="blue", expand=False)


def _metric(label: str, value: str, style: str = "") -> Text:
    text = Text(f"{label} ", style="bold")
    text.append(value, style=style)
    return text


def _split_renderable(s: Snapshot) -> RenderableType:
    legacy, new = _split(s)
    grid = Table.grid(padding=(0, 1))
    grid.add_row(Text("legacy", style="bold"), Text(f"{legacy:,}"),
                 ProgressBar(total=(legacy + new) or None, completed=new, width=16,
                             style="grey50", complete_style="green", finished_style="green"),
                 Text(f"{new:,}"), Text("new", style="bold"))
    return grid


def _split(s: Snapshot) -> tuple[int, int]:
    by = s.get("by_backend") or {}
    return int(_num(by.get("legacy"))), int(_num(by.get("new")))


def _stage(s: Snapshot) -> str:
    index, total = s.get("stage_index"), s.get("stages_total")
    where = f"{index}/{total}" if index is not None and total else "-"
    return f"{where} {s.get('stage') or ''}".rstrip()


def _num(value: Any) -> float:
    try:
        return float(value) if value is not None else 0.0
    except (TypeError, ValueError):
        return 0.0


def _int(value: Any) -> str:
    return f"{int(_num(value)):,}"


def _pct(value: Any) -> str:
    return "-" if value is None else f"{_num(value) * 100:.2f}%"


def _ms(value: Any) -> str:
    return "-" if value is None else f"{_num(value):.0f} ms"


def _clock(seconds: Any) -> str:
    total = int(_num(seconds))
    hours, rest = divmod(total, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or odd stream is no terminal
        return False
