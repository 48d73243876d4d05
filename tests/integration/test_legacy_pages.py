"""The monolith's HTML page and its form endpoints."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from legacy_shop.app import create_app
from legacy_shop.settings import Settings
from legacy_shop.testing import log_in
from tests.support.checks import expect_response

Client = TestClient[Any, Any]


@pytest.fixture
async def shop(aiohttp_client: Any, database_url: str) -> Client:
    client: Client = await aiohttp_client(create_app(Settings(database_url=database_url)))
    return client


def _form(page: str, action: str, **fields: str) -> dict[str, str]:
    form = page.split(f'action="{action}"', 1)[1].split("</form>", 1)[0]
    return {**dict(re.findall(r'type="hidden" name="([a-z_]+)" value="([^"]*)"', form)),
            **fields}


async def _page(client: Client, path: str = "/") -> str:
    resp = await client.get(path)
    assert resp.status == 200 and resp.content_type == "text/html"
    return await resp.text()


async def test_anonymous_page(shop: Client) -> None:
    page = await _page(shop)
    assert 'action="/login"' in page and "Darjeeling First Flush" in page and "12.50" in page
    assert "Your cart" not in page and "/ui/cart/add" not in page


async def test_shopping_through_the_forms(shop: Client) -> None:
    resp = await shop.post("/login", data={"username": "alice", "password": "wonderland"},
                           allow_redirects=False)
    assert resp.status == 303
    page = await _page(shop)
    assert "Logged in as <strong>alice</strong>" in page and "Your cart is empty." in page
    resp = await shop.post("/ui/cart/add", data=_form(page, "/ui/cart/add", qty="2"),
                           allow_redirects=False)
    assert (resp.status, resp.headers["Location"]) == (303, "/")
    cart = await (await shop.get("/api/cart")).json()
    assert [(i["product_id"], i["qty"]) for i in cart["items"]] == [(1, 2)]
    page = await _page(shop)
    assert "25.00" in page  # the line total
    resp = await shop.post("/ui/checkout", data=_form(page, "/ui/checkout"),
                           allow_redirects=False)
    location = resp.headers["Location"]
    assert resp.status == 303 and location.startswith("/?placed=")
    page = await _page(shop, location)
    order_id = location.split("=")[1]
    assert f"Order #{order_id} is placed." in page and f"<li>Order #{order_id} on" in page
    resp = await shop.post("/ui/logout", data=_form(page, "/ui/logout"), allow_redirects=False)
    assert resp.status == 303
    assert (await shop.get("/api/me")).status == 401


async def test_remove_through_the_form(shop: Client) -> None:
    await log_in(shop, "bob")
    await expect_response(await shop.post("/api/cart/items", json={"product_id": 3, "qty": 1}),
                          200, "adding product 3")
    page = await _page(shop)
    resp = await shop.post("/ui/cart/remove", data=_form(page, "/ui/cart/remove"),
                           allow_redirects=False)
    assert resp.status == 303
    assert (await (await shop.get("/api/cart")).json())["items"] == []


@pytest.mark.parametrize("fields", [{"csrf": "forged"}, {"csrf": ""}, {"qty": "0"},
                                    {"qty": "abc"}, {"qty": "101"}, {"product_id": "99"}])
async def test_bad_forms_change_nothing(shop: Client, fields: dict[str, str]) -> None:
    await log_in(shop, "carol")
    page = await _page(shop)
    resp = await shop.post("/ui/cart/add", data=_form(page, "/ui/cart/add", **fields),
                           allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/?error=")
    assert (await (await shop.get("/api/cart")).json())["items"] == []
    assert "class=\"flash\"" in await _page(shop, resp.headers["Location"])


async def test_forms_without_a_session_ask_to_log_in(shop: Client) -> None:
    resp = await shop.post("/ui/cart/add", data={"product_id": "1", "qty": "1", "csrf": "x"},
                           allow_redirects=False)
    assert (resp.status, resp.headers["Location"]) == (303, "/?error=expired")


async def test_page_escapes_what_it_shows(shop: Client) -> None:
    page = await _page(shop, "/?error=<script>alert(1)</script>")
    assert "<script>" not in page


BROKEN_FORMS = [
    ("multipart/form-data", b"x=1"),
    ("multipart/form-data; boundary=zz", b"garbage"),
    ("multipart/form-data; boundary=zz", b"--zz\r\nX: y\r\n\r\nx"),
    ("multipart/form-data; boundary=zz", b"--zz\r\n\x00\x01: \xff\r\n\r\nx\r\n--zz--\r\n"),
    ("application/x-www-form-urlencoded", b"username=\xff\xfe&password=\xa0"),
    ("application/x-www-form-urlencoded; charset=bogus", b"username=a&password=b"),
]


@pytest.mark.parametrize(("content_type", "body"), BROKEN_FORMS)
async def test_broken_form_bodies_are_bad_requests(shop: Client, content_type: str, body: bytes
                                                   ) -> None:
    headers = {"Content-Type": content_type}
    resp = await shop.post("/login", data=body, headers=headers, allow_redirects=False)
    assert (resp.status, resp.headers["Location"]) == (303, "/?error=bad_request")
    await log_in(shop, "dave")
    for path in ("/ui/cart/add", "/ui/checkout", "/ui/logout"):
        resp = await shop.post(path, data=body, headers=headers, allow_redirects=False)
        assert (resp.status, resp.headers["Location"]) == (303, "/?error=bad_request")
    assert (await shop.get("/api/me")).status == 200
