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
        "## Redis commands per request", "",
        *[f"- {line}" for line in redis_breakdown(rows)], "",
    ]
    found = notes(rows)
    parts += ["## Notes", "", *[f"- {n}" for n in found or ["none: every gateway request was "
                                                             "served by the expected backend"]]]
    return "\n".join(parts) + "\n"


def write(meta: dict[str, Any], rows: list[Row], items: list[dict[str, Any]]) -> Path:
    OUT.mkdir(exist_ok=True)
    doc = {"meta": meta, "rows": [r.as_dict() for r in rows], "ratios": items}
    (OUT / "latest.json").write_text(json.dumps(doc, indent=2) + "\n")
    (OUT / "latest.md").write_text(markdown(meta, rows, items))
    return OUT
