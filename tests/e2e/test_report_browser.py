"""The HTML report in a real browser: Debian's headless Chromium runs the page's script,
and the DOM it leaves behind must hold the charts, really drawn.

Chromium comes from the distribution (``make prereqs`` installs the ``chromium``
package when it is missing); nothing here downloads a browser, and nothing
skips without one: a missing browser is a failure.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from strangler.rehearse.report_html import write_html
from tests.support import sample_reports

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHARTS = ("chart-traffic", "chart-errors", "chart-p99")
NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


@dataclass
class Chart:
    attrs: dict[str, str]
    elements: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)

    def all(self, tag: str, cls: str) -> list[dict[str, str]]:
        return [a for t, a in self.elements if t == tag and cls in a.get("class", "").split()]


class Dom(HTMLParser):
    """The dumped DOM: each chart svg with what was drawn inside it, plus a few page facts."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.charts: dict[str, Chart] = {}
        self.body: dict[str, str] = {}
        self.title = ""
        self.tags: list[str] = []
        self.render_error_hidden = False
        self._chart: Chart | None = None
        self._in_title = False
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.append(tag)
        if tag == "svg" and a.get("id") in CHARTS:
            self._chart = self.charts[a["id"]] = Chart(a)
        elif self._chart is not None:
            self._chart.elements.append((tag, a))
        if tag == "body":
            self.body = a
        if a.get("id") == "render-error":
            self.render_error_hidden = "hidden" in a
        self._in_title = tag == "title" and self._chart is None and not self.title

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._chart = None
        self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._chart is not None:
            self._chart.texts.append(data)
        elif self._in_title:
            self.title += data


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    assert Path(CHROMIUM).exists(), (
        "headless Chromium is needed: apt-get install -y chromium (make prereqs does it)")
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--disable-extensions", "--host-resolver-rules=MAP * ~NOTFOUND",
           f"--user-data-dir={profile}", "--virtual-time-budget=5000", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def drawn(tmp_path: Path, report: dict[str, Any]) -> Dom:
    page = tmp_path / "report.html"
    write_html(report, page)
    dom = Dom(chromium("--dump-dom", page.as_uri(), profile=tmp_path / "profile").stdout)
    assert dom.body.get("data-charts") == "drawn", "the page's script did not finish"
    assert dom.render_error_hidden
    assert set(dom.charts) == set(CHARTS)
    return dom


def points(d: str) -> list[tuple[float, float]]:
    values = [float(v) for v in NUMBER.findall(d)]
    return list(zip(values[::2], values[1::2], strict=True))


def assert_series(chart: Chart, expected: int) -> list[dict[str, str]]:
    series = chart.all("path", "series")
    assert len(series) == expected, [s.get("data-series") or s.get("data-route") for s in series]
    # (the parser lowercases attribute names: viewBox is "viewbox")
    width, height = (float(v) for v in chart.attrs["viewbox"].split()[2:])
    for s in series:
        pts = points(s["d"])
        assert len(pts) >= 4, s  # a real shape, not a stub
        assert all(0 <= x <= width and 0 <= y <= height for x, y in pts), s
        assert len({x for x, _ in pts}) > 1
    return series


def marker_x(chart: Chart) -> list[tuple[str, float]]:
    return [(m["data-kind"], float(m["x1"])) for m in chart.all("line", "marker")]


def test_a_passing_rehearsal_draws_every_series_and_event(tmp_path: Path) -> None:
    report = sample_reports.passing()
    dom = drawn(tmp_path, report)
    events = report["events"]

    traffic = dom.charts["chart-traffic"]
    series = assert_series(traffic, 4)  # catalog and cart, new and legacy each
    assert {(s["data-route"], s["data-backend"]) for s in series} == {
        ("catalog", "new"), ("catalog", "legacy"), ("cart", "new"), ("cart", "legacy")}
    assert "no traffic on orders" in traffic.texts  # named by a stage, never served
    errors = assert_series(dom.charts["chart-errors"], 2)
    assert {s["data-series"] for s in errors} == {"error_rate", "fallback_rate"}
    p99 = assert_series(dom.charts["chart-p99"], 2)
    assert {s["data-series"] for s in p99} == {"p99", "p50"}

    for name in CHARTS:
        chart = dom.charts[name]
        markers = marker_x(chart)
        assert [k for k, _ in markers] == [e["kind"] for e in events]
        xs = [x for _, x in markers]
        assert xs == sorted(xs) and len(set(xs)) == len(xs)  # in time order, one per event
        assert len(chart.all("rect", "stage-band")) == 3
        labels = chart.all("text", "marker-label")
        assert len(labels) >= 4  # the stages and the fault are named on the axis
        assert "catalog canary" in chart.texts and "fault: slow new instance …" in chart.texts

    # catalog went all-new at 40 s: from there its new area reaches the band's top.
    new_area = next(s for s in series
                    if s["data-route"] == "catalog" and s["data-backend"] == "new")
    x40 = marker_x(traffic)[2][1]
    tops = [y for x, y in points(new_area["d"]) if x > x40 + 5]
    assert tops and max(tops) - min(tops) < 50  # only the band's top and its floor


def test_a_failing_rehearsal_marks_the_breach_and_the_rollback(tmp_path: Path) -> None:
    dom = drawn(tmp_path, sample_reports.failing_with_rollback())
    assert_series(dom.charts["chart-traffic"], 4)
    errors = dom.charts["chart-errors"]
    assert_series(errors, 2)
    assert [k for k, _ in marker_x(errors)] == ["stage", "stage", "fault", "breach", "rollback"]
    assert len(errors.all("rect", "breached")) == 1
    # the error rate rises after the fault: some point sits well above the zero line
    rate = next(s for s in errors.all("path", "series") if s["data-series"] == "error_rate")
    ys = [y for _, y in points(rate["d"])]
    assert max(ys) - min(ys) > 50


def test_a_drill_draws_the_move_back_to_legacy(tmp_path: Path) -> None:
    dom = drawn(tmp_path, sample_reports.drill())
    traffic = dom.charts["chart-traffic"]
    assert_series(traffic, 4)
    assert [k for k, _ in marker_x(traffic)] == ["stage", "drill", "kill_switch"]
    assert_series(dom.charts["chart-errors"], 2)
    assert_series(dom.charts["chart-p99"], 2)


def test_an_empty_timeline_draws_axes_and_says_so(tmp_path: Path) -> None:
    dom = drawn(tmp_path, sample_reports.empty())
    for name in CHARTS:
        chart = dom.charts[name]
        assert not chart.all("path", "series")
        assert "empty" in chart.attrs["class"].split()
        assert "no traffic recorded" in chart.texts


def test_a_long_run_is_bucketed_for_drawing(tmp_path: Path) -> None:
    dom = drawn(tmp_path, sample_reports.long_run(5000))
    for name, expected in (("chart-traffic", 4), ("chart-errors", 2), ("chart-p99", 2)):
        for s in assert_series(dom.charts[name], expected):
            assert 100 < len(points(s["d"])) <= 1100, (name, len(points(s["d"])))
        assert len(marker_x(dom.charts[name])) == 4


def test_hostile_strings_are_drawn_as_text_and_run_nothing(tmp_path: Path) -> None:
    report = sample_reports.hostile()
    dom = drawn(tmp_path, report)
    assert dom.title.startswith("Rehearsal: </script>")  # not "PWNED": no script ran
    assert "img" not in dom.tags
    traffic = dom.charts["chart-traffic"]
    hostile = [s for s in traffic.all("path", "series")
               if s["data-route"] == sample_reports.HOSTILE]
    assert len(hostile) == 2
    assert len(marker_x(traffic)) == len(report["events"])


@pytest.mark.parametrize("name", ["failing_with_rollback"])
def test_the_page_renders_to_a_picture(tmp_path: Path, name: str) -> None:
    """A screenshot comes out (kept under /tmp for a person to look at)."""
    page = tmp_path / "report.html"
    write_html(getattr(sample_reports, name)(), page)
    shot = tmp_path / "report.png"
    chromium("--hide-scrollbars", "--window-size=1200,2400", f"--screenshot={shot}",
             page.as_uri(), profile=tmp_path / "profile")
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000
    shutil.copy(shot, Path("/tmp") / f"strangler-report-{name}.png")
