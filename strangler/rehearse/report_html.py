"""One self-contained HTML page for a rehearsal or drill report.

The page needs nothing from the network: the CSS (``report_html.css``) and a
small vanilla-JS SVG chart renderer (``report_html.js``, ours, no library) are
inlined, and the report itself is embedded as JSON in a
``<script type="application/json" id="report-data">`` with every ``<``, ``>``
and ``&`` written as a ``\\u00XX`` escape, so no string in it (an event
detail of ``</script>``, say) can end the element or open another.

What is static HTML rendered here, readable without JavaScript: the headline
(PASSED/FAILED), totals, the drill's rollback figures, the per-stage gate
table, the integrity checks, the events and the plan. What the script draws
from the embedded JSON: ``svg#chart-traffic`` (per route, the share of each
second on new and on legacy), ``svg#chart-errors`` (error and fallback rate)
and ``svg#chart-p99`` (p99 and p50), each series a ``path.series``, each event
a ``line.marker`` on the time axis, stages as shaded bands. Long runs are
bucketed to at most a few hundred points per series.

Rates in the report are fractions (0.012 is 1.2 %); times are seconds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from importlib import resources
from pathlib import Path
from typing import Any

from flags.text import inert

KINDS = {"rehearsal": "Rehearsal", "drill": "Rollback drill"}


def write_html(report: Mapping[str, Any], path: Path) -> None:
    """Write ``report`` (the engine's report.json document) to ``path`` as one HTML file."""
    path.write_text(render_html(report), encoding="utf-8")


def render_html(report: Mapping[str, Any]) -> str:
    assets = resources.files(__package__ or "strangler.rehearse")
    css = assets.joinpath("report_html.css").read_text(encoding="utf-8")
    js = assets.joinpath("report_html.js").read_text(encoding="utf-8")
    kind = KINDS.get(str(report.get("kind")), "Rehearsal")
    title = f"{kind}: {_plan_name(report)}"
    return "\n".join([
        "<!doctype html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)} — {escape(_result(report).upper())}</title>",
        f"<style>\n{css}\n</style>", "</head>", "<body>", "<main>",
        _header(report, title), _drill(report.get("drill")), _totals(report),
        _charts(), _stages(report.get("stages") or []),
        _integrity(report.get("integrity") or {}), _events(report.get("events") or []),
        _plan(report.get("plan")), "</main>",
        f'<script type="application/json" id="report-data">{embed_json(report)}</script>',
        f"<script>\n{js}\n</script>", "</body>", "</html>", "",
    ])


def embed_json(value: Any) -> str:
    """JSON that is safe as the text of a <script> element (and still the same JSON)."""
    text = json.dumps(_finite(value), ensure_ascii=False, allow_nan=False, default=str)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _finite(value: Any) -> Any:
    """NaN and infinities become null: JSON.parse accepts neither."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


# -- sections -----------------------------------------------------------------


def _header(report: Mapping[str, Any], title: str) -> str:
    result = _result(report)
    meta = [f"started {_text(report.get('started_at'))}",
            f"finished {_text(report.get('finished_at'))}",
            f"duration {_secs(report.get('duration_s'))}"]
    users = (report.get("integrity") or {}).get("users")
    if users is not None:
        meta.append(f"{_int(users)} virtual users")
    return (f'<header><div><h1>{escape(title)}</h1><p class="meta">'
            f'{escape(" · ".join(meta))}</p></div>'
            f'<div id="result" class="result {result}">{escape(result.upper())}</div></header>')


def _drill(drill: Any) -> str:
    if not isinstance(drill, Mapping):
        return ""
    counts = [("users logged out", "users_logged_out"), ("models changed", "models_changed"),
              ("rows lost", "rows_lost"), ("rows duplicated", "rows_duplicated")]
    cards = [_card("rollback time", _secs(drill.get("rollback_s"), 2), "big", "rollback-time"),
             _card("last request on new", f"at {_secs(drill.get('last_new_request_s'), 2)}")]
    for label, key in counts:
        value = drill.get(key)
        state = "" if value is None else ("ok" if value == 0 else "bad")
        cards.append(_card(label, _int(value), state))
    return _section("drill", "Rollback", f'<div class="cards">{"".join(cards)}</div>')


def _totals(report: Mapping[str, Any]) -> str:
    t = report.get("totals") or {}
    cards = [_card("requests", _int(t.get("requests"))),
             _card("errors", _int(t.get("errors")), "bad" if t.get("errors") else ""),
             _card("error rate", _pct(t.get("error_rate"))),
             _card("p50", _ms(t.get("p50_ms"))), _card("p99", _ms(t.get("p99_ms"))),
             _card("fallbacks", _int(t.get("fallbacks")))]
    return _section("totals", "Totals", f'<div class="cards">{"".join(cards)}</div>')


def _charts() -> str:
    charts = [("chart-traffic", "Traffic share per route: new vs legacy, each second"),
              ("chart-errors", "Error rate and fallback rate"),
              ("chart-p99", "Latency: p99 and p50")]
    figures = "".join(
        f'<figure class="chart"><figcaption>{escape(caption)}</figcaption>'
        f'<svg id="{cid}" class="chart-svg" role="img" aria-label="{escape(caption)}"></svg>'
        f'<div class="legend" id="{cid}-legend"></div><div class="tip" hidden></div></figure>'
        for cid, caption in charts)
    return ('<section id="charts"><h2>Over time</h2>'
            '<p class="note" id="chart-note">Vertical lines mark stage changes, faults and '
            "other events; hover a chart for the figures of a second.</p>"
            '<noscript><p class="note">The charts need JavaScript; the tables below do not.</p>'
            f'</noscript><div id="render-error" hidden></div>{figures}</section>')


def _stages(stages: Sequence[Any]) -> str:
    rows = []
    for i, stage in enumerate(s for s in stages if isinstance(s, Mapping)):
        gates = [g for g in stage.get("gates") or [] if isinstance(g, Mapping)]
        outcome = _text(stage.get("outcome"), "-")
        span = max(len(gates), 1)
        head = (f'<td rowspan="{span}">{i + 1}. {escape(_text(stage.get("name")))}</td>'
                f'<td rowspan="{span}">{_secs(stage.get("start_s"))} &ndash; '
                f'{_secs(stage.get("end_s"))}</td>'
                f'<td rowspan="{span}">{_changes(stage.get("changes") or [])}</td>'
                f'<td rowspan="{span}"><span class="badge {escape(outcome)}">'
                f"{escape(outcome)}</span></td>")
        if not gates:
            rows.append(f'<tr class="stage">{head}<td colspan="5" class="none">no gates</td></tr>')
        for j, gate in enumerate(gates):
            rows.append(f'<tr class="{"stage" if j == 0 else "gate-cont"}">'
                        f"{head if j == 0 else ''}{_gate_cells(gate)}</tr>")
    body = "".join(rows) or '<tr><td colspan="9" class="none">no stages</td></tr>'
    return ('<section><h2>Stages and gates</h2><table id="gates"><thead><tr><th>stage</th>'
            "<th>time</th><th>changes</th><th>outcome</th><th>gate</th><th>route</th>"
            f"<th>observed</th><th>limit</th><th>result</th></tr></thead><tbody>{body}</tbody>"
            "</table></section>")


def _gate_cells(gate: Mapping[str, Any]) -> str:
    name = _text(gate.get("name"))
    observed = gate.get("observed")
    state = "held" if gate.get("passed") else "breached"
    shown = "no data" if observed is None else _gate_value(name, observed)
    samples = _num(gate.get("samples"))
    seen = "" if samples is None else f' <span class="samples">n={int(samples):,}</span>'
    return (f"<td>{escape(name)}</td><td>{escape(_text(gate.get('route'), 'all'))}</td>"
            f'<td class="num">{escape(shown)}{seen}</td>'
            f'<td class="num">{escape(_gate_value(name, gate.get("limit")))}</td>'
            f'<td><span class="badge {state}">{state}</span></td>')


def _changes(changes: Iterable[Any]) -> str:
    items = []
    for c in changes:
        if not isinstance(c, Mapping):
            continue
        pct = c.get("percent")
        extra = f" {pct}%" if pct is not None and c.get("stage") == "canary" else ""
        items.append(f"{_text(c.get('route'))} → {_text(c.get('stage'))}{extra}")
    return "<br>".join(escape(i) for i in items) or '<span class="none">none</span>'


def _integrity(integrity: Mapping[str, Any]) -> str:
    rows = []
    for check in integrity.get("checks") or []:
        if not isinstance(check, Mapping):
            continue
        state = "passed" if check.get("passed") else "failed"
        failures = [_text(f) for f in check.get("failures") or []]
        listed = "".join(f"<li>{escape(f)}</li>" for f in failures[:20])
        more = f"<li>… and {len(failures) - 20} more</li>" if len(failures) > 20 else ""
        rows.append(f'<tr class="{state}"><td><span class="badge {state}">'
                    f'{"passed" if check.get("passed") else "FAILED"}</span></td>'
                    f"<td>{escape(_text(check.get('name')))}</td>"
                    f"<td>{escape(_text(check.get('detail'), ''))}"
                    f'{f"<ul>{listed}{more}</ul>" if failures else ""}</td></tr>')
    body = "".join(rows) or '<tr><td colspan="3" class="none">no checks recorded</td></tr>'
    return ('<section><h2>Integrity checks</h2><table id="integrity"><thead><tr><th></th>'
            f"<th>check</th><th>detail</th></tr></thead><tbody>{body}</tbody></table></section>")


def _events(events: Sequence[Any]) -> str:
    rows = "".join(
        f'<tr class="ev-{escape(_text(e.get("kind")))}"><td class="num">{_secs(e.get("t"), 1)}</td>'
        f"<td>{escape(_text(e.get('kind')))}</td><td>{escape(_text(e.get('detail'), ''))}</td></tr>"
        for e in sorted((e for e in events if isinstance(e, Mapping)), key=_event_time))
    body = rows or '<tr><td colspan="3" class="none">no events</td></tr>'
    return ('<section><h2>Events</h2><table id="events"><thead><tr><th>t</th><th>kind</th>'
            f"<th>detail</th></tr></thead><tbody>{body}</tbody></table></section>")


def _event_time(event: Mapping[str, Any]) -> float:
    t = _num(event.get("t"))
    return math.inf if t is None else t


def _plan(plan: Any) -> str:
    if plan is None:
        return ""
    lines = json.dumps(plan, indent=2, ensure_ascii=False, default=str).split("\n")
    text = "\n".join(inert(line) for line in lines)  # JSON's own newlines are layout
    return f"<section><details><summary>Plan</summary><pre>{escape(text)}</pre></details></section>"


# -- formatting ---------------------------------------------------------------


def _section(ident: str, heading: str, body: str) -> str:
    return f'<section id="{ident}"><h2>{escape(heading)}</h2>{body}</section>'


def _card(label: str, value: str, state: str = "", cid: str = "") -> str:
    ident = f' id="{cid}"' if cid else ""
    return (f'<div class="card {state}"{ident}><div class="value">{escape(value)}</div>'
            f'<div class="label">{escape(label)}</div></div>')


def _plan_name(report: Mapping[str, Any]) -> str:
    plan = report.get("plan")
    name = plan.get("name") if isinstance(plan, Mapping) else None
    return _text(name, "rollback" if report.get("kind") == "drill" else "plan")


def _result(report: Mapping[str, Any]) -> str:
    return "passed" if report.get("result") == "passed" else "failed"


def _text(value: Any, default: str = "-") -> str:
    """Shown as text: HTML-escaped by the caller, and inert (``flags.text``) here, so a
    control or bidi character in a plan's names or a detail cannot reorder a row."""
    return default if value is None else inert(str(value))


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _int(value: Any) -> str:
    n = _num(value)
    return "-" if n is None else f"{int(n):,}"


def _pct(value: Any) -> str:
    n = _num(value)
    return "-" if n is None else f"{n * 100:.2f} %"


def _ms(value: Any) -> str:
    n = _num(value)
    return "-" if n is None else f"{n:,.0f} ms" if n >= 10 else f"{n:.1f} ms"


def _secs(value: Any, digits: int = 0) -> str:
    n = _num(value)
    return "-" if n is None else f"{n:,.{digits}f} s"


def _gate_value(name: str, value: Any) -> str:
    """Gate names say their unit: latency gates are in ms, rate gates are fractions."""
    n = _num(value)
    if n is None:
        return _text(value)
    low = name.lower()
    if "ms" in low.split("_") or "p99" in low or "p50" in low or "latency" in low:
        return _ms(n)
    if "rate" in low or "share" in low:
        return _pct(n)
    if low.endswith("_s"):
        return _secs(n, 2)
    if "continuity" in low or "integrity" in low:
        return f"{n:g} failures"
    return f"{n:g}"
