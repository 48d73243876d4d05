"""Tables, ratios and the files under ``bench/out/``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.measure import Row

OUT = Path(__file__).with_name("out")

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


def write(meta: dict[str, Any], rows: list[Row], items: list[dict[str, Any]]) -> Path:
    OUT.mkdir(exist_ok=True)
    doc = {"meta": meta, "rows": [r.as_dict() for r in rows], "ratios": items,
           "shadow": shadow_pairs(rows)}
    (OUT / "latest.json").write_text(json.dumps(doc, indent=2) + "\n")
    (OUT / "latest.md").write_text(markdown(meta, rows, items))
    return OUT
