"""Stack files: any app's processes, started by ``strangler demo`` and by ``start_stack``.

The notes app (tests/apps/notes: a Python monolith with sessions in memory) and its
new service in Node are started from their stack file (tests/apps/notes/stack.yaml),
answer through the gateway on both sides, take a fault by role, and stop cleanly. A
malformed stack file is refused naming its key paths; a failing setup step stops the
start with its output, and nothing is left running. The shop's own stack.yaml (what
``make demo`` reads) starts the shop as the hard-coded command lines did.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from strangler.launch import StackError
from strangler.rehearse.faults import FaultController
from strangler.rehearse.plan import FaultSpec
from strangler.rehearse.stack import start_stack
from strangler.stackfile import StackFileError, parse, render
from testkit.notes_stack import NOTES_ROUTES
from tests.support.net import await_until, free_port, port_open
from tests.support.notes_user import NotesUser
from tests.support.profiles import notes_session
from tests.support.shop import Admin, ShopUser, cart_lines

ROOT = Path(__file__).resolve().parents[2]
NOTES_STACK = ROOT / "tests" / "apps" / "notes" / "stack.yaml"
ROLES = {"legacy": {"argv": ["{python}", "-m", "http.server", "{port}"]},
         "new": {"argv": ["{python}", "-m", "http.server", "{port}"]}}


def notes_config(tmp: Path, redis_url: str | None, prefix: str) -> tuple[Path, dict[str, int]]:
    """A gateway config for the notes app on free ports; secrets in files of ``tmp``."""
    ports = {"gateway": free_port(), "admin": free_port(), "a": free_port(), "b": free_port(),
             "n1": free_port(), "n2": free_port()}
    doc: dict[str, Any] = {
        "gateway": {"listen": {"host": "127.0.0.1", "port": ports["gateway"]},
                    "admin_listen": {"host": "127.0.0.1", "port": ports["admin"]},
                    "admin_token": {"file": str(tmp / "admin-token")},
                    "debug_backend_header": True},
        "redis": {"url": redis_url, "key_prefix": prefix},
        "database": {"url": f"sqlite+aiosqlite:///{tmp / '.strangler' / 'ledger.db'}"},
        "legacy": {"nodes": [{"id": n, "url": f"http://127.0.0.1:{ports[n]}"} for n in "ab"],
                   "internal_token": {"file": str(tmp / "internal-token")}},
        "new": {"instances": [{"id": n, "url": f"http://127.0.0.1:{ports[n]}"}
                              for n in ("n1", "n2")]},
        "health": {"interval_ms": 200},
        "tokens": {"private_key_file": str(tmp / "keys" / "jwt-private.pem"),
                   "jwks_file": str(tmp / "keys" / "jwks.json"),
                   "session_key": {"file": str(tmp / "session-key")}},
        "flags": {"poll_interval_ms": 200},
        "session": notes_session(),
        "routes": NOTES_ROUTES,
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path, ports


def demo(config: Path, stack_file: Path, cwd: Path) -> subprocess.Popen[bytes]:
    with (cwd / "demo.out").open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "strangler", "--config", str(config),
                                 "demo", "--stack-file", str(stack_file)],
                                cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})


def output(cwd: Path) -> str:
    return (cwd / "demo.out").read_text(errors="replace")[-6000:]


async def state_on(gateway_url: str, admin: Admin, backend: str) -> None:
    """Log in on legacy; with the state route on ``backend``, the user's state is seen
    there, and the session a Node instance reads is the one the monolith wrote."""
    async with NotesUser(gateway_url) as user:
        login = await user.login("ann")
        assert login.status == 200, f"login through the gateway: {login.status} {login.body}"
        assert login.backend == "legacy", login.headers
        await admin.must_set_route("state", backend)
        put = await user.set_pref("theme", "dark")
        assert put.status == 200 and put.backend == backend, (put.status, put.body, put.headers)
        state = await user.state()
        assert state.status == 200 and state.backend == backend, (state.status, state.body)
        assert state.body["user"]["id"] == "u-1001" and state.body["prefs"] == {"theme": "dark"}


# ------------------------------------------------------------------ format errors
@pytest.mark.parametrize(("doc", "problems"), [
    ({"legacy": ROLES["legacy"]}, ["new: Field required"]),
    ({**ROLES, "extra": 1, "setup": [{"name": "Bad Name", "argv": []}]},
     ["extra: unknown key", "setup[0].name: String should match",
      "setup[0].argv: Tuple should have at least 1 item"]),
    ({**ROLES, "databases": {"main": {"file": "a.db", "url": "sqlite:///b.db"}}},
     ["databases.main: give file or url, not both"]),
    ({"legacy": {"argv": ["x", "{prot}", "{port"], "env": {"A-B": "1"}, "ready": "healthz"},
      "new": {"argv": ["{database_url:trips}"]},
      "setup": [{"name": "migrate", "argv": ["{python}", "{port}"]}]},
     ["legacy.argv[1]: unknown placeholder {prot}", "legacy.argv[2]: lone '{'",
      "legacy.env.A-B: not a variable name", "legacy.ready: a path, starting with /",
      "new.argv[0]: {database_url:trips}: no database 'trips'",
      "setup[0].argv[1]: {port} is a process's own"]),
    ({**ROLES, "secrets": ["django_key"],
      "setup": [{"name": "a", "argv": ["{secret_file:django}", "{database_file}"]}]},
     ["setup[0].argv[0]: {secret_file:django}: name one of secrets (django_key)",
      "setup[0].argv[1]: {database_file} needs a database name"]),
    ({**ROLES, "home": "api/x"}, ["home: String should match"]),
    ({**ROLES, "home": "/a b"}, ["home: String should match"]),
])
def test_a_malformed_stack_file_is_refused_naming_each_key_path(
        doc: dict[str, Any], problems: list[str]) -> None:
    with pytest.raises(StackFileError) as caught:
        parse(doc, "stack.yaml")
    for problem in problems:
        assert problem in str(caught.value), str(caught.value)


def test_placeholders_are_replaced_and_double_braces_are_braces() -> None:
    values = {"port": "8101", "database_url:trips": "sqlite+aiosqlite:////x/trips.db"}
    assert render('{{"port": {port}}} {database_url:trips}', values) == \
        '{"port": 8101} sqlite+aiosqlite:////x/trips.db'


def test_the_demo_refuses_a_bad_stack_file_before_starting_anything(tmp_path: Path) -> None:
    config, _ = notes_config(tmp_path, None, "unused")
    bad = tmp_path / "stack.yaml"
    bad.write_text(yaml.safe_dump({**ROLES, "new": {"argv": ["{redis}"]}}))
    done = subprocess.run([sys.executable, "-m", "strangler", "--config", str(config), "demo"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2, done.stderr
    assert f"{bad}: invalid stack file" in done.stderr  # the default: next to the config
    assert "new.argv[0]: unknown placeholder {redis}" in done.stderr
    check = subprocess.run([sys.executable, "-m", "strangler", "--config", str(config),
                            "check-config"], cwd=tmp_path, capture_output=True, text=True,
                           timeout=60, check=False)
    assert check.returncode == 2 and "new.argv[0]: unknown placeholder {redis}" in check.stderr
    missing = subprocess.run([sys.executable, "-m", "strangler", "--config", str(config), "demo",
                              "--stack-file", str(tmp_path / "nope.yaml")], cwd=tmp_path,
                             capture_output=True, text=True, timeout=60, check=False)
    assert missing.returncode == 2 and "cannot read the stack file" in missing.stderr


# ------------------------------------------------------------------ a real stack
async def test_strangler_demo_starts_the_notes_stack_from_its_stack_file(
        tmp_path: Path, redis_url: str, key_prefix: str) -> None:
    config, ports = notes_config(tmp_path, redis_url, key_prefix)
    proc = demo(config, NOTES_STACK, tmp_path)
    try:
        async def up() -> bool:
            assert proc.poll() is None, f"the demo exited {proc.returncode}:\n{output(tmp_path)}"
            return "Strangler demo of notes is up." in output(tmp_path)

        await await_until(up, timeout=120, what="the demo's banner")
        banner = output(tmp_path)
        assert "notes-a  " in banner and "notes-node-n2" in banner, banner
        assert "strangler flags set state new" in banner
        admin = Admin(f"http://127.0.0.1:{ports['admin']}",
                      (tmp_path / "admin-token").read_text().strip())
        await state_on(f"http://127.0.0.1:{ports['gateway']}", admin, "new")
        db = tmp_path / ".strangler" / "notes.db"  # the setup step made it in the run dir
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT COUNT(*) FROM started").fetchone() == (0,)
        assert (tmp_path / ".strangler" / "logs" / "setup-schema.log").exists()
        assert (tmp_path / ".strangler" / "logs" / "notes-node-n1.log").exists()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 30)
    assert code == 0, output(tmp_path)
    assert "stopping the notes demo" in output(tmp_path)
    for name, port in ports.items():
        assert not port_open(port), f"{name} still listens on {port} after the demo stopped"


async def test_start_stack_runs_the_notes_stack_and_its_faults_act_on_roles(
        tmp_path: Path) -> None:
    config, _ = notes_config(tmp_path, None, "unused")
    stack = await start_stack(config, tmp_path / "run", True, NOTES_STACK)
    try:
        notes_db = stack.databases["notes"]
        assert stack.database_url == notes_db  # the first declared is the default
        assert notes_db == f"sqlite+aiosqlite:///{tmp_path / 'run' / 'notes.db'}"
        admin = Admin(stack.admin_url, stack.admin_token)
        await state_on(stack.gateway_url, admin, "new")
        faults = FaultController(stack)
        kill_n1 = FaultSpec(at_s=0, duration_s=1, action="stop_new", target="n1", mode="kill")
        assert await faults.apply(kill_n1) == "stop_new: n1 killed"
        assert not stack.new["n1"].alive() and not port_open(stack.proxies["n1"].port)
        async with NotesUser(stack.gateway_url) as user:  # n2 serves, or legacy falls back
            await user.must_login("bo")
            put = await user.set_pref("lang", "fr")
            assert put.status == 200 and put.body["prefs"] == {"lang": "fr"}, put.body
            assert put.upstream != "n1", put.headers
        assert await faults.undo(kill_n1) == "stop_new ended: n1 restarted"
        assert stack.new["n1"].ready() and port_open(stack.proxies["n1"].port)
        slow = FaultSpec(at_s=0, duration_s=1, action="slow_new", delay_ms=400)
        assert await faults.apply(slow) == "slow_new: +400 ms on n1, n2"
        async with NotesUser(stack.gateway_url) as user:
            await user.must_login("cy")
            started = time.monotonic()
            state = await user.state()
            assert state.status == 200 and state.backend == "new", (state.status, state.body)
            assert time.monotonic() - started >= 0.4  # through the proxy: delayed, not lost
        await faults.undo(slow)
        pause_a = FaultSpec(at_s=0, duration_s=1, action="stop_legacy", target="a",
                            mode="pause")
        await faults.apply(pause_a)
        assert not stack.legacy["a"].ready()
        await faults.undo(pause_a)
        assert stack.legacy["a"].ready()
    finally:
        await stack.stop()
    assert not any(p.alive() for p in stack.processes())


async def test_strangler_demo_starts_the_shop_from_its_stack_yaml(tmp_path: Path) -> None:
    """``make demo``'s stack, from ./stack.yaml: seeded, both sides, a private Redis."""
    doc = yaml.safe_load((ROOT / "config.yaml").read_text())
    ports = {"gateway": free_port(), "admin": free_port()}
    doc["gateway"]["listen"]["port"], doc["gateway"]["admin_listen"]["port"] = \
        ports["gateway"], ports["admin"]
    for node in [*doc["legacy"]["nodes"], *doc["new"]["instances"]]:
        ports[node["id"]] = free_port()
        node["url"] = f"http://127.0.0.1:{ports[node['id']]}"
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(doc, sort_keys=False))
    proc = demo(config, ROOT / "stack.yaml", tmp_path)
    try:
        async def up() -> bool:
            assert proc.poll() is None, f"the demo exited {proc.returncode}:\n{output(tmp_path)}"
            return "Strangler demo of shop is up." in output(tmp_path)

        await await_until(up, timeout=120, what="the demo's banner")
        assert "services-n2" in output(tmp_path) and "redis://127.0.0.1:" in output(tmp_path)
        admin = Admin(f"http://127.0.0.1:{ports['admin']}",
                      (tmp_path / ".strangler" / "admin-token").read_text().strip())
        async with ShopUser(f"http://127.0.0.1:{ports['gateway']}") as user:
            await user.must_login()
            await user.must_add(1, 2)  # the seed's products: the setup step ran
            await admin.must_set_route("cart", "new")
            cart = await user.cart()
            assert cart.status == 200 and cart.backend == "new", (cart.status, cart.body)
            assert cart_lines(cart) == {1: 2}
        assert (tmp_path / ".strangler" / "shop.db").exists()  # config's database.url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # Ctrl-C
        code = await asyncio.to_thread(proc.wait, 30)
    assert code == 0, output(tmp_path)
    for name, port in ports.items():
        assert not port_open(port), f"{name} still listens on {port} after the demo stopped"


def test_stack_file_goes_with_stack(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "strangler", "rehearse",
                           str(ROOT / "plans" / "cutover-catalog-then-cart.yaml"),
                           "--stack-file", str(ROOT / "stack.yaml")], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and "--stack-file goes with --stack" in done.stderr, done.stderr


# ------------------------------------------------------------------ a failing setup
def failing_stack(tmp: Path) -> Path:
    marker = tmp / "second-step-ran"
    path = tmp / "failing.yaml"
    path.write_text(yaml.safe_dump({
        **ROLES,
        "setup": [
            {"name": "migrate", "argv": ["{python}", "-c", "import sys; print('applying 0002');"
                                         " print('table planner_user is broken'); sys.exit(3)"]},
            {"name": "seed", "argv": ["touch", str(marker)]},
        ]}))
    return path


def test_a_failing_setup_step_stops_the_demo_with_its_output(tmp_path: Path) -> None:
    config, ports = notes_config(tmp_path, None, "unused")
    done = subprocess.run([sys.executable, "-m", "strangler", "--config", str(config), "demo",
                           "--stack-file", str(failing_stack(tmp_path))], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "setup[0] (migrate) failed (exit 3)" in done.stderr
    assert "applying 0002\ntable planner_user is broken" in done.stderr
    assert not (tmp_path / "second-step-ran").exists()
    assert not any(port_open(p) for p in ports.values())  # the private Redis is gone too
    assert "stopping the app demo" in done.stderr


async def test_a_failing_setup_step_stops_start_stack_with_its_output(tmp_path: Path) -> None:
    config, _ = notes_config(tmp_path, None, "unused")
    with pytest.raises(StackError) as caught:
        await start_stack(config, tmp_path / "run", True, failing_stack(tmp_path))
    assert "setup[0] (migrate) failed (exit 3)" in str(caught.value)
    assert "table planner_user is broken" in str(caught.value)
    assert not (tmp_path / "second-step-ran").exists()


def test_a_process_that_dies_at_start_is_reported_with_its_log(tmp_path: Path) -> None:
    config, ports = notes_config(tmp_path, None, "unused")
    stack = tmp_path / "dies.yaml"
    stack.write_text(yaml.safe_dump({
        "legacy": {"argv": ["{python}", "-c", "import sys; print('gunicorn: no module named "
                                              "trips.wsgi'); sys.exit(4)"]},
        "new": ROLES["new"]}))
    done = subprocess.run([sys.executable, "-m", "strangler", "--config", str(config), "demo",
                           "--stack-file", str(stack)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "legacy-a exited (4)" in done.stderr
    assert "no module named trips.wsgi" in done.stderr
    assert not any(port_open(p) for p in ports.values())  # the new instances stopped too
