"""gateway.shadow.stats (per-route counts, noise, diff log), the shadow config section,
and the text of ``strangler shadow report``."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.settings import ConfigError, ShadowSection, parse
from gateway.shadow.compare import Difference
from gateway.shadow.stats import MAX_ENTRY_DIFFERENCES, MAX_SIGNATURES, DiffEntry, RouteStats
from strangler.shadow_cli import render

ROOT = Path(__file__).resolve().parents[2]
DEMO = yaml.safe_load((ROOT / "config.yaml").read_text())


def d(path: str, shape: str | None = None, legacy: str = "1", new: str = "2") -> Difference:
    return Difference(path, shape or path, "value", legacy, new)


def entry(*diffs: Difference, at: float = 0.0, path: str = "/api/x", rid: str = "r1"
          ) -> DiffEntry:
    return DiffEntry(at, "GET", path, rid, 200, 200, diffs)


def record(stats: RouteStats, *diffs: Difference, at: float = 0.0) -> bool:
    return stats.comparison(entry(*diffs, at=at), len(diffs), at)


# ---------------------------------------------------------------- counts
def test_counts_and_rate() -> None:
    stats = RouteStats("catalog")
    assert stats.consistency_rate is None
    assert record(stats)
    assert record(stats)
    assert not record(stats, d("/price"))
    stats.error("timeout", 1.0)
    stats.skip("busy")
    stats.skip("busy")
    stats.unsampled += 4
    assert (stats.compared, stats.consistent, stats.inconsistent) == (3, 2, 1)
    assert stats.consistency_rate == pytest.approx(2 / 3)
    s = stats.summary()
    assert s["errors"] == 1 and s["skipped"] == 2 and s["unsampled"] == 4
    assert s["top_differences"] == [{"path": "/price", "count": 1}]
    r = stats.report()
    assert r["errors_by_reason"] == {"timeout": 1} and r["skipped_by_reason"] == {"busy": 2}


def test_top_paths_count_comparisons_by_shape() -> None:
    stats = RouteStats("r")
    for _ in range(3):
        record(stats, d("/items/0/qty", "/items/*/qty"), d("/total"))
    record(stats, d("/items/4/qty", "/items/*/qty"))
    assert stats.top_paths() == [("/items/*/qty", 4), ("/total", 3)]


# ---------------------------------------------------------------- noise
def test_a_path_becomes_noise_at_the_threshold_and_past_comparisons_are_judged_again() -> None:
    stats = RouteStats("r", noise_threshold=2)
    assert not record(stats, d("/generated_at"))
    assert not record(stats, d("/generated_at"), d("/price"))
    assert stats.inconsistent == 2
    assert not stats.noise_sample({"/generated_at"})
    assert stats.noise == frozenset() and stats.inconsistent == 2
    assert stats.noise_sample({"/generated_at"}), "the second time it is learned"
    assert stats.noise == {"/generated_at"}
    # the timestamp-only comparison no longer counts; the one with a price still does
    assert (stats.inconsistent, stats.consistent) == (1, 1)
    assert stats.top_paths() == [("/price", 1)]
    log = stats.diff_log()
    assert len(log) == 1
    shown = log[0].to_dict(stats.noise)["differences"]
    assert [x["path"] for x in shown] == ["/price"], "noise is left out of log entries"
    report = stats.report()["noise"]
    assert report["learned"] == [{"path": "/generated_at", "count": 2}]
    assert report["samples"] == 2 and report["candidates"] == []


def test_candidates_below_the_threshold_are_reported_apart() -> None:
    stats = RouteStats("r", noise_threshold=3)
    stats.noise_sample({"/a", "/b"})
    stats.noise_sample({"/a"})
    stats.noise_sample(set())
    stats.noise_missed("status_differs")
    r = stats.report()["noise"]
    assert r["learned"] == [] and r["samples"] == 3
    assert r["candidates"] == [{"path": "/a", "count": 2}, {"path": "/b", "count": 1}]
    assert r["missed_samples"] == {"status_differs": 1}


def test_signatures_beyond_the_cap_stay_inconsistent() -> None:
    stats = RouteStats("r", noise_threshold=1, diff_log_size=0)
    for i in range(MAX_SIGNATURES):
        record(stats, d(f"/k{i}"))
    for _ in range(10):
        record(stats, d("/late"))  # a signature with no room left
    assert stats.inconsistent == MAX_SIGNATURES + 10
    stats.noise_sample({"/k0", "/late"})
    assert stats.inconsistent == MAX_SIGNATURES + 9, "the overflow cannot be judged again"


# ---------------------------------------------------------------- diff log
def test_the_diff_log_is_bounded_newest_first_and_keeps_rare_differences() -> None:
    stats = RouteStats("r", diff_log_size=10)
    record(stats, d("/rare"), at=0.5)
    for i in range(100):
        record(stats, d("/price"), at=1.0 + i)
    log = stats.diff_log()
    assert len(log) == 3, "a signature keeps at most size // 5 entries"
    assert [e.at for e in log] == [100.0, 99.0, 0.5]
    for i in range(7):
        record(stats, d(f"/other{i}"), at=200.0 + i)
    assert 0.5 in [e.at for e in stats.diff_log()], "a frequent difference never evicts a rare one"
    assert len(stats.diff_log()) == 10
    record(stats, d("/other7"), at=300.0)  # full: the fullest signature (price) gives way
    log = stats.diff_log()
    assert len(log) == 10 and [e.at for e in log if e.signature == {"/price"}] == [100.0]
    for i in range(8, 30):
        record(stats, d(f"/other{i}"), at=300.0 + i)
    assert [e.at for e in stats.diff_log()] == [300.0 + i for i in range(29, 19, -1)]


def test_the_fullest_signature_is_evicted_first() -> None:
    stats = RouteStats("r", diff_log_size=5)  # one entry per signature
    for i in range(5):
        record(stats, d(f"/s{i}"), at=float(i))
    record(stats, d("/s5"), at=9.0)
    assert sorted(e.at for e in stats.diff_log()) == [1.0, 2.0, 3.0, 4.0, 9.0]


def test_entries_keep_few_short_differences_and_no_bodies() -> None:
    stats = RouteStats("r")
    many = [d(f"/k{i}") for i in range(MAX_ENTRY_DIFFERENCES + 7)]
    stats.comparison(entry(*many, at=5.0, path="/api/products/3", rid="abc"), len(many) + 1, 5.0)
    [e] = stats.report()["diff_log"]["entries"]
    assert len(e["differences"]) == MAX_ENTRY_DIFFERENCES and e["more"] == 8
    assert e["path"] == "/api/products/3" and e["request_id"] == "abc"
    assert e["time"] == "1970-01-01T00:00:05.000Z"
    assert set(e) == {"time", "method", "path", "request_id", "legacy_status", "new_status",
                      "differences", "more"}


def test_a_zero_size_log_keeps_nothing() -> None:
    stats = RouteStats("r", diff_log_size=0)
    record(stats, d("/x"))
    assert stats.diff_log() == [] and stats.inconsistent == 1


def test_entries_that_learned_noise_explains_are_dropped() -> None:
    stats = RouteStats("r", noise_threshold=1, diff_log_size=10)
    record(stats, d("/t"), at=1.0)
    record(stats, d("/t"), d("/p"), at=2.0)
    stats.noise_sample({"/t"})
    assert [e.at for e in stats.diff_log()] == [2.0]
    record(stats, d("/q"), at=3.0)
    assert len(stats.diff_log()) == 2


# ---------------------------------------------------------------- config
def _parse_with(shadow: dict[str, Any]) -> str:
    data = copy.deepcopy(DEMO)
    data["routes"][0]["shadow"] = shadow
    with pytest.raises(ConfigError) as info:
        parse(data, "config.yaml")
    return str(info.value)


def test_the_shadow_section_has_safe_defaults() -> None:
    cfg = parse(copy.deepcopy(DEMO))
    s = cfg.routes[0].shadow
    assert s == ShadowSection()
    assert s.sample_rate == 1.0 and s.learn_noise and s.compare_headers == ("Content-Type",)
    assert 0 < s.noise_sample_rate < 1 and s.noise_threshold >= 2


def test_a_shadow_section_is_read_from_yaml() -> None:
    data = copy.deepcopy(DEMO)
    data["routes"][0]["shadow"] = {"ignore_paths": ["/orders/*/created_at", "/**/id"],
                                   "ignore_headers": ["ETag"], "compare_headers": ["*"],
                                   "noise_sample_rate": 1.0, "noise_threshold": 2,
                                   "sample_rate": 0.5, "diff_log_size": 10,
                                   "learn_noise": False}
    s = parse(data).routes[0].shadow
    assert s.ignore_paths == ("/orders/*/created_at", "/**/id") and s.sample_rate == 0.5
    assert s.compare_headers == ("*",) and not s.learn_noise


@pytest.mark.parametrize(("shadow", "expected"), [
    ({"ignore_paths": ["/ok", "no-slash"]},
     "routes[0].shadow.ignore_paths[1]: 'no-slash': an ignore path is a JSON pointer"),
    ({"ignore_paths": ["/a**"]}, "routes[0].shadow.ignore_paths[0]: '/a**': '**' must be"),
    ({"compare_headers": ["Date"]},
     "routes[0].shadow.compare_headers[0]: 'Date' differs on every response"),
    ({"compare_headers": ["x-request-id"]}, "routes[0].shadow.compare_headers[0]:"),
    ({"ignore_headers": ["bad header"]},
     "routes[0].shadow.ignore_headers[0]: 'bad header' is not a header name"),
    ({"sample_rate": 1.5}, "routes[0].shadow.sample_rate: Input should be less than or equal"),
    ({"noise_sample_rate": -0.1}, "routes[0].shadow.noise_sample_rate:"),
    ({"noise_threshold": 0}, "routes[0].shadow.noise_threshold: Input should be greater"),
    ({"noise_threshold": True}, "routes[0].shadow.noise_threshold:"),
    ({"diff_log_size": -1}, "routes[0].shadow.diff_log_size:"),
    ({"ignore_path": ["/x"]}, "routes[0].shadow.ignore_path: unknown key"),
])
def test_shadow_config_errors_name_their_key_path(shadow: dict[str, Any], expected: str) -> None:
    assert expected in _parse_with(shadow)


# ---------------------------------------------------------------- the CLI's text
def test_the_report_text() -> None:
    stats = RouteStats("catalog", noise_threshold=1)
    stats.noise_sample({"/generated_at"})
    record(stats)
    stats.comparison(DiffEntry(0.0, "GET", "/api/products/3", "rid42", 200, 200,
                               (Difference("/product/price", "/product/price", "value",
                                           '"12.50"', '"12.99"'),)), 1, 0.0)
    stats.error("timeout", 0.0)
    report = stats.report() | {"rules": {"ignore_paths": ["/meta"], "learn_noise": True}}
    text = render(json.loads(json.dumps(report)), "http://127.0.0.1:8081", "shadow")
    assert "shadow report: catalog  (gateway http://127.0.0.1:8081, stage shadow)" in text
    assert "consistency     50.00 %  (1 of 2 compared answers matched, 1 differed)" in text
    assert "errors 1 (timeout 1)" in text
    assert "        1  /product/price" in text
    assert "        1  /generated_at" in text
    assert "ignored by config: /meta" in text
    assert "GET /api/products/3  legacy 200 / new 200  request rid42" in text
    assert '/product/price: "12.50" != "12.99"' in text


def test_the_report_text_before_any_comparison() -> None:
    text = render(RouteStats("cart").report(), "http://x", None)
    assert "no comparisons yet" in text and "stage" not in text.splitlines()[0]
