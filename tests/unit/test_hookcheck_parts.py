"""`strangler hook check` without a node: its JSON comparison, its report, its command line."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from strangler.cli import main
from strangler.hookcheck import render
from strangler.hookcheck.context import ID_LENGTH, new_session_id
from strangler.hookcheck.jsondiff import (
    PREFIX,
    ROUNDTRIP_DATA,
    canonical,
    first_difference,
    kept,
    roundtrip_data,
)
from strangler.hookcheck.results import RULES, Check, Checks, RuleResult, skipped
from strangler.hookcheck.runner import Report


@pytest.mark.parametrize(("sent", "got", "where"), [
    (1, True, "data: sent 1, got true"),
    (1, 1.0, "data: sent 1, got 1.0"),
    (2**64, float(2**64), "data: sent 18446744073709551616, got 1.8446744073709552e+19"),
    (0.0, -0.0, "data: sent 0.0, got -0.0"),
    ({"a": [1, {"b": None}]}, {"a": [1, {"b": 0}]}, "data.a[1].b: sent null, got 0"),
    ({"a": 1}, {}, "data.a: missing"),
    ({}, {"ключ": 1}, 'data["\\u043a\\u043b\\u044e\\u0447"]: added (1)'),
    ([1, 2], [1], "data: sent 2 items, got 1"),
])
def test_values_are_the_same_only_when_type_and_bits_are(sent: object, got: object,
                                                         where: str) -> None:
    assert first_difference(sent, got) == where
    assert first_difference(sent, sent) is None


def test_a_node_may_add_keys_but_not_change_ours() -> None:
    sent = roundtrip_data()
    assert kept(sent, {**sent, "csrf": "x"}) is None
    assert kept(sent, {**sent, f"{PREFIX}floats": [0.1]}) == "data.hookcheck_floats: sent 7 " \
                                                              "items, got 1"
    assert kept(sent, None) == "data: sent an object, got null"


def test_the_roundtrip_payload_mixes_raw_utf8_escapes_and_awkward_numbers() -> None:
    data = roundtrip_data()
    assert all(key.startswith(PREFIX) for key in data)
    assert "é日本😀" in ROUNDTRIP_DATA and "\\ud83d\\ude00" in ROUNDTRIP_DATA
    assert data["hookcheck_text"][1] == data["hookcheck_text"][2] == "é日本😀"
    assert "\x00" in data["hookcheck_text"][4] and "hookcheck_ключ_ü" in data
    assert 18446744073709551616 in data["hookcheck_ints"] and 1e-7 in data["hookcheck_floats"]
    assert json.loads(canonical(data)) == data and canonical(data).isascii()


def test_generated_ids_fit_common_session_id_formats() -> None:
    ids = {new_session_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(len(i) == ID_LENGTH and i.isalnum() and i.islower() for i in ids)


def test_a_rule_passes_only_when_it_ran_and_every_check_held() -> None:
    checks = Checks("stale")
    assert checks.expect("a", "409", "409", True)
    assert checks.result("fine").ok and checks.result("fine").seen == "fine"
    for i in range(5):
        checks.expect(f"b{i}", "409", "200", False)
    failed = checks.result()
    assert failed.verdict == "fail"
    assert failed.seen == ("b0: 200 (expected 409); b1: 200 (expected 409); b2: 200 "
                           "(expected 409); and 2 more (--json lists them)")
    assert not RuleResult(RULES[0]).ok  # no checks: nothing was shown to hold
    assert skipped("race", "why").verdict == "skip" and not skipped("race", "why").ok


def _report() -> Report:
    passing = [RuleResult(r, (Check("x", "y", "y", True),), "fine") for r in RULES[:9]]
    return Report("http://node", "hkchkone", "hkchktwo",
                  (*passing, skipped("delete", "needs [the session]")), node="n1",
                  left_behind=("hkchkone",))


def test_plain_lines_and_the_table_say_the_same() -> None:
    report = _report()
    lines = render.plain(report).splitlines()
    assert lines[0] == ("hook check http://node (node n1): 9 of 10 rules pass, "
                        "the hook breaks the protocol")
    assert lines[1].startswith("PASS  1  token required: expected 403 for GET")
    assert lines[10] == (f"SKIP 10  delete: expected {RULES[9].expected} | "
                         "seen not run: needs [the session]")
    assert lines[-1].startswith("LEFT ON THE NODE: session hkchkone")
    out = io.StringIO()
    render.table(report, out)
    assert "SKIP" in out.getvalue() and "[the session]" in out.getvalue()
    assert json.loads(render.as_json(report))["results"][9]["result"] == "skip"


def test_usage_errors_exit_2_without_a_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)  # no config.yaml here
    token = tmp_path / "token"
    token.write_text("secret\n")
    (tmp_path / "blank").write_text("\n")
    cases = [
        (["http://127.0.0.1:1", "--token-file", str(tmp_path / "none")], "cannot read the token"),
        (["http://127.0.0.1:1", "--token-file", str(tmp_path / "blank")], "is empty"),
        (["ftp://127.0.0.1:1", "--token-file", str(token)], "is not an http:// or https://"),
        (["http://127.0.0.1:1?x=1", "--token-file", str(token)], "without a query"),
        (["http://127.0.0.1:99999", "--token-file", str(token)], "out of range"),
        (["http://127.0.0.1:1", "--token-file", str(token), *["--session-id", "abc"] * 3],
         "at most two"),
        (["http://127.0.0.1:1", "--token-file", str(token), "--session-id", "a/b"],
         "not a usable session id"),
    ]
    for argv, message in cases:
        assert main(["hook", "check", *argv]) == 2, argv
        assert message in capsys.readouterr().err, argv


def test_help_promises_to_touch_only_its_own_sessions(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["hook", "check", "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "it never touches a session it did not create" in text
    assert "Exit status: 0 every rule passes; 1 a rule fails" in text
