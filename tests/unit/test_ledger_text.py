"""Ledger free text (flags/text.py): refused at input, inert wherever it is shown.

The API and the CLI doors, and rows already in a database, are in
tests/integration/test_ledger_input.py; here the rule itself, a ledger entry's
own rendering, the rehearsal report and the dashboard page.
"""

from __future__ import annotations

import re
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest

from flags.ledger import Entry
from flags.text import REASON_MAX, REFUSED, TextRefused, check, fit, inert
from strangler.rehearse import report
from strangler.rehearse.report_html import render_html
from tests.support import sample_reports

ROOT = Path(__file__).resolve().parents[2]

ANSI = "\x1b[2J\x1b[31mrolled back by root\x1b[0m"
FORGED = "ok\n#99 2026-11-26 10:02:11Z alice-ops via admin-api: cart: new -> legacy -- fine"
BIDI = "approved \u202eyb deveorppa\u202c by \u2066ops\u2069"
SEPARATORS = "one\u2028two\u2029three\r\x85four\x7f\x00"
HUGE = "x" * 60 * 1024
HOSTILE = [ANSI, FORGED, BIDI, SEPARATORS, "\ud800 lone surrogate", "\u200f rlm"]


@pytest.mark.parametrize("text", HOSTILE)
def test_a_reason_with_a_control_or_bidi_character_is_refused_naming_the_field(
        text: str) -> None:
    with pytest.raises(TextRefused) as info:
        check("reason", text)
    assert str(info.value).startswith("reason: control or bidi character \\")
    assert info.value.field == "reason"


def test_a_reason_over_the_limit_is_refused_with_the_limit_not_cut() -> None:
    with pytest.raises(TextRefused) as info:
        check("reason", HUGE)
    assert str(info.value) == f"reason: at most {REASON_MAX} characters (got {len(HUGE)})"
    assert check("reason", "y" * REASON_MAX) == "y" * REASON_MAX


def test_ordinary_text_passes_unchanged() -> None:
    text = "cutover step 3 — ünïcode, 日本語, emoji 👍, C:\\path, tabs\\t spelled out"
    assert check("reason", text) == text
    assert inert(text) == text
    assert check("reason", "") == ""


@pytest.mark.parametrize("text", [*HOSTILE, HUGE + "\n"])
def test_inert_text_is_one_line_with_every_refused_character_visible(text: str) -> None:
    shown = inert(text)
    assert REFUSED.search(shown) is None
    assert len(shown.splitlines()) == 1
    assert not any(c.isspace() and c != " " for c in shown)


def test_inert_escapes_read_as_the_character_they_stand_for() -> None:
    assert inert(ANSI).startswith("\\x1b[2J\\x1b[31m")
    assert inert("a\nb\rc\td") == "a\\nb\\rc\\td"
    assert inert(BIDI) == "approved \\u202eyb deveorppa\\u202c by \\u2066ops\\u2069"
    assert inert("\x85\x9f\x7f\x00") == "\\x85\\x9f\\x7f\\x00"


@pytest.mark.parametrize("text", [*HOSTILE, HUGE])
def test_text_a_program_composes_is_made_to_fit_and_then_passes(text: str) -> None:
    fitted = fit(text)
    assert check("reason", fitted) == fitted
    assert len(fitted) <= REASON_MAX


def _entry(**changes: object) -> Entry:
    fields: dict[str, object] = {
        "id": 7, "at": datetime(2026, 11, 26, 10, 1, 40), "actor": "alice-ops",
        "source": "admin-api", "route": "cart", "from_stage": "legacy", "from_percent": 0,
        "to_stage": "canary", "to_percent": 20, "reason": "first 20%", "flag_version": 3,
        "moved_with": "checkout"}
    fields.update(changes)
    return Entry(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", HOSTILE)
def test_an_old_entry_with_hostile_text_describes_itself_in_one_inert_line(text: str) -> None:
    line = _entry(reason=text, actor=f"cli:{text}", moved_with=text).describe()
    assert len(line.splitlines()) == 1 and REFUSED.search(line) is None
    assert line.startswith("#7 2026-11-26 10:01:40Z cli:")
    assert f" -- {inert(text)}" in line


def test_a_huge_old_reason_is_shown_to_the_limit_and_says_how_much_more() -> None:
    line = _entry(reason=HUGE).describe()
    assert line.endswith(f"{'x' * REASON_MAX}... (+{len(HUGE) - REASON_MAX} characters)")


def test_an_old_entry_is_served_inert_in_every_text_field() -> None:
    served = _entry(reason=FORGED, actor=ANSI, moved_with=BIDI).to_dict()
    assert served["reason"] == inert(FORGED) and "\n" not in served["reason"]
    assert served["actor"] == inert(ANSI) and served["moved_with"] == inert(BIDI)
    assert served["at"] == "2026-11-26T10:01:40Z" and served["to_percent"] == 20


class _Text(HTMLParser):
    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.feed(html)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_the_report_shows_plan_names_and_details_inert_in_html_and_summary() -> None:
    doc = sample_reports.passing()
    doc["plan"]["name"] = FORGED
    doc["stages"][0]["name"] = BIDI
    doc["events"].append({"t": 3.0, "kind": "fault", "detail": ANSI + "<b>x</b>|y"})
    doc["integrity"]["checks"][0]["failures"] = [SEPARATORS]

    html = render_html(doc)
    static = "".join(_Text(html.split('<script type="application/json"')[0]).text)
    assert REFUSED.search(static.replace("\n", "")) is None  # the page's own newlines aside
    for text in (FORGED, BIDI, ANSI, SEPARATORS):
        assert inert(text) in static
    assert "<b>x</b>|y" in static and "<b>" not in html.split("<main>")[1].split("</main>")[0]

    summary = report.summary(doc)
    assert REFUSED.search(summary.replace("\n", "")) is None
    assert summary.splitlines()[0].startswith(f"rehearsal '{inert(FORGED)}': PASSED")
    assert any(line.startswith(f"  stage '{inert(BIDI)}': ") for line in summary.splitlines())


def test_the_dashboard_puts_api_text_into_the_page_only_as_text() -> None:
    page = (ROOT / "gateway" / "admin" / "dashboard.html").read_text()
    script = re.sub(r"//[^\n]*|/\*.*?\*/", "", page.split("<script>")[1], flags=re.S)
    sinks = re.findall(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|"
                       r"\.html\(|createContextualFragment|srcdoc", script)
    assert sinks == []
    assert 'id="reason"' in page and f'maxlength="{REASON_MAX}"' in page
