"""The Django kit (kits/django) in real Django nodes: the trips example, two gunicorn
processes sharing one fresh SQLite file, sessions in each process's memory.

The nodes start once for the module; each test makes its own sessions.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from strangler.hookcheck.jsondiff import ROUNDTRIP_DATA, kept, roundtrip_data
from testkit.procs import Proc
from testkit.trips import HEADERS, LEGACY, Answer, TripsClient, TripsSite, base_url

SID, REV, NODE = (HEADERS[k].lower() for k in ("session_id", "revision", "node"))
HOOK = "/_internal/sessions/"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> TripsSite:
    site = TripsSite(tmp_path_factory.mktemp("trips"))
    for step in (("migrate", "--noinput"), ("seed",)):
        done = site.manage(*step)
        assert done.returncode == 0, f"setup step {step} failed:\n{done.stdout}\n{done.stderr}"
    again = site.manage("seed")
    assert again.returncode == 0 and "0 rows created" in again.stdout, \
        f"seed run twice must change nothing:\n{again.stdout}\n{again.stderr}"
    return site


@pytest.fixture(scope="module")
def nodes(site: TripsSite) -> Iterator[dict[str, str]]:
    started: list[Proc] = []
    try:
        for name in ("a", "b"):
            started.append(site.node(name).start(timeout=60))
        yield {name: base_url(proc) for name, proc in zip("ab", started, strict=True)}
    finally:
        for proc in started:
            proc.stop()


def internal(site: TripsSite, base: str, method: str, sid: str, body: Any = None,
             fence: int | None = None) -> Answer:
    headers = {"X-Internal-Token": site.token_file.read_text()}
    if fence is not None:
        headers["X-Strangler-Fence"] = str(fence)
    return TripsClient(base).call(method, HOOK + sid, body, headers=headers)


def stamp(answer: Answer) -> tuple[str | None, str | None, str | None]:
    return answer.headers.get(SID), answer.headers.get(REV), answer.headers.get(NODE)


def test_strangler_hook_check_passes_every_rule(site: TripsSite, nodes: dict[str, str]) -> None:
    done = subprocess.run(
        [str(Path(sys.executable).with_name("strangler")), "hook", "check", nodes["a"],
         "--token-file", str(site.token_file), "--json"],
        capture_output=True, text=True, timeout=120, check=False)
    report = json.loads(done.stdout) if done.stdout.strip() else {}
    failing = [r for r in report.get("results", []) if r.get("result") != "pass"]
    assert done.returncode == 0 and report.get("ok") is True and not failing, \
        f"exit {done.returncode}; failing rules:\n" + \
        "\n".join(json.dumps(r) for r in failing) + f"\n{done.stderr}"


def test_headers_count_every_change_and_say_zero_after_logout(nodes: dict[str, str]) -> None:
    user = TripsClient(nodes["a"])
    anonymous = user.call("GET", "/api/destinations")
    assert anonymous.status == 200 and REV not in anonymous.headers, \
        "a request without a session cookie gets no session headers"
    login = user.login()
    assert login.status == 200, login.body
    assert stamp(login) == (user.cookie, "1", "a"), "a login creates the session at rev 1"
    steps = [("PUT", "/api/prefs/theme", {"value": "dark"}, "2"),
             ("PUT", "/api/prefs/theme", {"value": "dark"}, "2"),  # no change, no bump
             ("GET", "/api/state", None, "2"),
             ("POST", "/api/views/kyoto", None, "3"),
             ("PUT", "/api/draft", {"text": "pack light"}, "4"),
             ("PUT", "/api/draft", {"text": 1}, "4")]  # a 400 changes nothing
    for method, path, body, rev in steps:
        answer = user.call(method, path, body)
        assert stamp(answer) == (user.cookie, rev, "a"), (method, path, answer.body)
    sid = user.cookie
    again = user.login("ann")
    assert stamp(again) == (sid, "5", "a"), "the same user again: same key, one more change"
    sid = user.cookie
    out = user.call("POST", "/accounts/logout")
    assert out.status == 200 and stamp(out) == (sid, "0", "a"), out.headers
    assert user.cookie is None, "logout expires the cookie"


def test_a_login_on_a_session_without_a_user_cycles_the_key_and_counts_on(
        site: TripsSite, nodes: dict[str, str]) -> None:
    guest = "guest" + "0" * 27
    put = internal(site, nodes["a"], "PUT", guest,
                   {"data": {"recent": ["kyoto"]}, "expected_revision": None})
    assert put.status == 200 and put.json() == {"revision": 1}, put.body
    user = TripsClient(nodes["a"], cookie=guest)
    login = user.login("cat")
    assert login.status == 200 and user.cookie not in (None, guest), "cycle_key: a new id"
    assert stamp(login) == (user.cookie, "2", "a"), "the revision carries on under the new id"
    assert user.call("GET", "/api/state").json()["recent"] == ["kyoto"]
    assert internal(site, nodes["a"], "GET", guest).status == 404, "the old id is gone"


def test_a_session_imported_on_b_is_served_by_b(site: TripsSite,
                                                 nodes: dict[str, str]) -> None:
    user = TripsClient(nodes["a"])
    assert user.login("ben").status == 200
    assert user.call("PUT", "/api/saved/lisbon").status == 200
    assert user.call("PUT", "/api/wizard/where", {"destination": "lisbon", "nights": 4}).status \
        == 200
    on_a = user.call("GET", "/api/state")
    exported = internal(site, nodes["a"], "GET", user.cookie or "", fence=7)
    assert exported.status == 200, exported.body
    export = exported.json()
    assert export["node"] == "a" and export["revision"] == 3
    assert "_strangler_rev" not in export["data"]
    assert export["data"]["_auth_user_id"] == on_a.json()["user"]["id"], "the id is text"
    assert internal(site, nodes["b"], "GET", user.cookie or "").status == 404
    put = internal(site, nodes["b"], "PUT", user.cookie or "",
                   {"data": export["data"], "expected_revision": 0, "fence": 7})
    assert put.status == 200 and put.json() == {"revision": 1}, put.body
    on_b = TripsClient(nodes["b"], cookie=user.cookie)
    state = on_b.call("GET", "/api/state")
    assert state.status == 200, "b serves the imported session: same SECRET_KEY, same user"
    assert state.json() == on_a.json()
    assert stamp(state) == (user.cookie, "1", "b")
    changed = on_b.call("POST", "/api/views/lisbon")
    assert stamp(changed) == (user.cookie, "2", "b")
    after = internal(site, nodes["b"], "GET", user.cookie or "").json()
    assert after["revision"] == 2 and after["imported"] == {"fence": 7, "revision": 1}


def test_unknown_keys_and_exact_numbers_round_trip(site: TripsSite,
                                                   nodes: dict[str, str]) -> None:
    user = TripsClient(nodes["a"])
    assert user.login("cat").status == 200
    sid = user.cookie or ""
    export = internal(site, nodes["a"], "GET", sid).json()
    data = json.dumps(export["data"])
    raw = (f'{{"data": {{**SPLICE**, "app_extra": {ROUNDTRIP_DATA}, "n": 1, "f": 1.0}},'
           f' "expected_revision": {export["revision"]}}}').replace("**SPLICE**", data[1:-1])
    put = TripsClient(nodes["a"]).call(
        "PUT", HOOK + sid, headers={"X-Internal-Token": site.token_file.read_text()},
        raw=raw.encode())
    assert put.status == 200, put.body
    back = internal(site, nodes["a"], "GET", sid).json()["data"]
    assert kept({"app_extra": roundtrip_data(), "n": 1, "f": 1.0}, back) is None, \
        kept({"app_extra": roundtrip_data(), "n": 1, "f": 1.0}, back)
    assert user.call("PUT", "/api/prefs/lang", {"value": "fr"}).status == 200, \
        "the app keeps working on a session carrying keys it does not know"
    again = internal(site, nodes["a"], "GET", sid).json()["data"]
    assert kept({"app_extra": roundtrip_data(), "n": 1, "f": 1.0}, again) is None
    assert again["prefs"] == {"lang": "fr"}


def test_an_import_after_a_change_is_refused_when_stale(site: TripsSite,
                                                        nodes: dict[str, str]) -> None:
    user = TripsClient(nodes["a"])
    assert user.login("dan").status == 200
    sid = user.cookie or ""
    before = internal(site, nodes["a"], "GET", sid).json()
    assert user.call("PUT", "/api/prefs/seat", {"value": "aisle"}).status == 200
    stale = internal(site, nodes["a"], "PUT", sid,
                     {"data": before["data"], "expected_revision": before["revision"]})
    assert stale.status == 409 and stale.json() == {"revision": before["revision"] + 1,
                                                    "fenced": False}
    assert user.call("GET", "/api/state").json()["prefs"] == {"seat": "aisle"}


def test_a_concurrent_duplicate_booking_replays(nodes: dict[str, str]) -> None:
    user = TripsClient(nodes["a"])
    assert user.login("ann").status == 200
    for step, given in (("where", {"destination": "kyoto"}), ("when", {"month": "may"}),
                        ("who", {"adults": 2})):
        assert user.call("PUT", f"/api/wizard/{step}", given).status == 200
    key = {"Idempotency-Key": "trip-ann-kyoto-1"}
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: user.call("POST", "/api/bookings", headers=key),
                                range(4)))
    statuses = sorted(a.status for a in answers)
    assert statuses == [200, 200, 200, 201], [a.body for a in answers]
    bodies = {json.dumps(a.json(), sort_keys=True) for a in answers}
    assert len(bodies) == 1, "every replay answers the same booking"
    assert all(a.headers.get("idempotent-replayed") == "true" for a in answers if a.status == 200)
    incomplete = user.call("POST", "/api/bookings", headers={"Idempotency-Key": "other"})
    assert incomplete.status == 400 and incomplete.json()["error"] == "wizard_incomplete"


def _check_refuses(site: TripsSite, tmp_path: Path, settings: str) -> str:
    (tmp_path / "bad_settings.py").write_text(f"from trips.settings import *  # noqa\n{settings}")
    done = site.manage("check", extra_env={"DJANGO_SETTINGS_MODULE": "bad_settings",
                                           "PYTHONPATH": f"{tmp_path}:{LEGACY}"})
    assert done.returncode != 0, f"the node started anyway:\n{done.stdout}"
    return done.stderr


def test_the_signed_cookie_engine_is_refused_at_start(site: TripsSite, tmp_path: Path) -> None:
    err = _check_refuses(site, tmp_path, 'SESSION_ENGINE = '
                         '"django.contrib.sessions.backends.signed_cookies"\n')
    assert "ImproperlyConfigured" in err and "signed_cookies" in err \
        and "server-side engine" in err, err


def test_a_wrong_middleware_order_is_refused_at_start(site: TripsSite, tmp_path: Path) -> None:
    err = _check_refuses(site, tmp_path, "MIDDLEWARE = list(reversed(MIDDLEWARE))\n")
    assert "must come right after" in err, err


ENGINES = {
    "db": 'INSTALLED_APPS = [*INSTALLED_APPS, "django.contrib.sessions"]\n'
          'SESSION_ENGINE = "django.contrib.sessions.backends.db"\n',
    "cached_db": 'INSTALLED_APPS = [*INSTALLED_APPS, "django.contrib.sessions"]\n'
                 'SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"\n',
    "file": 'SESSION_ENGINE = "django.contrib.sessions.backends.file"\n'
            'SESSION_FILE_PATH = {path!r}\n',
}


def engine_node(site: TripsSite, tmp_path: Path, engine: str, workers: int = 1) -> Proc:
    """A started node of the example with its session engine swapped for ``engine``."""
    sessions_dir = tmp_path / "sessions"
    sessions_dir.mkdir()
    module = f"engine_{engine}"
    (tmp_path / f"{module}.py").write_text(
        "from trips.settings import *  # noqa\n" + ENGINES[engine].format(path=str(sessions_dir)))
    env = {"DJANGO_SETTINGS_MODULE": module, "PYTHONPATH": f"{tmp_path}:{LEGACY}"}
    migrate = site.manage("migrate", "--noinput", extra_env=env)
    assert migrate.returncode == 0, f"migrate failed:\n{migrate.stdout}\n{migrate.stderr}"
    node = site.node(f"{engine}-node", workers=workers)
    node.env.update(env)
    return node.start(timeout=60)


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_other_session_engines_keep_every_rule(site: TripsSite, tmp_path: Path,
                                               engine: str) -> None:
    node = engine_node(site, tmp_path, engine)
    try:
        test_strangler_hook_check_passes_every_rule(site, {"a": base_url(node)})
        user = TripsClient(base_url(node))
        assert stamp(user.login("ann"))[1] == "1"
        assert stamp(user.call("PUT", "/api/prefs/theme", {"value": "dark"}))[1] == "2"
        assert stamp(user.call("POST", "/accounts/logout"))[1] == "0"
    finally:
        node.stop()


def test_imports_in_several_processes_on_the_db_engine_have_one_winner(
        site: TripsSite, tmp_path: Path) -> None:
    node = engine_node(site, tmp_path, "db", workers=3)
    base = base_url(node)
    sid = "multi" + secrets.token_hex(12)
    try:
        created = internal(site, base, "PUT", sid, {"data": {"n": 0}, "expected_revision": 0})
        assert created.status == 200 and created.json() == {"revision": 1}, created.body
        with ThreadPoolExecutor(8) as pool:
            for expected in range(1, 6):
                replies = list(pool.map(lambda i, e=expected: internal(
                    site, base, "PUT", sid, {"data": {"n": i}, "expected_revision": e}),
                    range(8)))
                statuses = sorted(r.status for r in replies)
                assert statuses == [200] + [409] * 7, [r.body for r in replies]
        final = internal(site, base, "GET", sid).json()
        assert final["revision"] == 6, final
    finally:
        node.stop()
