"""gateway.settings: a broken config.yaml is refused with the key path of each problem."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from flags.model import Stage
from gateway.settings import Config, ConfigError, load, parse

ROOT = Path(__file__).resolve().parents[2]
DEMO = yaml.safe_load((ROOT / "config.yaml").read_text())

Mutation = Callable[[dict[str, Any]], None]


def broken(mutate: Mutation) -> str:
    data = copy.deepcopy(DEMO)
    mutate(data)
    with pytest.raises(ConfigError) as info:
        parse(data, "config.yaml")
    return str(info.value)


def accepted(mutate: Mutation) -> Config:
    data = copy.deepcopy(DEMO)
    mutate(data)
    return parse(data, "config.yaml")


def route(i: int, **changes: Any) -> Mutation:
    return lambda d: d["routes"][i].update(changes)


# ---------------------------------------------------------------- the demo file


def test_demo_config_parses_into_typed_frozen_objects() -> None:
    cfg = load(ROOT / "config.yaml")
    assert [r.name for r in cfg.routes] == ["catalog", "auth", "cart", "checkout", "orders",
                                           "default"]
    assert cfg.gateway.listen.port == 8080
    assert cfg.gateway.admin_listen.port == 8081
    assert [n.id for n in cfg.legacy.nodes] == ["a", "b"]
    assert [n.id for n in cfg.new.instances] == ["n1", "n2"]
    assert all(r.stage is Stage.LEGACY for r in cfg.routes)
    default = cfg.routes[-1]
    assert default.legacy_only and default.paths == ("/*",)
    checkout = cfg.routes[3]
    assert checkout.methods == ("POST",)
    assert checkout.fallback.shared_idempotency_store is True  # docs/protocol.md section 2
    assert not any(r.fallback.shared_idempotency_store for r in cfg.routes if r is not checkout)
    assert checkout.breaker.failures > 0 and checkout.breaker.cooldown_ms > 0
    with pytest.raises(ValidationError, match="frozen"):
        cfg.gateway.listen.port = 1  # type: ignore[misc]


def test_a_valid_canary_is_accepted() -> None:
    # cart (2) and checkout (3) are one group in the demo: they move together
    def both(d: dict[str, Any]) -> None:
        route(2, stage="canary", percent=30)(d)
        route(3, stage="canary", percent=30)(d)

    cfg = accepted(both)
    assert cfg.routes[2].stage is Stage.CANARY and cfg.routes[2].percent == 30


# ---------------------------------------------------------------- key paths


@pytest.mark.parametrize(
    ("mutate", "key_path", "hint"),
    [
        (route(2, breaker={"failures": 0}), "routes[2].breaker.failures", "greater than 0"),
        (route(1, breaker={"cooldown_ms": -5}), "routes[1].breaker.cooldown_ms", "greater than"),
        (lambda d: d["gateway"]["listen"].update(port=70000), "gateway.listen.port", "65535"),
        (lambda d: d["gateway"]["listen"].update(port="eighty"), "gateway.listen.port",
         "integer"),
        (lambda d: d["gateway"].update(timeouts={"connect_ms": 0}),
         "gateway.timeouts.connect_ms", "greater than 0"),
        (route(0, bogus=1), "routes[0].bogus", "unknown key"),
        (lambda d: d["gateway"].update(listne={"port": 1}), "gateway.listne", "unknown key"),
        (lambda d: d.update(rotues=[]), "rotues", "unknown key"),
        (route(3, fallback={"on": ["connect", "boom"]}), "routes[3].fallback.on[1]", "connect"),
        (route(3, fallback={"shared_idempotency_store": "yes"}),
         "routes[3].fallback.shared_idempotency_store", "boolean"),
        (route(3, fallback={"shared_idempotency_store": 1}),
         "routes[3].fallback.shared_idempotency_store", "boolean"),
        (route(2, fallback={"shared_idempotency_stor": True}),
         "routes[2].fallback.shared_idempotency_stor", "unknown key"),
        (route(3, fallback={"unsafe_with_idempotency_key": True}),
         "routes[3].fallback.unsafe_with_idempotency_key", "shared_idempotency_store: true"),
        (route(0, stage="beta"), "routes[0].stage", "canary"),
        (route(0, stage="canary", percent=101), "routes[0].percent", "100"),
        (route(0, stage="canary", percent=-1), "routes[0].percent", "0"),
        (route(5, stage="new"), "routes[5]", "legacy_only"),
        (route(5, stage="canary", percent=10), "routes[5]", "legacy_only"),
        (route(0, percent=30), "routes[0]", "canary"),
        (route(2, stage="shadow", percent=50), "routes[2]", "canary"),
        (route(0, paths=["api/products"]), "routes[0].paths", "api/products"),
        (route(0, paths=["/api/*/products"]), "routes[0].paths", "/api/*/products"),
        (route(0, paths=["/api/products*"]), "routes[0].paths", "/api/products*"),
        (route(0, paths=["/api//products"]), "routes[0].paths", "//"),
        (route(0, paths=["/api/../admin"]), "routes[0].paths", "/api/../admin"),
        (route(0, paths=["/api/%2e%2e/admin"]), "routes[0].paths", "%2e"),
        (route(0, paths=[]), "routes[0].paths", "at least 1"),
        (route(0, methods=["GET", "FETCH"]), "routes[0].methods", "FETCH"),
        (route(0, methods=["get"]), "routes[0].methods", "get"),
        (route(1, name="Auth"), "routes[1].name", "pattern"),
        (lambda d: d["legacy"]["nodes"][0].update(url="ftp://x"), "legacy.nodes[0].url",
         "pattern"),
        (lambda d: d["legacy"]["nodes"].append({"id": "a", "url": "http://127.0.0.1:9"}),
         "legacy", "duplicate id: a"),
        (lambda d: d.pop("legacy"), "legacy", "required"),
        (lambda d: d.update(routes=[]), "routes", "at least 1"),
    ],
)
def test_each_error_names_its_key_path(mutate: Mutation, key_path: str, hint: str) -> None:
    message = broken(mutate)
    assert message.startswith("config.yaml:")
    lines = message.splitlines()[1:]
    hit = [ln.strip() for ln in lines if ln.strip().startswith(f"{key_path}:")]
    assert hit, f"no line starts with {key_path!r}:\n{message}"
    assert hint in hit[0], message


def test_a_keyed_write_falls_back_only_where_the_config_says_the_store_is_shared() -> None:
    def unsaid(d: dict[str, Any]) -> None:
        del d["routes"][3]["fallback"]

    assert accepted(unsaid).routes[3].fallback.shared_idempotency_store is False
    said = accepted(route(3, fallback={"shared_idempotency_store": True}))
    assert said.routes[3].fallback.shared_idempotency_store is True
    yaml_false = yaml.safe_load("fallback: {shared_idempotency_store: no}")["fallback"]
    assert accepted(route(3, fallback=yaml_false)).routes[3].fallback \
        .shared_idempotency_store is False


def test_every_problem_is_listed_not_just_the_first() -> None:
    def two(d: dict[str, Any]) -> None:
        d["gateway"]["listen"]["port"] = -1
        d["routes"][2]["breaker"] = {"failures": 0}

    message = broken(two)
    assert "gateway.listen.port:" in message
    assert "routes[2].breaker.failures:" in message


def test_duplicate_route_names_are_refused() -> None:
    message = broken(route(1, name="catalog"))
    assert "duplicate" in message and "catalog" in message


def test_two_routes_claiming_one_path_are_refused() -> None:
    message = broken(route(1, paths=["/login", "/api/cart/*"]))
    assert "'/api/cart/*'" in message  # names the contested path


def test_an_exact_path_and_a_prefix_over_it_may_belong_to_two_routes() -> None:
    cfg = accepted(route(1, paths=["/login", "/logout", "/api/cart/summary"]))
    assert cfg.routes[1].paths[-1] == "/api/cart/summary"


@pytest.mark.parametrize(
    "mutate",
    [route(1, name="catalog"), route(1, paths=["/login", "/api/cart"])],
    ids=["duplicate-name", "duplicate-path"],
)
def test_route_conflicts_name_the_offending_route_entry(mutate: Mutation) -> None:
    message = broken(mutate)
    assert re.search(r"^\s*routes\[[12]\]", message, re.MULTILINE), message
    assert "(top level)" not in message


@pytest.mark.parametrize("pattern", ["/api/./products", "/api/products/.", "/api/products;v=1",
                                     "/api/products?x", "/api/products#top", "/api\\products",
                                     "/api/pro ducts", "/api/\tproducts"])
def test_a_pattern_that_can_never_match_is_refused(pattern: str) -> None:
    message = broken(route(0, paths=[pattern]))
    assert "routes[0].paths" in message


@pytest.mark.parametrize(
    ("mutate", "key_path"),
    [
        (route(2, stage="canary", percent=True), "routes[2].percent"),
        (lambda d: d["gateway"]["listen"].update(port=True), "gateway.listen.port"),
        (route(2, breaker={"failures": True}), "routes[2].breaker.failures"),
    ],
)
def test_a_yaml_boolean_is_not_a_number(mutate: Mutation, key_path: str) -> None:
    assert f"{key_path}:" in broken(mutate)


# ---------------------------------------------------------------- load()


def test_load_of_a_missing_file_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load(missing)
    assert str(missing) in str(info.value)
    assert "cannot read" in str(info.value)


def test_load_of_invalid_yaml_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("gateway:\n  listen: {port: 8080\nroutes: [\n")
    with pytest.raises(ConfigError) as info:
        load(path)
    message = str(info.value)
    assert message.startswith(f"{path}:")
    assert "not valid YAML" in message
    assert "line" in message


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just a string\n", "42\n"])
def test_load_of_a_document_that_is_not_a_mapping(tmp_path: Path, text: str) -> None:
    path = tmp_path / "odd.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load(path)
    assert "top level must be a mapping" in str(info.value)


def test_load_names_the_file_in_validation_errors(tmp_path: Path) -> None:
    data = copy.deepcopy(DEMO)
    data["routes"][0]["bogus"] = 1
    path = tmp_path / "gw.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        load(path)
    assert str(info.value).startswith(f"{path}: invalid configuration")
    assert "routes[0].bogus: unknown key" in str(info.value)


# ---------------------------------------------------------------- the front door (issue 12)


def gw(**changes: Any) -> Mutation:
    return lambda d: d["gateway"].update(changes)


@pytest.mark.parametrize(("mutate", "line"), [
    (gw(public_hosts=["shop.example foo"]),
     "gateway.public_hosts[0]: 'shop.example foo': not a host name"),
    (gw(public_hosts=["shop.example:8080"]),
     "gateway.public_hosts[0]: 'shop.example:8080': give the name without a port"),
    (gw(public_hosts=["ok.example", "*.10.0.0.1"]),
     "gateway.public_hosts[1]: '*.10.0.0.1': a wildcard covers names, not addresses"),
    (gw(public_hosts=["shop.example"], default_host="other.example"),
     "gateway.default_host: 'other.example' is not covered by public_hosts"),
    (gw(default_host="user@shop.example"),
     "gateway.default_host: 'user@shop.example': expected a host name or address"),
    (gw(admin_hosts=["a,b"]), "gateway.admin_hosts[0]: 'a,b': not a host name"),
    (gw(blocked_paths=["/healthz", "internal/*"]),
     "gateway.blocked_paths[1]: 'internal/*': a path is '/exact' or '/prefix/*'"),
    (gw(blocked_paths=["/%5Finternal/*"]), "gateway.blocked_paths[0]: '/%5Finternal/*'"),
    (gw(blocked_paths="/healthz"), "gateway.blocked_paths: Input should be a valid tuple"),
])
def test_host_and_blocked_path_errors_name_the_key(mutate: Mutation, line: str) -> None:
    assert line in broken(mutate)


def test_host_and_blocked_path_defaults_and_spellings() -> None:
    cfg = accepted(lambda d: None)
    assert cfg.gateway.public_hosts == () and cfg.gateway.default_host is None
    assert cfg.gateway.admin_hosts == ("localhost",)
    assert cfg.gateway.blocked_paths is None  # the hook's namespace and health.path
    cfg = accepted(gw(public_hosts=["Shop.Example", "*.Shop.Example"],
                      default_host="WWW.shop.example:8443", blocked_paths=[]))
    assert cfg.gateway.public_hosts == ("shop.example", "*.shop.example")
    assert cfg.gateway.default_host == "www.shop.example:8443"
    assert cfg.gateway.blocked_paths == ()
