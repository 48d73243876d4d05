"""The report three ways: a rich table (a terminal), plain lines (a pipe or a file), JSON."""

from __future__ import annotations

import json
from typing import IO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from strangler.hookcheck.runner import Report

_STYLE = {"pass": "green", "fail": "bold red", "skip": "yellow"}


def headline(report: Report) -> str:
    passed = sum(r.ok for r in report.results)
    node = f" (node {report.node})" if report.node else ""
    verdict = "every rule passes" if report.ok else "the hook breaks the protocol"
    return (f"hook check {report.url}{node}: {passed} of {len(report.results)} rules "
            f"pass, {verdict}")


def footer(report: Report) -> list[str]:
    lines = [f"ids used: {report.sid} (created by the check, then deleted), "
             f"{report.ghost} (must stay unknown)"]
    lines += [f"LEFT ON THE NODE: session {sid} -- the hook did not delete it; "
              "remove it by hand" for sid in report.left_behind]
    return lines


def plain(report: Report) -> str:
    """One line per rule: verdict, number, title, what was expected, what was seen."""
    lines = [headline(report)]
    for r in report.results:
        lines.append(f"{r.verdict.upper():<4} {r.rule.number:>2}  {r.rule.title}: "
                     f"expected {r.rule.expected} | seen {r.seen}")
    return "\n".join([*lines, *footer(report)])


def table(report: Report, stream: IO[str]) -> None:
    console = Console(file=stream, highlight=False)
    grid = Table(title=headline(report), show_lines=True, expand=True)
    grid.add_column("#", justify="right", no_wrap=True)
    grid.add_column("rule", no_wrap=True)
    grid.add_column("result", no_wrap=True)
    grid.add_column("expected", ratio=1)
    grid.add_column("seen", ratio=1)
    for r in report.results:
        # Text, not markup: what a node answered may contain [brackets]
        grid.add_row(str(r.rule.number), Text(r.rule.title),
                     Text(r.verdict.upper(), style=_STYLE[r.verdict]),
                     Text(r.rule.expected), Text(r.seen))
    console.print(grid)
    for line in footer(report):
        console.print(line, markup=False, style="bold red" if "LEFT" in line else None)


def as_json(report: Report) -> str:
    return json.dumps(report.to_dict(), indent=2, ensure_ascii=False)
