"""gateway.edge.blocked: which paths are never forwarded, in every spelling a backend resolves."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.edge.blocked import HOOK_PATTERN, Blocklist, exposed, patterns
from gateway.edge.canonical import canonical
from gateway.settings import Config, parse

ROOT = Path(__file__).resolve().parents[2]
DEMO = yaml.safe_load((ROOT / "config.yaml").read_text())


def cfg(gateway: dict[str, Any] | None = None, health: dict[str, Any] | None = None) -> Config:
    data = copy.deepcopy(DEMO)
    data["gateway"].update(gateway or {})
    if health is not None:
        data["health"] = health
    return parse(data)


def test_default_is_the_hook_namespace_and_the_health_path() -> None:
    assert HOOK_PATTERN == "/_internal/*"
    assert patterns(cfg()) == ("/_internal/*", "/healthz")
    assert patterns(cfg(health={"path": "/status?full=0"})) == ("/_internal/*", "/status")
    assert patterns(cfg({"blocked_paths": ["/admin/*"]})) == ("/admin/*",)
    assert patterns(cfg({"blocked_paths": []})) == ()


BLOCKED = ["/healthz", "/healthz/", "/HEALTHZ", "/HealthZ/", "//healthz", "/./healthz",
           "/x/../healthz", "/%68ealthz", "/_internal", "/_internal/", "/_INTERNAL/sessions/x",
           "/%5Finternal/sessions/abc", "/%5finternal", "/_internal/../_internal/x",
           "//_internal//sessions", "/healthz?probe=1"]
PASSED = ["/", "/healthz2", "/healthzz/", "/api/healthz", "/_internals", "/internal/x",
          "/x_internal/y", "/health"]


@pytest.mark.parametrize("raw", BLOCKED)
def test_every_spelling_of_a_blocked_path_is_blocked(raw: str) -> None:
    blocked = Blocklist(patterns(cfg()))
    assert blocked.match(canonical(raw, 8192).path) is not None, raw


@pytest.mark.parametrize("raw", PASSED)
def test_neighbours_of_a_blocked_path_pass(raw: str) -> None:
    blocked = Blocklist(patterns(cfg()))
    assert blocked.match(canonical(raw, 8192).path) is None, raw


def test_the_pattern_that_matched_is_named_as_configured() -> None:
    blocked = Blocklist(("/Ops/*", "/metrics", "/ops/deep/*"))
    assert blocked.match("/ops/x") == "/Ops/*"
    assert blocked.match("/ops/deep/x") == "/ops/deep/*"  # the longer prefix
    assert blocked.match("/METRICS/") == "/metrics"
    assert Blocklist().match("/healthz") is None


def test_a_list_that_leaves_internal_paths_open_is_named() -> None:
    assert exposed(cfg()) == []
    assert exposed(cfg({"blocked_paths": ["/admin/*"]})) == [
        "the session-export hook (/_internal/sessions/x)", "health.path (/healthz)"]
    assert exposed(cfg({"blocked_paths": ["/_internal/*"]})) == ["health.path (/healthz)"]
