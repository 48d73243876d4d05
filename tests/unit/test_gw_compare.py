"""gateway.shadow.compare: structural JSON diff, headers, status, ignore rules and noise."""

from __future__ import annotations

import gzip
import json
import zlib
from typing import Any

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.shadow.compare import (
    MAX_DIFFERENCES,
    MAX_VALUE_CHARS,
    Answer,
    Difference,
    PathFilter,
    Rules,
    diff,
    pattern_problem,
)
from tests.support.profiles import shop_profile

JSON = {"Content-Type": "application/json; charset=utf-8"}
PLAIN = Rules.build()


def answer(body: Any, status: int = 200, headers: dict[str, str] | None = None,
           raw: bytes | None = None) -> Answer:
    data = raw if raw is not None else json.dumps(body).encode()
    return Answer(status, CIMultiDictProxy(CIMultiDict(headers if headers is not None else JSON)),
                  data)


def texts(a: Any, b: Any, rules: Rules = PLAIN, noise: frozenset[str] = frozenset()
          ) -> list[str]:
    return [str(d) for d in diff(answer(a), answer(b), rules, noise).differences]


# ---------------------------------------------------------------- structure
def test_identical_answers_have_no_differences() -> None:
    body = {"items": [{"product_id": 3, "qty": 2}], "count": 2, "total": "25.00"}
    result = diff(answer(body), answer(body), PLAIN)
    assert result.same and result.differences == () and not result.truncated


def test_key_order_and_whitespace_do_not_matter() -> None:
    a = answer(None, raw=b'{"a": 1, "b": [1, 2]}')
    b = answer(None, raw=b'{"b":[1,2],"a":1}')
    assert diff(a, b, PLAIN).same


def test_a_changed_value_deep_in_an_array_is_named_by_its_pointer() -> None:
    a = {"items": [{"qty": 1}, {"qty": 2}]}
    b = {"items": [{"qty": 1}, {"qty": 3}]}
    [d] = diff(answer(a), answer(b), PLAIN).differences
    assert d == Difference("/items/1/qty", "/items/*/qty", "value", "2", "3")
    assert str(d) == "/items/1/qty: 2 != 3"


def test_added_and_missing_keys() -> None:
    assert texts({"a": 1, "gone": "x"}, {"a": 1, "extra": True}) == [
        '/gone: only in legacy ("x")', "/extra: only in new (true)"]


def test_type_changes_are_reported_once_not_descended_into() -> None:
    assert texts({"price": "12.50"}, {"price": 12.5}) == ['/price: string "12.50" != number 12.5']
    assert texts({"x": {"a": 1}}, {"x": [1]}) == ["/x: object {1 keys} != array [1 items]"]
    assert texts({"x": None}, {"x": 0}) == ["/x: null null != number 0"]


def test_booleans_are_not_numbers_but_int_and_float_are_both_numbers() -> None:
    assert texts({"ok": True}, {"ok": 1}) == ["/ok: boolean true != number 1"]
    assert texts({"n": 1}, {"n": 1.0}) == []


def test_array_length_is_one_difference_and_the_common_prefix_is_still_compared() -> None:
    a = {"items": [{"id": 1}, {"id": 2}]}
    b = {"items": [{"id": 9}, {"id": 2}, {"id": 3}]}
    assert texts(a, b) == ["/items: length 2 != 3", "/items/0/id: 1 != 9"]


def test_root_level_differences() -> None:
    assert texts([1, 2], {"a": 1}) == ["(root): array [2 items] != object {1 keys}"]
    assert texts("a", "b") == ['(root): "a" != "b"']


def test_keys_with_slash_and_tilde_are_escaped_as_json_pointers() -> None:
    [d] = diff(answer({"a/b": {"~c": 1}}), answer({"a/b": {"~c": 2}}), PLAIN).differences
    assert d.path == "/a~1b/~0c"


def test_nested_arrays_give_nested_shapes() -> None:
    [d] = diff(answer({"m": [[1, 2], [3, 4]]}), answer({"m": [[1, 2], [3, 5]]}),
               PLAIN).differences
    assert (d.path, d.shape) == ("/m/1/1", "/m/*/*")


def test_long_values_are_truncated() -> None:
    [d] = diff(answer({"s": "x" * 500}), answer({"s": "y" * 500}), PLAIN).differences
    assert d.legacy is not None and len(d.legacy) == MAX_VALUE_CHARS and d.legacy.endswith("…")


def test_values_under_secret_looking_keys_are_never_shown() -> None:
    a = {"token": "abc.def", "auth": {"session_id": "s1", "inner": {"x": "leak1"}},
         "user": {"password_hint": "p1"}}
    b = {"token": "xyz.uvw", "auth": {"session_id": "s2", "inner": {"x": "leak2"}},
         "user": {"password_hint": "p2"}, "csrf": "new-one"}
    found = diff(answer(a), answer(b), PLAIN).differences
    dumped = json.dumps([d.to_dict() for d in found])
    for secret in ("abc.def", "xyz.uvw", "p1", "p2", "new-one"):
        assert secret not in dumped
    by_path = {d.path: str(d) for d in found}
    assert set(by_path) == {"/token", "/auth/session_id", "/auth/inner/x",
                            "/user/password_hint", "/csrf"}
    assert by_path["/auth/inner/x"] == '/auth/inner/x: "leak1" != "leak2"', "not a secret"
    assert all("<redacted>" in t for p, t in by_path.items() if p != "/auth/inner/x")
    # a key merely *containing* "session" hides its whole subtree too
    nested = diff(answer({"session": {"x": "leak1"}}), answer({"session": {"x": "leak2"}}),
                  PLAIN).differences
    assert "leak" not in json.dumps([d.to_dict() for d in nested])


def test_differences_are_capped() -> None:
    a = {f"k{i}": i for i in range(MAX_DIFFERENCES + 50)}
    b = {f"k{i}": -i - 1 for i in range(MAX_DIFFERENCES + 50)}
    result = diff(answer(a), answer(b), PLAIN)
    assert len(result.differences) == MAX_DIFFERENCES and result.truncated


# ---------------------------------------------------------------- status and headers
def test_status_differences() -> None:
    result = diff(answer({"a": 1}, 200), answer({"a": 1}, 404), PLAIN)
    assert [str(d) for d in result.differences] == ["status: 200 != 404"]


def test_content_type_is_compared_by_default_normalised() -> None:
    same = diff(answer({}, headers={"Content-Type": "Application/JSON;  charset=UTF-8"}),
                answer({}, headers={"content-type": "application/json; charset=utf-8"}), PLAIN)
    assert same.same
    other = diff(answer({}, headers={"Content-Type": "application/json"}),
                 answer({}, headers={"Content-Type": "text/plain"}), PLAIN)
    assert [str(d) for d in other.differences] == [
        "header:content-type: application/json != text/plain"]


def test_headers_not_configured_are_not_compared() -> None:
    a = answer({}, headers={**JSON, "ETag": '"1"', "Date": "Mon", "X-Request-Id": "a"})
    b = answer({}, headers={**JSON, "ETag": '"2"', "Date": "Tue", "X-Request-Id": "b"})
    assert diff(a, b, PLAIN).same
    rules = Rules.build(compare_headers=("Content-Type", "ETag"))
    assert [d.path for d in diff(a, b, rules).differences] == ["header:etag"]


def test_a_header_only_one_side_sends() -> None:
    rules = Rules.build(compare_headers=("Cache-Control",))
    a = answer({}, headers={"Cache-Control": "no-store"})
    [d] = diff(a, answer({}, headers={}), rules).differences
    assert (d.legacy, d.new) == ("no-store", None)


def test_date_and_request_id_are_never_compared_even_if_named() -> None:
    rules = Rules.build(compare_headers=("Date", "X-Request-Id"))
    a = answer({}, headers={"Date": "Mon", "X-Request-Id": "a"})
    b = answer({}, headers={"Date": "Tue", "X-Request-Id": "b"})
    assert diff(a, b, rules).same


def test_star_compares_every_header_but_noisy_framing_and_internal_ones() -> None:
    # the shadower adds the monolith's session headers (its profile names them)
    rules = Rules.build(compare_headers=("*",), ignore_headers=(
        "X-Trace", *shop_profile().response_headers))
    common = {"Content-Length": "10", "Server": "x", "Date": "d"}
    a = answer({}, headers={**common, "Cache-Control": "no-store", "X-Shop-Node": "a",
                            "X-Shop-Session-Rev": "3", "X-Trace": "1", "Vary": "Cookie"})
    b = answer({}, headers={**common, "Content-Length": "12", "Date": "e",
                            "Cache-Control": "private", "X-Trace": "2"})
    assert sorted(d.path for d in diff(a, b, rules).differences) == [
        "header:cache-control", "header:vary"]


def test_set_cookie_is_compared_by_cookie_names_never_values() -> None:
    rules = Rules.build(compare_headers=("Set-Cookie",))
    h1 = CIMultiDict([("Set-Cookie", "shop_session=SECRET1; HttpOnly"), ("Set-Cookie", "b=1")])
    h2 = CIMultiDict([("Set-Cookie", "b=2"), ("Set-Cookie", "shop_session=SECRET2; Path=/")])
    assert diff(Answer(200, h1, b"{}"), Answer(200, h2, b"{}"), rules).same
    h3 = CIMultiDict([("Set-Cookie", "other=SECRET3")])
    [d] = diff(Answer(200, h1, b"{}"), Answer(200, h3, b"{}"), rules).differences
    assert (d.legacy, d.new) == ("b, shop_session", "other")
    assert "SECRET" not in str(d.to_dict())


def test_ignore_headers_win_over_compare_headers() -> None:
    rules = Rules.build(compare_headers=("Content-Type", "ETag"), ignore_headers=("etag",))
    a = answer({}, headers={"ETag": "1"})
    b = answer({}, headers={"ETag": "2"})
    assert diff(a, b, rules).same


def test_plain_dict_headers_work_too() -> None:
    a = Answer(200, {"content-type": "application/json"}, b"{}")
    b = Answer(200, {"Content-Type": "text/html"}, b"{}")
    assert [d.path for d in diff(a, b, PLAIN).differences] == ["header:content-type"]


@pytest.mark.parametrize("name", ["Bad Header", "x:y", ""])
def test_rules_refuse_things_that_are_not_header_names(name: str) -> None:
    with pytest.raises(ValueError, match="not a header name"):
        Rules.build(compare_headers=(name,))


# ---------------------------------------------------------------- bodies that are not JSON
def test_non_json_bodies_are_compared_as_bytes_without_showing_them() -> None:
    a = answer(None, raw=b"<html>secret page A</html>")
    b = answer(None, raw=b"<html>secret page B</html>")
    [d] = diff(a, b, PLAIN).differences
    assert d.path == "body" and d.kind == "body"
    assert "secret" not in str(d) and "26 bytes" in str(d)
    assert diff(a, answer(None, raw=b"<html>secret page A</html>"), PLAIN).same


def test_json_against_non_json_and_empty_bodies() -> None:
    [d] = diff(answer({"a": 1}), answer(None, raw=b"oops"), PLAIN).differences
    assert d.legacy == "JSON object" and d.new is not None and d.new.startswith("non-JSON")
    [e] = diff(answer(None, raw=b""), answer({"a": 1}), PLAIN).differences
    assert e.legacy == "empty"
    assert diff(answer(None, raw=b""), answer(None, raw=b""), PLAIN).same  # HEAD


def test_compressed_bodies_are_compared_by_content() -> None:
    payload = json.dumps({"items": [1, 2, 3]}).encode()
    gz = {**JSON, "Content-Encoding": "gzip"}
    a = answer(None, headers=gz, raw=gzip.compress(payload, mtime=1))
    b = answer(None, headers=gz, raw=gzip.compress(payload, mtime=2))
    assert a.body != b.body and diff(a, b, PLAIN).same
    c = answer(None, headers={**JSON, "Content-Encoding": "deflate"},
               raw=zlib.compress(json.dumps({"items": [1, 2, 4]}).encode()))
    [d] = diff(a, c, PLAIN).differences
    assert str(d) == "/items/2: 3 != 4"
    plain = answer(None, raw=payload)
    assert diff(a, plain, PLAIN).same, "an encoding difference alone is not a difference"


def test_a_corrupt_or_unknown_encoding_is_a_body_difference() -> None:
    bad = answer(None, headers={**JSON, "Content-Encoding": "gzip"}, raw=b"not gzip")
    [d] = diff(bad, answer({"a": 1}), PLAIN).differences
    assert d.path == "body" and d.legacy == "undecodable body"


# ---------------------------------------------------------------- ignore paths
@pytest.mark.parametrize(("pattern", "path", "hit"), [
    ("/orders/*/created_at", "/orders/3/created_at", True),
    ("/orders/*/created_at", "/orders/3/total", False),
    ("/orders/*/created_at", "/orders/created_at", False),
    ("/**/id", "/id", True),
    ("/**/id", "/a/b/c/id", True),
    ("/**/id", "/a/b/c/idx", False),
    ("/**/id", "/a/id/deeper", True),
    ("/meta", "/meta/build/sha", True),
    ("/meta", "/metadata", False),
    ("/*_at", "/created_at", True),
    ("/*_at", "/created_by", False),
    ("/a/**", "/a", True),
    ("/a/**", "/b", False),
    ("/**", "/anything/at/all", True),
    ("/x/**/y/**/z", "/x/1/y/2/3/z", True),
    ("/x/**/y/**/z", "/x/1/z", False),
    ("/a~1b", "/a~1b/c", True),
])
def test_ignore_patterns(pattern: str, path: str, hit: bool) -> None:
    assert PathFilter([pattern]).matches(path) is hit


def test_ignore_patterns_never_match_status_headers_or_the_whole_body() -> None:
    f = PathFilter(["/**"])
    assert not f.matches("status") and not f.matches("header:etag") and not f.matches("body")


@pytest.mark.parametrize(("pattern", "problem"), [
    ("orders/*", "starting with '/'"),
    ("/a**/b", "whole segment"),
    ("/" + "a" * 600, "longer than 512"),
])
def test_bad_ignore_patterns_are_refused(pattern: str, problem: str) -> None:
    found = pattern_problem(pattern)
    assert found is not None and problem in found
    with pytest.raises(ValueError, match=r"JSON pointer|whole segment|longer"):
        PathFilter([pattern])


def test_many_double_stars_stay_fast() -> None:
    f = PathFilter(["/**/a/**/a/**/a/**/a/**/b"])
    assert not f.matches("/" + "/".join(["a"] * 200))


def test_ignore_paths_filter_differences_and_their_subtrees() -> None:
    rules = Rules.build(ignore_paths=("/orders/*/created_at", "/**/id", "/meta"))
    a = {"orders": [{"id": 1, "created_at": "t1", "total": "5.00"}],
         "meta": {"build": "a"}, "id": 7}
    b = {"orders": [{"id": 2, "created_at": "t2", "total": "6.00"}],
         "meta": {"build": "b", "extra": 1}, "id": 8}
    assert texts(a, b, rules) == ['/orders/0/total: "5.00" != "6.00"']


def test_ignored_keys_missing_on_one_side_are_not_differences() -> None:
    rules = Rules.build(ignore_paths=("/debug",))
    assert texts({"a": 1, "debug": {"x": 1}}, {"a": 1}, rules) == []


# ---------------------------------------------------------------- noise
def test_noise_shapes_filter_every_index_of_an_array() -> None:
    a = {"orders": [{"at": "1", "n": 1}, {"at": "2", "n": 2}]}
    b = {"orders": [{"at": "3", "n": 1}, {"at": "4", "n": 5}]}
    assert texts(a, b, noise=frozenset({"/orders/*/at"})) == ["/orders/1/n: 2 != 5"]


def test_noise_on_a_subtree_hides_what_is_below_it() -> None:
    a = {"stats": {"hits": 1, "ms": 3}, "v": 1}
    b = {"stats": {"hits": 9}, "v": 1}
    assert texts(a, b, noise=frozenset({"/stats"})) == []


def test_noise_never_hides_a_status_difference_but_may_hide_headers_and_raw_bodies() -> None:
    a = Answer(200, {"etag": "1"}, b"<p>a</p>")
    b = Answer(500, {"etag": "2"}, b"<p>b</p>")
    rules = Rules.build(compare_headers=("ETag",))
    noise = frozenset({"status", "header:etag", "body"})
    assert [d.path for d in diff(a, b, rules, noise).differences] == ["status"]


def test_two_legacy_answers_give_the_shapes_to_learn() -> None:
    first = {"generated_at": "10:00:01", "items": [{"id": 1, "seen": 5}], "price": "1.00"}
    second = {"generated_at": "10:00:02", "items": [{"id": 1, "seen": 6}], "price": "1.00"}
    assert diff(answer(first), answer(second), PLAIN).shapes == {"/generated_at",
                                                                 "/items/*/seen"}


def test_very_deep_bodies_are_compared_without_recursing_forever() -> None:
    def nest(leaf: Any, depth: int = 900) -> Any:
        for _ in range(depth):
            leaf = {"n": leaf}
        return leaf

    result = diff(answer(nest(1)), answer(nest(2)), PLAIN)
    [d] = result.differences
    assert d.path.count("/n") == 64 and d.kind == "value"
    assert diff(answer(nest(1)), answer(nest(1)), PLAIN).same
