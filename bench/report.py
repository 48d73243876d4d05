"""Tables, ratios and the files under ``bench/out/``."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.measure import Row

if TYPE_CHECKING:
    from bench.hotpath import Extras
    from bench.memory import Memory

OUT = Path(__file__).with_name("out")
RESULTS = Path(__file__).with_name("RESULTS.md")
HOT, HALF, WORKERS = "H hot path", "H half load", "H workers"
"""Scenario H's row groups (``bench.hotpath`` names them the same)."""

_COLUMNS = (
    ("scen", "scenario", "{}"),
    ("target", "target", "{}"),
    ("req/s", "rps", "{:.0f}"),
    ("p50 ms", "p50_ms", "{:.2f}"),
    ("p99 ms", "p99_ms", "{:.2f}"),
    ("CPU us/req", "cpu_us_per_req", "{:.0f}"),
    ("upstream us/req", "upstream_cpu_us_per_req", "{:.0f}"),
    ("redis cmd/req", "redis_cmds_per_req", "{:.2f}"),
    ("core0/1 busy %", "core_busy_pct", "{}"),
    ("other CPU %", "unattributed_cpu_pct", "{:.0f}"),
    ("errors", "errors", "{}"),
)


def median_rounds(rows: list[Row]) -> list[Row]:
    """One row per (scenario, target): with several rounds, the round whose key figure
    is the median (requests/s for the workers rows, p50 for the open loop, CPU per
    request otherwise), whole, so its columns stay consistent; a note lists every
    round's figure. Rows keep the order of their first round."""
    groups: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        groups.setdefault((row.scenario, row.target), []).append(row)
    out: list[Row] = []
    for (scenario, _), group in groups.items():
        if len(group) == 1:
            out.append(group[0])
            continue
        field_, label = (("rps", "req/s") if scenario.endswith("workers") else
                         ("p50_ms", "p50 ms") if scenario.endswith("half load") else
                         ("cpu_us_per_req", "CPU us/req"))

        def key(row: Row, field_: str = field_) -> float:
            return float(getattr(row, field_))

        ordered = sorted(group, key=key)
        chosen = ordered[(len(ordered) - 1) // 2]
        figures = ", ".join(f"{key(r):.4g}" for r in group)
        chosen.notes.append(f"median of {len(group)} rounds by {label}: {figures}")
        out.append(chosen)
    return out


def ratios(rows: list[Row]) -> list[dict[str, Any]]:
    """gateway / direct and gateway / plain proxy, per scenario and gateway row."""
    out = []
    for gw in (r for r in rows if r.kind == "gateway"):
        for base in (r for r in rows if r.scenario == gw.scenario and r.kind != "gateway"):
            out.append({
                "scenario": gw.scenario, "gateway": gw.target, "vs": base.target,
                "rps": _div(gw.rps, base.rps), "p50": _div(gw.p50_ms, base.p50_ms),
                "cpu_per_req": _div(gw.cpu_us_per_req, base.cpu_us_per_req),
                "cpu_us_per_req_added": round(gw.cpu_us_per_req - base.cpu_us_per_req, 1)
                if base.kind == "plain" else None,
                "redis_cmds_per_req_added": round(gw.redis_cmds_per_req
                                                  - base.redis_cmds_per_req, 3),
            })
    return out


SHADOW_SCENARIO = "S shadow"


def shadow_pairs(rows: list[Row]) -> list[dict[str, Any]]:
    """The shadow scenario: route at ``legacy`` against the same route at ``shadow``,
    per load (closed loop, open loop at a fixed rate)."""
    rows = [r for r in rows if r.scenario == SHADOW_SCENARIO]
    out = []
    for off in (r for r in rows if r.target.startswith("cart at legacy")):
        on = next((r for r in rows if r.rate == off.rate
                   and r.target.startswith("cart at shadow")), None)
        if on is None:
            continue
        counts = {k.split("/", 1)[1]: v for k, v in on.shadow.items()}
        out.append({
            "load": f"open loop {off.rate:g} req/s" if off.rate else "closed loop (as above)",
            "rps": [off.rps, on.rps],
            "p50_ms": [off.p50_ms, on.p50_ms], "p50_x": _div(on.p50_ms, off.p50_ms),
            "p99_ms": [off.p99_ms, on.p99_ms], "p99_x": _div(on.p99_ms, off.p99_ms),
            "cpu_us_per_req": [off.cpu_us_per_req, on.cpu_us_per_req],
            "cpu_x": _div(on.cpu_us_per_req, off.cpu_us_per_req),
            "cpu_us_per_req_added": round(on.cpu_us_per_req - off.cpu_us_per_req, 1),
            "legacy_cpu_us_per_req": [off.upstream_cpu_us_per_req, on.upstream_cpu_us_per_req],
            "new_cpu_us_per_req": [off.side_cpu_us_per_req, on.side_cpu_us_per_req],
            "compared": counts.get("match", 0) + counts.get("mismatch", 0),
            "mismatch": counts.get("mismatch", 0), "errors": counts.get("error", 0),
            "skipped": counts.get("skipped", 0),
            "noise_samples": sum(v for k, v in counts.items()
                                 if k.startswith("noise_") and k != "noise_skipped"),
            "requests": on.requests,
        })
    return out


def shadow_table(pairs: list[dict[str, Any]], markdown: bool = False) -> str:
    head = ["load", "p50 ms legacy -> shadow", "p50 x", "p99 ms legacy -> shadow", "p99 x",
            "gateway CPU us/req", "CPU x", "+CPU us/req", "legacy node us/req",
            "new instance us/req", "copies compared / skipped / errors", "mismatches",
            "legacy asked twice"]
    body = [[p["load"], _pair(p["p50_ms"], "{:.2f}"), _num(p["p50_x"]),
             _pair(p["p99_ms"], "{:.2f}"), _num(p["p99_x"]), _pair(p["cpu_us_per_req"], "{:.0f}"),
             _num(p["cpu_x"]), _num(p["cpu_us_per_req_added"]),
             _pair(p["legacy_cpu_us_per_req"], "{:.0f}"), _pair(p["new_cpu_us_per_req"], "{:.0f}"),
             f"{p['compared']:g} / {p['skipped']:g} / {p['errors']:g} of {p['requests']}",
             f"{p['mismatch']:g}", f"{p['noise_samples']:g}"] for p in pairs]
    return _table(head, body, markdown)


def _pair(values: list[float | None], fmt: str) -> str:
    return " -> ".join("-" if v is None else fmt.format(v) for v in values)


def _div(a: float, b: float) -> float | None:
    return round(a / b, 2) if b else None


def _cell(row: Row, key: str, fmt: str) -> str:
    value = getattr(row, key)
    if key == "errors":
        return str(sum(value.values()))
    if key == "core_busy_pct":
        return "/".join(f"{v:.0f}" for v in value)
    return fmt.format(value)


def results_table(rows: list[Row], markdown: bool = False) -> str:
    head = [c[0] for c in _COLUMNS]
    body = [[_cell(r, key, fmt) for _, key, fmt in _COLUMNS] for r in rows]
    return _table(head, body, markdown)


def ratio_table(items: list[dict[str, Any]], markdown: bool = False) -> str:
    head = ["scen", "gateway", "vs", "rps x", "p50 x", "CPU/req x", "+CPU us/req",
            "+redis cmd/req"]
    body = [[i["scenario"], i["gateway"], i["vs"], _num(i["rps"]), _num(i["p50"]),
             _num(i["cpu_per_req"]), _num(i["cpu_us_per_req_added"]),
             _num(i["redis_cmds_per_req_added"])] for i in items]
    return _table(head, body, markdown)


def _pcts(values: list[float] | None) -> str:
    return "/".join(f"{v:.0f}" for v in values or [])


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _table(head: list[str], body: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in body]
        return "\n".join(lines)
    widths = [max(len(x) for x in col) for col in zip(head, *body, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*head), "  ".join("-" * w for w in widths)]
    lines += [fmt.format(*r) for r in body]
    return "\n".join(lines)


NOISY_PCT = 10.0
"""Unattributed busy CPU (of all cores) above which a row is flagged as disturbed."""


def notes(rows: list[Row]) -> list[str]:
    out = []
    for r in rows:
        out += [f"{r.scenario}/{r.target}: {n}" for n in r.notes]
        if r.unattributed_cpu_pct > NOISY_PCT:
            out.append(f"{r.scenario}/{r.target}: {r.unattributed_cpu_pct:.0f}% of the machine "
                       "was busy outside the measured processes (someone else running?): "
                       "treat this row as disturbed and run again")
        if sum(r.errors.values()):
            out.append(f"{r.scenario}/{r.target}: load generator errors {r.errors}")
    return out


def redis_breakdown(rows: list[Row]) -> list[str]:
    return [f"{r.scenario}/{r.target}: " + (", ".join(f"{k} {v:g}" for k, v in
                                                     r.redis_cmds.items()) or "none")
            for r in rows]


def markdown(meta: dict[str, Any], rows: list[Row], items: list[dict[str, Any]]) -> str:
    parts = [
        "# Strangler gateway benchmark", "",
        f"Run {meta['started']} on {meta['machine']['cpu_model']} "
        f"({meta['machine']['cores']} cores), git {meta['git']}, load: "
        f"{meta['load']['version']}, {meta['load']['connections']} connections, "
        f"{meta['load']['duration_s']} s measured after {meta['load']['warmup_s']} s warm-up.",
        "", f"Pinning: {meta['pinning']}", "",
        f"Command: `{meta['command']}`", "",
        "## Results", "", results_table(rows, markdown=True), "",
        "CPU us/req is the proxy process (gateway or plain proxy); for `direct` rows it is "
        "the upstream itself. Redis cmd/req counts every command on the server in the window "
        f"(idle background before the run: {meta['redis_background_cmds_per_s']} cmd/s). "
        "Other CPU % is busy time of all cores not charged to the proxy, upstream, "
        "redis-server or load generator (softirq, other processes); machine busy with the "
        f"stack idle before the run: {_pcts(meta['idle_busy_pct'])} % (core0/1).", "",
        "## Ratios (same run)", "", ratio_table(items, markdown=True), "",
        *(["## Shadow stage: the same route at legacy, then at shadow (same run)", "",
            shadow_table(shadow_pairs(rows), markdown=True), ""]
          if shadow_pairs(rows) else []),
        "## Redis commands per request", "",
        *[f"- {line}" for line in redis_breakdown(rows)], "",
    ]
    found = notes(rows)
    parts += ["## Notes", "", *[f"- {n}" for n in found or ["none: every gateway request was "
                                                             "served by the expected backend"]]]
    return "\n".join(parts) + "\n"


def write(meta: dict[str, Any], rows: list[Row], items: list[dict[str, Any]],
          extras: Extras | None = None, hot: str | None = None) -> Path:
    OUT.mkdir(exist_ok=True)
    doc = {"meta": meta, "rows": [r.as_dict() for r in rows], "ratios": items,
           "shadow": shadow_pairs(rows),
           "hot_path": None if extras is None or hot is None else {
               **extras.as_dict(), "targets": hot_targets(rows, extras)}}
    (OUT / "latest.json").write_text(json.dumps(doc, indent=2) + "\n")
    text = markdown(meta, rows, items)
    if hot is not None:
        text += "\n" + hot
    (OUT / "latest.md").write_text(text)
    return OUT


# ---------------------------------------------------------------- scenario H
def hot_rows(rows: list[Row]) -> list[Row]:
    return [r for r in rows if r.scenario in (HOT, HALF, WORKERS)]


def _find(rows: list[Row], scenario: str, target: str) -> Row | None:
    return next((r for r in rows if r.scenario == scenario and r.target == target), None)


def split_rounds(rows: list[Row]) -> list[list[Row]]:
    """Scenario H's rows, one list per round (a round ends where a row repeats)."""
    rounds: list[list[Row]] = []
    seen: set[tuple[str, str]] = set()
    for row in hot_rows(rows):
        key = (row.scenario, row.target)
        if not rounds or key in seen:
            rounds.append([])
            seen = set()
        seen.add(key)
        rounds[-1].append(row)
    return rounds


def hot_targets(rows: list[Row], extras: Extras) -> list[dict[str, Any]]:
    """The issue's targets, each as a figure from this run: value, target, met. With
    several rounds, each figure is the median of its per-round values: a ratio is
    taken between rows of the same round (minutes apart, not a quarter of an hour),
    since this machine drifts by tens of percent between rounds."""
    if len(extras.rounds) < 2:
        return _targets_one(rows, extras)
    per_round = [_targets_one(r, extras) for r in extras.rounds]
    out = []
    for figures in zip(*per_round, strict=True):
        first = figures[0]
        values = [f["value"] for f in figures if f["value"] is not None]
        if not values:
            out.append(first)
            continue
        value = sorted(values)[(len(values) - 1) // 2]
        met = None if first["met"] is None else _meets(first["target"], value)
        listed = ", ".join(f"{v:g}" for v in values)
        out.append({**first, "value": value, "met": met,
                    "detail": f"median of {len(values)} rounds ({listed}); "
                              f"first round: {first['detail']}"})
    return out


def _meets(target: str, value: float) -> bool:
    """The rule ``_targets_one`` applies, from its target text ("<= 1.3x", ">= 1.7x",
    "< 0.3 ms", and for Redis commands "<= 1" and "0" with 0.02 of slack)."""
    if target == "0":
        return value <= 0.02
    op, _, rest = target.partition(" ")
    bound = float(rest.split()[0].rstrip("x"))
    if op == "<=":
        return value <= bound + (0.02 if not rest.endswith("x") else 0)
    if op == ">=":
        return value >= bound
    return value < bound


def _targets_one(rows: list[Row], extras: Extras) -> list[dict[str, Any]]:
    direct = _find(rows, HOT, "direct (nginx upstream)")
    plain = _find(rows, HOT, "plain proxy")
    lean = _find(rows, HOT, "lean proxy")
    ngx = _find(rows, HOT, "nginx proxy")
    legacy = _find(rows, HOT, "gateway, legacy, session")
    new = _find(rows, HOT, "gateway, new, session")
    anon = _find(rows, HOT, "gateway, legacy, no session")
    out: list[dict[str, Any]] = []

    def add(figure: str, value: float | None, target: str, met: bool | None,
            detail: str = "") -> None:
        out.append({"figure": figure, "value": value, "target": target,
                    "met": None if value is None else met, "detail": detail})

    def cpu_x(gw: Row | None, base: Row | None) -> float | None:
        return _div(gw.cpu_us_per_req, base.cpu_us_per_req) if gw and base else None

    def cpu(r: Row | None) -> str:
        return f"{r.cpu_us_per_req:.0f}" if r else "-"

    # Issue 13: at most 0.4x the plain aiohttp proxy and 4x nginx, every feature on.
    kinds = (("legacy-routed GET with session", legacy), ("new-routed GET with session", new),
             ("anonymous GET", anon))
    for name, ref, limit in (("plain proxy", plain, 0.4), ("nginx proxy", ngx, 4.0)):
        for label, gw in kinds:
            x = cpu_x(gw, ref)
            add(f"CPU/req, {label}, vs {name}", x, f"<= {limit:g}x",
                x is not None and x <= limit, f"{cpu(gw)} vs {cpu(ref)} us/req")
    for label, gw in kinds:
        add(f"CPU/req, {label}, vs lean proxy", cpu_x(gw, lean), "(for reference)", None,
            f"{cpu(gw)} vs {cpu(lean)} us/req")
    add("CPU/req, plain proxy vs lean proxy", cpu_x(plain, lean), "(for reference)", None,
        f"{cpu(plain)} vs {cpu(lean)} us/req")
    base = direct.redis_cmds_per_req if direct else 0.0
    for label, gw, limit in (("legacy, session", legacy, 1.0), ("new, session", new, 1.0),
                             ("no session", anon, 0.0)):
        added = round(gw.redis_cmds_per_req - base, 3) if gw else None
        add(f"Redis commands/req the gateway adds ({label})", added,
            "<= 1" if limit else "0", added is not None and added <= limit + 0.02,
            "commandstats delta minus the direct row's (background: flag polls)"
            + (f"; {', '.join(f'{k} {v:g}' for k, v in gw.redis_cmds.items())}"
               if gw and gw.redis_cmds else ""))
    one = _find(rows, WORKERS, "gateway --workers 1")
    many = next((r for r in rows if r.scenario == WORKERS and r is not one), None)
    if extras.workers_skipped:
        add("rps, gateway --workers 2 vs 1", None, ">= 1.7x", None, extras.workers_skipped)
    else:
        x = _div(many.rps, one.rps) if one and many else None
        add(f"rps, {many.target if many else 'gateway --workers N'} vs 1", x, ">= 1.7x",
            x is not None and x >= 1.7,
            f"{many.rps:.0f} vs {one.rps:.0f} req/s, both unpinned" if one and many else "")
    hdirect = _find(rows, HALF, "direct (nginx upstream)")
    hgw = _find(rows, HALF, "gateway, legacy, session")
    hplain = _find(rows, HALF, "plain proxy")
    added = round(hgw.p50_ms - hdirect.p50_ms, 3) if hgw and hdirect else None
    add(f"added p50 ms at half load ({extras.open_rate or '-'} req/s), gateway vs direct",
        added, "< 0.3 ms", added is not None and added < 0.3, _half_detail(hdirect, hgw))
    padded = round(hplain.p50_ms - hdirect.p50_ms, 3) if hplain and hdirect else None
    add("added p50 ms at half load, plain proxy vs direct", padded, "(for reference)", None,
        _half_detail(hdirect, hplain))
    return out


def _half_detail(direct: Row | None, proxy: Row | None) -> str:
    """Both percentiles of the open loop, direct -> through the proxy, and the p99 added."""
    if direct is None or proxy is None:
        return ""
    return (f"p50 {direct.p50_ms:.2f} -> {proxy.p50_ms:.2f} ms, p99 {direct.p99_ms:.2f} -> "
            f"{proxy.p99_ms:.2f} ms (added p99 {proxy.p99_ms - direct.p99_ms:+.2f} ms)")


def targets_table(targets: list[dict[str, Any]], markdown: bool = False) -> str:
    head = ["figure", "value", "target", "met", "detail"]
    body = [[t["figure"], _num(t["value"]), t["target"],
             {True: "yes", False: "NO", None: "-"}[t["met"]], t["detail"]] for t in targets]
    return _table(head, body, markdown)


def hot_section(meta: dict[str, Any], rows: list[Row], items: list[dict[str, Any]],
                extras: Extras) -> str:
    """Scenario H as markdown: what RESULTS.md's hot-path section holds."""
    mine = hot_rows(rows)
    ratios_h = [i for i in items if i["scenario"] in (HOT, HALF, WORKERS)]
    load = meta["load"]
    parts = [
        "## H: the hot path (proxy-bound)", "",
        f"Run {meta['started']} on {meta['machine']['cpu_model']} "
        f"({meta['machine']['cores']} cores), git {meta['git']}, command "
        f"`{meta['command']}`; load {load['version']}, {load['connections']} connections, "
        f"{load['duration_s']:g} s measured after {load['warmup_s']:g} s warm-up per row; "
        f"upstream {meta.get('nginx') or 'nginx'}.", "",
        f"Pinning: {meta.get('pinning_h', '')}.", "",
        "Upstream: nginx answering the bytes the real legacy node gave for the user's "
        f"`GET /api/cart` ({extras.captured.get('cart_bytes', '?')} bytes, with its headers "
        f"{', '.join(extras.captured.get('cart_headers', [])) or 'none'}), as legacy node and "
        "as new instance; `/healthz` as the real ones (legacy: "
        f"`{extras.captured.get('legacy_health', '?')}`). The gateway is a second process "
        "with the stack's config but both URLs on nginx; the session is the one logged in "
        "through the real stack.", "",
        "### Targets (ratios from this run)", "",
        targets_table(hot_targets(rows, extras), markdown=True), "",
        "### Rows", "", results_table(mine, markdown=True), "",
        "### Ratios", "", ratio_table(ratios_h, markdown=True), "",
        "### Memory (RSS of the proxy process, idle keep-alive connections)", "",
        *_memory_lines(extras), "",
        "### Profile (py-spy, gateway, legacy route with session, saturating load)", "",
        *_profile_lines(extras), "",
        "### Commands", "",
        *[f"- {r.scenario} / {r.target}: `{r.load_command}`" for r in mine], "",
    ]
    found = notes(mine)
    parts += ["### Notes", "", *[f"- {n}" for n in found or [
        "none: every gateway request was served by the expected route and backend"]]]
    return "\n".join(parts) + "\n"


def memory_table(found: list[Memory], markdown: bool = False) -> str:
    """RSS at rest, and at each step with its KiB per idle connection."""
    wanted = [s.wanted for s in found[0].steps] if found else []
    head = ["target", "at rest MiB"]
    for n in wanted:
        head += [f"{n} idle MiB", f"KiB/conn ({n})"]
    body = []
    for m in found:
        cells = [m.target, f"{m.rest_kib / 1024:.1f}"]
        for step in m.steps:
            cells += [f"{step.rss_kib / 1024:.1f}", _num(m.per_connection_kib(step))]
        body.append(cells)
    return _table(head, body, markdown)


def _memory_lines(extras: Extras) -> list[str]:
    if not extras.memory:
        return ["not measured (--idle-connections 0, or not in the last round)"]
    method = (
        "VmRSS from /proc, summed over the process tree (nginx proxy: master and worker), "
        "read right after the proxy's own rows (warm, no load), then with N idle "
        "keep-alive client connections open, each having made one request (the row's GET, "
        "with the session) and answered 200; they are held by `bench/idle_clients.py` on "
        "the load core. KiB/conn = (RSS with N open - RSS at rest) / N. To hold them, "
        "the gateway runs with `gateway.limits` "
        + ", ".join(f"`{k}: {v}`" for k, v in extras.limits.items())
        + " and the nginx proxy with `worker_connections "
        f"{extras.limits.get('max_connections')}` (it allocates a connection's structures "
        "for all of them at start, about 0.4 KiB each, so they are in its RSS at rest and "
        "not in its KiB/conn); the lean proxy holds no upstream connection for an idle "
        "client.")
    lines = [method, "", memory_table(extras.memory, markdown=True)]
    notes = [f"- {m.target}: {n}" for m in extras.memory for n in m.notes]
    return lines + (["", *notes] if notes else [])


def _profile_lines(extras: Extras) -> list[str]:
    prof = extras.profile
    if prof is None:
        return [f"not recorded: {extras.profile_skipped or 'disabled (--profile-seconds 0)'}"]
    head = (f"{prof.total} non-idle samples in {prof.seconds:g} s at {prof.rate}/s "
            "(self time: the leaf frame of each sample); top entries:")
    body = [[f"{pct:.2f}", str(count), name.replace("|", "\\|")]
            for pct, count, name in prof.top(15)]
    return [head, "", _table(["% samples", "samples", "function (file)"], body, True)]


_BEGIN, _END = "<!-- bench:H begin -->", "<!-- bench:H end -->"


def write_results(section: str, path: Path = RESULTS) -> Path:
    """Replace scenario H's section of RESULTS.md (between its markers) with ``section``."""
    text = path.read_text()
    block = f"{_BEGIN}\n{section.rstrip()}\n{_END}"
    pattern = re.compile(re.escape(_BEGIN) + ".*?" + re.escape(_END), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) \
        else text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)
    return path
