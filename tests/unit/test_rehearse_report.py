"""The HTML report: one self-contained file whose embedded JSON survives any string.

What the browser draws from it is checked in tests/e2e/test_report_browser.py;
here: the static page (headline, tables), self-containment, and the embedding.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from strangler.rehearse.report_html import embed_json, write_html
from tests.support import sample_reports

SAMPLES = ["passing", "failing_with_rollback", "drill", "empty", "long_run", "hostile"]


class Page(HTMLParser):
    """Every element (tag, attrs) and the text of each element with an id."""

    VOID = frozenset({"meta", "br", "img", "link", "input", "hr"})

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text_by_id: dict[str, str] = {}
        self.open: list[tuple[str, str | None]] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.elements.append((tag, a))
        if tag not in self.VOID:
            self.open.append((tag, a.get("id")))
            if a.get("id"):
                self.text_by_id[str(a["id"])] = ""

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1][0] == tag, f"</{tag}> closes {self.open[-1:]}"
        self.open.pop()

    def handle_data(self, data: str) -> None:
        for _, ident in self.open:
            if ident:
                self.text_by_id[ident] += data

    def all(self, tag: str, **attrs: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.elements
                if t == tag and all(a.get(k.rstrip("_")) == v for k, v in attrs.items())]


def render(tmp_path: Path, report: dict[str, Any]) -> tuple[str, Page]:
    path = tmp_path / "report.html"
    write_html(report, path)
    html = path.read_text(encoding="utf-8")
    page = Page(html)
    assert not page.open, f"unclosed elements: {page.open}"
    return html, page


def embedded(page: Page) -> Any:
    return json.loads(page.text_by_id["report-data"])


@pytest.mark.parametrize("name", SAMPLES)
def test_every_sample_renders_a_complete_self_contained_page(tmp_path: Path, name: str) -> None:
    report = getattr(sample_reports, name)()
    html, page = render(tmp_path, report)

    assert html.startswith("<!doctype html>")
    for chart in ("chart-traffic", "chart-errors", "chart-p99"):
        assert page.all("svg", id=chart), chart
    # Nothing is fetched: no external src/href, stylesheet links, imports or url()s.
    for _, attrs in page.elements:
        for key in ("src", "href", "action", "poster", "data"):
            assert not re.match(r"\s*(https?:)?//", attrs.get(key) or ""), (key, attrs)
    assert not page.all("link")
    assert not [a for a in page.all("script") if "src" in a]
    assert not re.search(r"@import|url\(\s*['\"]?\s*(https?:)?//", html)
    scripts = page.all("script")
    assert [a.get("type") for a in scripts] == ["application/json", None]


@pytest.mark.parametrize("name", ["passing", "failing_with_rollback", "drill", "long_run"])
def test_the_embedded_json_is_the_report(tmp_path: Path, name: str) -> None:
    report = getattr(sample_reports, name)()
    _, page = render(tmp_path, report)
    assert embedded(page) == report


def test_hostile_strings_stay_text_and_the_json_survives(tmp_path: Path) -> None:
    report = sample_reports.hostile()
    html, page = render(tmp_path, report)

    assert embedded(page) == report
    # The only </script> are the two script elements' own: no string closed one early.
    assert html.count("</script>") == 2
    assert not page.all("img"), "markup in a string became an element"
    assert html.count("<script") == 2
    assert sample_reports.HOSTILE in page.text_by_id["events"]
    assert sample_reports.HOSTILE in page.text_by_id["integrity"]
    assert sample_reports.HOSTILE in page.text_by_id["gates"]


def test_embed_json_escapes_every_angle_bracket_and_ampersand() -> None:
    text = embed_json({"a": "</script><!-- & </SCRIPT", "b": [1.5, None]})
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == {"a": "</script><!-- & </SCRIPT", "b": [1.5, None]}


def test_a_passing_rehearsal_shows_its_headline_totals_and_gates(tmp_path: Path) -> None:
    report = sample_reports.passing()
    _, page = render(tmp_path, report)

    assert page.text_by_id["result"] == "PASSED"
    assert page.all("div", id="result")[0]["class"] == "result passed"
    assert f"{report['totals']['requests']:,}" in page.text_by_id["totals"]
    gates = page.text_by_id["gates"]
    assert "catalog → canary 50%" in gates
    assert "0.20 %" in gates and "1.00 %" in gates  # error rate observed vs limit
    assert "180 ms" in gates and "400 ms" in gates  # p99 observed vs limit
    assert "0 failures" in gates  # session continuity
    assert "breached" not in gates
    assert "drill" not in page.text_by_id


def test_a_failing_rehearsal_shows_the_breach_and_the_rollback(tmp_path: Path) -> None:
    _, page = render(tmp_path, sample_reports.failing_with_rollback())

    assert page.text_by_id["result"] == "FAILED"
    gates = page.text_by_id["gates"]
    assert "breached" in gates and "8.40 %" in gates and "skipped" in gates
    assert "no data" in gates  # a gate that never saw enough requests
    assert len(page.all("span", class_="badge breached")) == 2  # the stage and its gate
    assert "user u7: cart had 2 items, shop shows 1" in page.text_by_id["integrity"]
    assert "FAILED" in page.text_by_id["integrity"]
    events = page.text_by_id["events"]
    assert "breach" in events and "rollback" in events and "cart back to legacy" in events


def test_a_drill_shows_the_rollback_time_and_what_was_lost(tmp_path: Path) -> None:
    _, page = render(tmp_path, sample_reports.drill())

    assert page.text_by_id["rollback-time"].startswith("0.84 s")
    drill = page.text_by_id["drill"]
    for label in ("users logged out", "models changed", "rows lost", "rows duplicated"):
        assert f"0{label}" in drill
    assert "at 20.70 s" in drill
    assert "2.00 s" in page.text_by_id["gates"]  # the rollback_s gate's limit
    html = (tmp_path / "report.html").read_text()
    assert "<title>Rollback drill: rollback drill — PASSED</title>" in html


def test_an_empty_run_and_missing_fields_still_render(tmp_path: Path) -> None:
    _, page = render(tmp_path, sample_reports.empty())
    assert page.text_by_id["result"] == "FAILED"
    assert "no stages" in page.text_by_id["gates"]
    assert "no events" in page.text_by_id["events"]
    assert "no checks recorded" in page.text_by_id["integrity"]
    assert embedded(page)["totals"]["error_rate"] is None  # NaN is not JSON: null

    _, page = render(tmp_path, {})
    assert page.text_by_id["result"] == "FAILED"
    assert embedded(page) == {}


def test_junk_in_optional_places_does_not_break_the_page(tmp_path: Path) -> None:
    report: dict[str, Any] = {
        "kind": "drill", "result": "passed", "duration_s": "long", "plan": ["not", "a", "map"],
        "stages": [None, {"name": "s", "gates": [None, {"name": "x", "limit": "?"}],
                          "changes": [None, {"route": "r"}]}],
        "events": [{"t": None, "kind": "stage"}, "junk"], "timeline": [None],
        "integrity": {"checks": [None, {"name": "c", "passed": False, "failures": list("ab")}]},
        "totals": None, "drill": {"rollback_s": None},
    }
    _, page = render(tmp_path, report)
    assert page.text_by_id["result"] == "PASSED"
    assert "r → -" in page.text_by_id["gates"]
