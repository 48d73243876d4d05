"""HTML for the page at ``/``: plain string templates, every value through ``escape``.

The shapes rendered here are the API's own dicts (``render``), so the page
and the API can never disagree about a price.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Any

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>The Tea Party Shop</title>
<style>
body {{ font-family: Georgia, serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; }}
header {{ display: flex; justify-content: space-between; align-items: baseline; }}
table {{ border-collapse: collapse; width: 100%; }}
td, th {{ border-bottom: 1px solid #ddd; padding: .4rem; text-align: left; }}
td.num, th.num {{ text-align: right; }}
.flash {{ background: #fff3cd; padding: .5rem 1rem; }}
form.inline {{ display: inline; }}
footer {{ color: #888; margin-top: 3rem; font-size: .8rem; }}
</style>
</head>
<body>
<header><h1>The Tea Party Shop</h1><div>{account}</div></header>
{flash}
<main>
<section><h2>Products</h2>{products}</section>
{member}
</main>
<footer>Served by node {node}.</footer>
</body>
</html>
"""

LOGIN_FORM = """<form method="post" action="/login">
<label>User <input name="username" autocomplete="username" required></label>
<label>Password <input name="password" type="password" autocomplete="current-password"
 required></label>
<button type="submit">Log in</button>
</form>"""

LOGOUT_FORM = """Logged in as <strong>{uname}</strong>
<form class="inline" method="post" action="/ui/logout">{csrf}<button>Log out</button></form>"""

CSRF_FIELD = '<input type="hidden" name="csrf" value="{token}">'

FLASH = {
    "invalid_credentials": "Unknown user or wrong password.",
    "bad_request": "That form was not filled in correctly.",
    "product_not_found": "That product is no longer sold.",
    "cart_empty": "Your cart is empty.",
    "expired": "Your session expired; please log in again.",
    "idempotency_key_reused": "That order form was already used; please try again.",
}


@dataclass(frozen=True, slots=True)
class MemberView:
    """What the page shows a logged-in user."""

    uname: str
    csrf: str
    cart: dict[str, Any]
    orders: list[dict[str, Any]]
    checkout_key: str
    """A fresh Idempotency-Key per rendering: a double-submitted form orders once."""


def page(*, node: str, products: list[dict[str, Any]], flash: str | None,
         member: MemberView | None) -> str:
    """The whole page; ``member`` is ``None`` for a visitor who is not logged in."""
    csrf = CSRF_FIELD.format(token=escape(member.csrf)) if member else ""
    account = (LOGOUT_FORM.format(uname=escape(member.uname), csrf=csrf) if member
               else LOGIN_FORM)
    return PAGE.format(
        account=account,
        flash=f'<p class="flash">{escape(flash)}</p>' if flash else "",
        products=_products(products, csrf if member else None),
        member=_member(member, csrf) if member else "",
        node=escape(node),
    )


def _products(products: list[dict[str, Any]], csrf: str | None) -> str:
    rows = []
    for p in products:
        add = ""
        if csrf is not None:
            add = (f'<form class="inline" method="post" action="/ui/cart/add">{csrf}'
                   f'<input type="hidden" name="product_id" value="{p["id"]}">'
                   '<input name="qty" type="number" min="1" max="100" value="1" size="3">'
                   "<button>Add to cart</button></form>")
        rows.append(f'<tr><td>{escape(p["name"])}</td><td>{escape(p["description"])}</td>'
                    f'<td class="num">{escape(p["price"])}</td><td>{add}</td></tr>')
    return ('<table><tr><th>Product</th><th>Description</th><th class="num">Price</th>'
            f'<th></th></tr>{"".join(rows)}</table>')


def _member(member: MemberView, csrf: str) -> str:
    return (f"<section><h2>Your cart</h2>{_cart(member, csrf)}</section>"
            f"<section><h2>Your orders</h2>{_orders(member.orders)}</section>")


def _cart(member: MemberView, csrf: str) -> str:
    cart = member.cart
    if not cart["items"]:
        return "<p>Your cart is empty.</p>"
    rows = [
        f'<tr><td>{escape(i["name"])}</td><td class="num">{i["qty"]}</td>'
        f'<td class="num">{escape(i["unit_price"])}</td>'
        f'<td class="num">{escape(i["line_total"])}</td>'
        f'<td><form class="inline" method="post" action="/ui/cart/remove">{csrf}'
        f'<input type="hidden" name="product_id" value="{i["product_id"]}">'
        "<button>Remove</button></form></td></tr>"
        for i in cart["items"]
    ]
    checkout = (f'<form method="post" action="/ui/checkout">{csrf}'
                f'<input type="hidden" name="idempotency_key" '
                f'value="{escape(member.checkout_key)}"><button>Place order</button></form>')
    return ('<table><tr><th>Product</th><th class="num">Qty</th><th class="num">Price</th>'
            f'<th class="num">Total</th><th></th></tr>{"".join(rows)}'
            f'<tr><th colspan="3">{cart["count"]} items</th>'
            f'<th class="num">{escape(cart["total"])}</th><th></th></tr></table>{checkout}')


def _orders(orders: list[dict[str, Any]]) -> str:
    if not orders:
        return "<p>No orders yet.</p>"
    items = []
    for o in orders:
        lines = ", ".join(f'{i["qty"]} x {escape(i["name"])}' for i in o["items"])
        items.append(f'<li>Order #{o["id"]} on {escape(o["created_at"])}: {lines} '
                     f'&mdash; <strong>{escape(o["total"])}</strong></li>')
    return f'<ul>{"".join(items)}</ul>'
