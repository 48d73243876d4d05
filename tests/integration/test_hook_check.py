"""`strangler hook check` against real hooks: the shop's, the notes app's, and flawed ones.

Every node runs in this process (aiohttp's test server on a loopback port) and
the check talks to it over HTTP exactly as it would to a monolith elsewhere.
A flawed hook breaks one promise; the check must fail that line and only it
(the one exception is said where it is).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from yarl import URL

from legacy_shop.app import create_app as create_shop
from legacy_shop.settings import Settings as ShopSettings
from legacy_shop.state import SESSIONS as SHOP_SESSIONS
from strangler.hookcheck import render
from strangler.hookcheck.client import AiohttpTransport, HookClient
from strangler.hookcheck.context import new_session_id
from strangler.hookcheck.runner import CheckImpossible, Report, check_hook
from tests.apps.notes.app import create_app as create_notes
from tests.apps.notes.settings import Settings as NotesSettings
from tests.apps.notes.web import SESSIONS as NOTES_SESSIONS
from tests.support.flawed_hook import HOOK, Flaw, hook_app
from tests.support.net import free_port
from tests.support.procs import ROOT

Server = Any  # aiohttp's TestServer


async def check(server: Server, token: str, *ids: str, timeout: float = 5.0) -> Report:
    base = URL(str(server.make_url("/")).rstrip("/"))
    sid, ghost = (*ids, new_session_id(), new_session_id())[:2]
    async with AiohttpTransport(base, timeout) as transport:
        return await check_hook(HookClient(transport, token), str(base), sid, ghost,
                                ids_given=bool(ids))


def failing(report: Report) -> set[int]:
    return {r.rule.number for r in report.results if not r.ok}


def line(report: Report, number: int) -> str:
    return render.plain(report).splitlines()[number]


@pytest.fixture
async def shop(aiohttp_server: Any, tmp_path: Path, internal_token: str) -> Server:
    settings = ShopSettings(node_id="shop-a", database_url=f"sqlite+aiosqlite:///"
                            f"{tmp_path / 'shop.db'}", internal_token=internal_token)
    return await aiohttp_server(create_shop(settings))


async def test_the_shop_keeps_every_rule_and_is_left_as_it_was(shop: Server,
                                                               internal_token: str) -> None:
    report = await check(shop, internal_token)
    assert failing(report) == set(), render.plain(report)
    assert report.ok and report.node == "shop-a" and report.left_behind == ()
    assert len(shop.app[SHOP_SESSIONS]) == 0  # the throwaway session is gone
    assert "plus the node's own keys (" in line(report, 3) and "csrf" in line(report, 3)


async def test_the_notes_app_keeps_every_rule(aiohttp_server: Any, internal_token: str) -> None:
    server = await aiohttp_server(create_notes(NotesSettings("notes-1", internal_token)))
    report = await check(server, internal_token)
    assert failing(report) == set(), render.plain(report)
    assert report.node == "notes-1" and len(server.app[NOTES_SESSIONS]) == 0


async def test_a_hook_without_flaws_keeps_every_rule(aiohttp_server: Any,
                                                     internal_token: str) -> None:
    server = await aiohttp_server(hook_app(None, internal_token))
    report = await check(server, internal_token)
    assert failing(report) == set(), render.plain(report)
    assert server.app[HOOK].sessions == {}


FLAWS = [
    # (the flaw, the rules it breaks, a pattern of what the first of those lines says)
    (Flaw.NO_TOKEN, {1}, r"GET without a token: 404 "),
    (Flaw.ANY_TOKEN, {1}, r"PUT with a wrong token: 200 "),
    (Flaw.FOUND_UNKNOWN, {2}, r'GET hkchk\w+: 200 \{"session_id"'),
    (Flaw.CREATE_AT_ZERO, {3}, r'PUT expected_revision null: 200 \{"revision": 0\}'),
    (Flaw.NO_NODE, {3}, r"export node: None \(expected a non-empty string\)"),
    (Flaw.SAME_DATA_SAME_REVISION, {4}, r'the same data again: 200 \{"revision": 2\}'),
    (Flaw.STALE_SAYS_EXPECTED, {5}, r'expected_revision 0: 409 \{"revision": 0, '),
    # With no compare-and-set there is no loser either: 5 and 7 are one flaw.
    (Flaw.NO_COMPARE_AND_SET, {5, 7}, r'expected_revision 0: 200 \{"revision": 5\}'),
    (Flaw.BIG_INTS_AS_FLOATS, {6}, r"data\.hookcheck_ints\[2\]: sent 9007199254740993, "
                                   r"got 9007199254740992\.0"),
    (Flaw.DROPS_NULLS, {6}, r"data\.hookcheck_null: missing"),
    (Flaw.TWO_WINNERS, {7}, r"8 concurrent imports, expected_revision \d+: [2-8] x 200"),
    (Flaw.IGNORES_FENCES, {8}, r"import with fence 999999: 200 "),
    (Flaw.OVERSIZE_500, {9}, r"an import of 2\.0 MiB: 500 "),
    (Flaw.NOT_JSON_500, {9}, r"a body cut short: 500 "),
    (Flaw.DELETE_KEEPS, {10}, r"GET after DELETE: 200 "),
]


@pytest.mark.parametrize(("flaw", "rules", "seen"), FLAWS, ids=[f[0].name for f in FLAWS])
async def test_a_flawed_hook_fails_its_own_line(aiohttp_server: Any, internal_token: str,
                                                flaw: Flaw, rules: set[int], seen: str) -> None:
    server = await aiohttp_server(hook_app(flaw, internal_token))
    report = await check(server, internal_token)
    assert failing(report) == rules, render.plain(report)
    first = line(report, min(rules))
    assert first.startswith(f"FAIL {min(rules):>2}") and re.search(seen, first), first
    assert not report.ok
    assert all(r.skipped is None for r in report.results)


async def test_a_hook_that_never_answers_fails_in_time(aiohttp_server: Any,
                                                       internal_token: str) -> None:
    server = await aiohttp_server(hook_app(Flaw.OVERSIZE_HANGS, internal_token))
    report = await check(server, internal_token, timeout=1.0)
    assert failing(report) == {9}, render.plain(report)
    assert "an import of 2.0 MiB: no answer (no answer within 1 s)" in line(report, 9)


async def test_a_cancelled_check_still_deletes_its_session(aiohttp_server: Any,
                                                           internal_token: str) -> None:
    server = await aiohttp_server(hook_app(Flaw.OVERSIZE_HANGS, internal_token))
    hook = server.app[HOOK]
    task = asyncio.create_task(check(server, internal_token, timeout=60.0))
    await hook.hanging.wait()  # rule 9 is waiting for an answer that never comes
    assert len(hook.sessions) == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert hook.sessions == {}


async def test_a_delete_that_keeps_the_session_is_reported_as_left_behind(
        aiohttp_server: Any, internal_token: str) -> None:
    server = await aiohttp_server(hook_app(Flaw.DELETE_KEEPS, internal_token))
    report = await check(server, internal_token)
    assert report.left_behind == (report.sid,)
    assert list(server.app[HOOK].sessions) == [report.sid]  # nothing else was ever made
    assert f"LEFT ON THE NODE: session {report.sid}" in render.plain(report)


async def test_a_node_without_a_token_says_its_hook_is_off(aiohttp_server: Any,
                                                           tmp_path: Path) -> None:
    settings = ShopSettings(node_id="a", database_url=f"sqlite+aiosqlite:///{tmp_path}/s.db")
    server = await aiohttp_server(create_shop(settings))
    report = await check(server, "some-token")
    assert [r.verdict for r in report.results] == ["fail"] + ["skip"] * 9
    assert "503: the node has no internal token configured, so its hook is off" in line(report, 1)
    assert "not run: the hook is off (503)" in line(report, 2)


async def test_a_refused_token_or_no_node_means_no_check(shop: Server) -> None:
    with pytest.raises(CheckImpossible, match=r"refused the token \(403\)"):
        await check(shop, "not-the-token")
    with pytest.raises(CheckImpossible, match="cannot reach the hook"):
        async with AiohttpTransport(URL(f"http://127.0.0.1:{free_port()}"), 2.0) as t:
            await check_hook(HookClient(t, "x"), "here", new_session_id(), new_session_id())


async def test_given_ids_are_used_and_a_live_one_is_never_touched(
        aiohttp_server: Any, internal_token: str) -> None:
    server = await aiohttp_server(create_notes(NotesSettings("n1", internal_token)))
    mine, unknown = "my-own-id-0123456789", "nobody-has-this-id-42"
    report = await check(server, internal_token, mine, unknown)
    assert failing(report) == set() and (report.sid, report.ghost) == (mine, unknown)

    store = server.app[NOTES_SESSIONS]
    live = store.create({"_auth_user_id": "u-1001", "draft": "mine"})
    with pytest.raises(CheckImpossible, match=f"--session-id {live.sid}: the node has a session"):
        await check(server, internal_token, live.sid)
    with pytest.raises(CheckImpossible, match=f"--session-id {live.sid}: the node has a session"):
        await check(server, internal_token, mine, live.sid)
    assert (live.revision, live.data) == (1, {"_auth_user_id": "u-1001", "draft": "mine"})
    assert store.get(live.sid) is live and len(store) == 1


async def cli(*args: str, cwd: Path) -> tuple[int, str, str]:
    """``python -m strangler ...`` as a child process, while this loop serves the node."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "STRANGLER_CONFIG": str(cwd / "absent.yaml")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "strangler", *args, cwd=cwd, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_the_command_needs_no_config_and_exits_by_the_verdict(
        shop: Server, aiohttp_server: Any, internal_token: str, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(f"{internal_token}\n")
    url = str(shop.make_url("/")).rstrip("/")
    code, out, err = await cli("hook", "check", url, "--token-file", str(token_file),
                               cwd=tmp_path)
    assert code == 0, out + err
    lines = out.splitlines()
    assert lines[0] == f"hook check {url} (node shop-a): 10 of 10 rules pass, every rule passes"
    assert [ln[:7] for ln in lines[1:11]] == [f"PASS {n:>2}" for n in range(1, 11)]

    flawed = await aiohttp_server(hook_app(Flaw.DELETE_KEEPS, internal_token))
    code, out, err = await cli("hook", "check", str(flawed.make_url("/")), "--token-file",
                               str(token_file), "--json", cwd=tmp_path)
    assert code == 1, out + err
    report = json.loads(out)
    assert [r["result"] for r in report["results"]] == ["pass"] * 9 + ["fail"]
    assert report["left_behind"] == [report["session_ids"]["created"]] and not report["ok"]
