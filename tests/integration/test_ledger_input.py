"""Ledger free text at its doors and on its way out (flags/text.py).

A reason that could forge a ledger row on an operator's terminal -- ANSI
escapes, a newline and a made-up row, bidi overrides, 60 KB -- is refused by
the admin API (400 naming the field, nothing moves, nothing is recorded) and
by the CLI (exit 2, before anything is reached). A row written straight into
the ledger table, as an older version could have, prints as exactly one inert
line in ``strangler flags history`` and is served escaped to the dashboard.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from sqlalchemy import create_engine, insert, inspect

from flags.ledger import ledger, metadata
from flags.text import REASON_MAX, REFUSED, inert
from tests.support.harness import ADMIN_TOKEN, GatewayHarness
from tests.support.keys import KeyPair

ROOT = Path(__file__).resolve().parents[2]

ANSI = "\x1b[2J\x1b[1;1H\x1b[31mall clear\x1b[0m"
FORGED = "step 3\n#99 2026-11-26 10:02:11Z alice-ops via admin-api: cart: new -> legacy -- ok"
BIDI = "approved by \u202eten-spo\u202c and \u2067ops\u2069"
SEPARATORS = "a\u2028b\u2029c\r\x85d\x7f"
HUGE = "x" * 60 * 1024
HOSTILE = {"ansi": ANSI, "forged_row": FORGED, "bidi": BIDI, "separators": SEPARATORS,
           "60_kb": HUGE, "nul": "a\x00b"}


def _sqlite_file(url: str) -> str:
    return url.split(":///", 1)[1]


def _write_raw(db_url: str, reasons: list[str], actor: str = "old-version") -> None:
    """Rows as an older version wrote them: straight into the table, nothing checked."""
    engine = create_engine(f"sqlite:///{_sqlite_file(db_url)}")
    metadata.create_all(engine, checkfirst=True)
    with engine.begin() as conn:
        for i, reason in enumerate(reasons):
            conn.execute(insert(ledger).values(
                at=datetime(2026, 11, 26, 10, 0, i), actor=actor, source="admin-api",
                route="cart", from_stage="legacy", from_percent=0, to_stage="canary",
                to_percent=10 + i, reason=reason, flag_version=i + 1, moved_with=""))
    engine.dispose()


def _ledger_rows(db_url: str) -> int:
    engine = create_engine(f"sqlite:///{_sqlite_file(db_url)}")
    try:
        if not inspect(engine).has_table("strangler_ledger"):
            return 0
        with engine.connect() as conn:
            return len(conn.execute(ledger.select()).all())
    finally:
        engine.dispose()


# ------------------------------------------------------------------ the admin API


@pytest.fixture
async def gw(redis_url: str, key_prefix: str, keypair: KeyPair,
             tmp_path: Path) -> AsyncIterator[GatewayHarness]:
    harness = GatewayHarness(
        redis_url, key_prefix, keypair, legacy={"a": "http://127.0.0.1:9"},
        routes=[{"name": "cart", "paths": ["/api/cart/*"], "stage": "legacy"},
                {"name": "default", "paths": ["/*"], "legacy_only": True}],
        extra={"database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}"}})
    await harness.start()
    try:
        yield harness
    finally:
        await harness.stop()


async def _call(gw: GatewayHarness, method: str, path: str,
                body: dict[str, Any] | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with aiohttp.ClientSession() as http, \
            http.request(method, gw.admin_url + path, json=body, headers=headers) as resp:
        return resp.status, await resp.json()


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
async def test_the_admin_api_refuses_a_hostile_reason_and_nothing_moves(
        gw: GatewayHarness, text: str) -> None:
    status, body = await _call(gw, "PUT", "/api/routes/cart",
                               {"stage": "new", "reason": text})
    assert status == 400, body
    assert body["error"] == "bad_request" and body["detail"].startswith("reason: ")
    if text is HUGE:
        assert body["detail"] == f"reason: at most {REASON_MAX} characters (got {len(HUGE)})"
    assert REFUSED.search(body["detail"]) is None  # the answer names the character inertly

    status, body = await _call(gw, "PUT", "/api/kill-switch", {"on": True, "reason": text})
    assert status == 400 and body["detail"].startswith("reason: ")

    _, routes = await _call(gw, "GET", "/api/routes")
    assert routes["kill_switch"] is False
    assert {r["name"]: r["stage"] for r in routes["routes"]}["cart"] == "legacy"
    _, entries = await _call(gw, "GET", "/api/ledger")
    assert entries["entries"] == []


async def test_the_admin_api_takes_a_plain_reason_at_the_limit(gw: GatewayHarness) -> None:
    reason = "cutover step 3 — ünïcode ok; " + "y" * (REASON_MAX - 29)
    assert len(reason) == REASON_MAX
    status, body = await _call(gw, "PUT", "/api/routes/cart", {"stage": "new", "reason": reason})
    assert status == 200, body
    status, body = await _call(gw, "PUT", "/api/kill-switch", {"on": False, "reason": 42})
    assert status == 400 and body["detail"] == "reason must be a string"
    _, entries = await _call(gw, "GET", "/api/ledger")
    assert [e["reason"] for e in entries["entries"]] == [reason]


async def test_rows_already_in_the_ledger_are_served_inert_to_the_dashboard(
        gw: GatewayHarness) -> None:
    db = gw.config().database.url
    _write_raw(db, list(HOSTILE.values()), actor="old\x1b]0;pwned\x07")
    _, body = await _call(gw, "GET", "/api/ledger?limit=10")
    served = {e["flag_version"]: e for e in body["entries"]}
    assert len(served) == len(HOSTILE)
    for i, text in enumerate(HOSTILE.values()):
        entry = served[i + 1]
        assert entry["reason"] == inert(text)
        assert entry["actor"] == "old\\x1b]0;pwned\\x07"
        assert not any(REFUSED.search(v) for v in entry.values() if isinstance(v, str))


# ------------------------------------------------------------------ the CLI


@pytest.fixture
def cli_config(tmp_path: Path) -> Path:
    doc = yaml.safe_load((ROOT / "config.yaml").read_text())
    doc["database"] = {"url": f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}"}
    doc["redis"]["url"] = "redis://127.0.0.1:9/0"  # nothing listens: a refusal must come first
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "strangler", "--config", str(config), *args],
                          cwd=config.parent, capture_output=True, timeout=60, check=False)


@pytest.mark.parametrize("text", [t for t in HOSTILE.values() if "\x00" not in t],
                         ids=[k for k, t in HOSTILE.items() if "\x00" not in t])
def test_the_cli_refuses_a_hostile_reason_with_exit_2_before_reaching_anything(
        cli_config: Path, text: str) -> None:
    for args in (("flags", "set", "cart", "new", "--reason", text),
                 ("flags", "kill", "on", "--reason", text)):
        done = _cli(cli_config, *args)
        err = done.stderr.decode()
        assert done.returncode == 2, err
        assert err.startswith("strangler flags: reason: ") and len(err.splitlines()) == 1
        assert "Redis" not in err and done.stdout == b""
    assert _ledger_rows(f"sqlite:///{cli_config.parent / 'ledger.db'}") == 0


def test_rows_already_in_the_ledger_print_as_one_inert_line_each(cli_config: Path) -> None:
    db = f"sqlite:///{cli_config.parent / 'ledger.db'}"
    _write_raw(db, list(HOSTILE.values()), actor="cli:\x1b[8mroot")
    for args in (("flags", "history"), ("flags", "history", "cart")):
        done = _cli(cli_config, *args)
        assert done.returncode == 0, done.stderr
        out = done.stdout.decode()
        lines = out.splitlines()
        assert len(lines) == len(HOSTILE) == out.count("\n")
        assert all(line.startswith("#") for line in lines)
        assert REFUSED.search(out.replace("\n", "")) is None
        assert not any(line.startswith("#99") for line in lines)  # the forged row stays text
    by_id = {line.split(" ", 1)[0]: line for line in lines}
    assert by_id["#2"].endswith(" -- " + inert(FORGED))
    assert by_id["#3"].endswith(" -- " + inert(BIDI))
    assert "cli:\\x1b[8mroot via admin-api" in by_id["#1"]
    assert by_id["#6"].endswith(" -- a\\x00b")
    assert by_id["#5"].endswith(f"... (+{len(HUGE) - REASON_MAX} characters)")
