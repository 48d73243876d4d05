"""gateway.routing.routes: the most specific pattern wins, whatever the order in config.yaml."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from gateway.routing.routes import Match, Router
from gateway.settings import RouteSection, load

ROOT = Path(__file__).resolve().parents[2]


def section(name: str, *paths: str, methods: tuple[str, ...] | None = None,
            **extra: Any) -> RouteSection:
    return RouteSection(name=name, paths=paths, methods=methods, **extra)


def matched(router: Router, path: str, method: str = "GET") -> str | None:
    m = router.match(path, method)
    return m.route.name if m.match is Match.FULL and m.route else None


SECTIONS = [
    section("everything", "/*"),
    section("api", "/api/*"),
    section("cart", "/api/cart/*"),
    section("cart-items", "/api/cart/items/*"),
    section("cart-exact", "/api/cart"),
    section("me", "/api/me"),
]

EXPECTED = {
    "/": "everything",
    "/index.html": "everything",
    "/apix": "everything",
    "/api": "api",
    "/api/": "api",
    "/api/orders": "api",
    "/api/cartx": "api",
    "/api/cart": "cart-exact",
    "/api/cart/": "cart",
    "/api/cart/summary": "cart",
    "/api/cart/items": "cart-items",
    "/api/cart/items/12": "cart-items",
    "/api/cart/items/12/notes": "cart-items",
    "/api/me": "me",
    "/api/me/": "api",
    "/api/meta": "api",
}


@pytest.mark.parametrize("order", list(itertools.permutations(range(len(SECTIONS))))[::37])
def test_most_specific_pattern_wins_in_any_config_order(order: tuple[int, ...]) -> None:
    router = Router(tuple(SECTIONS[i] for i in order))
    assert {p: matched(router, p) for p in EXPECTED} == EXPECTED


def test_exact_beats_prefix_declared_before_or_after_it() -> None:
    prefix = section("prefix", "/api/cart/*")
    exact = section("exact", "/api/cart")
    for sections in ((prefix, exact), (exact, prefix)):
        router = Router(sections)
        assert matched(router, "/api/cart") == "exact"
        assert matched(router, "/api/cart/items") == "prefix"


def test_a_prefix_covers_its_own_base_path() -> None:
    router = Router((section("cart", "/api/cart/*"),))
    assert matched(router, "/api/cart") == "cart"
    assert matched(router, "/api/cart/") == "cart"


def test_a_prefix_is_a_whole_segment() -> None:
    router = Router((section("cart", "/api/cart/*"),))
    for path in ("/api/cartx", "/api/cart-items", "/api/car", "/api", "/"):
        assert router.match(path, "GET").match is Match.NONE, path


def test_no_route_is_none() -> None:
    router = Router((section("cart", "/api/cart"),))
    m = router.match("/api/orders", "GET")
    assert m.match is Match.NONE and m.route is None


def test_exact_paths_are_case_and_slash_sensitive() -> None:
    router = Router((section("orders", "/api/orders"),))
    assert router.match("/API/orders", "GET").match is Match.NONE
    assert router.match("/api/orders/", "GET").match is Match.NONE


def test_wrong_method_is_partial_with_the_route_for_a_405() -> None:
    router = Router((section("checkout", "/api/checkout", methods=("POST",)),
                     section("catalog", "/api/products/*", methods=("GET",))))
    m = router.match("/api/checkout", "GET")
    assert m.match is Match.PARTIAL
    assert m.route is not None and m.route.name == "checkout"
    assert m.route.methods == frozenset({"POST"})
    m = router.match("/api/products/3", "DELETE")
    assert m.match is Match.PARTIAL
    assert m.route is not None and m.route.methods == frozenset({"GET", "HEAD"})


def test_get_implies_head_but_not_the_other_way() -> None:
    router = Router((section("catalog", "/api/products", methods=("GET",)),
                     section("probe", "/probe", methods=("HEAD",))))
    assert router.match("/api/products", "HEAD").match is Match.FULL
    assert router.match("/probe", "HEAD").match is Match.FULL
    assert router.match("/probe", "GET").match is Match.PARTIAL


def test_no_methods_means_every_method() -> None:
    router = Router((section("auth", "/login"),))
    for method in ("GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"):
        assert router.match("/login", method).match is Match.FULL, method


def test_full_match_carries_the_route_settings() -> None:
    router = Router((section("cart", "/api/cart/*", legacy_only=True,
                             breaker={"failures": 3, "cooldown_ms": 500}),))
    m = router.match("/api/cart/items", "POST")
    assert m.match is Match.FULL and m.route is not None
    assert m.route.legacy_only is True
    assert m.route.breaker.failures == 3
    assert router.routes["cart"] is m.route


def test_demo_config_routes_every_shop_endpoint_where_expected() -> None:
    router = Router(load(ROOT / "config.yaml").routes)
    table = {
        ("POST", "/login"): "auth",
        ("POST", "/logout"): "auth",
        ("GET", "/api/me"): "auth",
        ("GET", "/api/products"): "catalog",
        ("HEAD", "/api/products"): "catalog",
        ("GET", "/api/products/7"): "catalog",
        ("GET", "/api/cart"): "cart",
        ("POST", "/api/cart/items"): "cart",
        ("DELETE", "/api/cart/items/7"): "cart",
        ("POST", "/api/checkout"): "checkout",
        ("GET", "/api/orders"): "orders",
        ("GET", "/"): "default",
        ("GET", "/static/app.css"): "default",
        ("POST", "/api/cartx"): "default",
    }
    assert {key: matched(router, key[1], key[0]) for key in table} == table
    assert router.match("/api/checkout", "GET").match is Match.PARTIAL
    assert router.match("/api/products", "POST").match is Match.PARTIAL
