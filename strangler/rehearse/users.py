"""Virtual users: shop through the gateway and check the shop against their own model.

Each user logs in as one of the plan's accounts (its own session), then
picks journeys by weight with a think time between them. Every answer is
held against the user's model (``model.py``); a request without an answer
leaves its operation pending until a later read resolves it, and a checkout
without an answer is retried with the same ``Idempotency-Key``. When the
runner asks (after every stage, and at the end), each user reads
``/api/me``, ``/api/cart`` and ``/api/orders`` and reports any difference.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

from strangler.rehearse.client import Reply, ShopClient
from strangler.rehearse.model import (
    CartModel,
    CartOp,
    PendingCheckout,
    PlacedOrder,
    cart_lines,
    order_lines,
    orders_problems,
    show,
)

CHECKS = ("session_continuity", "cart_integrity", "orders_integrity")


@dataclass(frozen=True, slots=True)
class Finding:
    check: str
    user: int
    username: str
    stage: str
    t: float
    expected: str
    got: str

    def text(self) -> str:
        return (f"user {self.user} ({self.username}), stage '{self.stage}', {self.t:.1f} s: "
                f"expected {self.expected}; got {self.got}")


@dataclass
class Shared:
    """What every user reads: the stage, the run's clock, stop and check requests."""

    run_id: str
    password: str
    clock: object
    stage: str = ""
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    check_epoch: int = 0
    checked: dict[int, int] = field(default_factory=dict)
    """user -> the last check epoch it completed."""
    progress: asyncio.Event = field(default_factory=asyncio.Event)
    """Set whenever a user completes a check."""
    findings: list[Finding] = field(default_factory=list)
    unverified: list[tuple[str, str]] = field(default_factory=list)
    """(stage, what): checks that got no answer, however often they were retried."""
    products: list[int] = field(default_factory=lambda: list(range(1, 13)))

    def now(self) -> float:
        return float(self.clock())  # type: ignore[operator]

    def request_check(self) -> int:
        self.check_epoch += 1
        self.poke()
        return self.check_epoch

    def poke(self) -> None:
        """Wake every thinking user (a check or stop was requested)."""
        old, self.wake = self.wake, asyncio.Event()
        old.set()


class VirtualUser:
    def __init__(self, n: int, username: str, shop: ShopClient, shared: Shared,
                 weights: dict[str, float], think_ms: tuple[float, float]) -> None:
        self.n, self.username, self.shop, self.shared = n, username, shop, shared
        self.rng = random.Random(f"{shared.run_id}-{n}")
        self.journeys, self.weights = list(weights), list(weights.values())
        self.think_s = (think_ms[0] / 1000, think_ms[1] / 1000)
        self.logged_in: bool | None = False
        """None: a login or logout got no answer; the next /api/me tells."""
        self.cart = CartModel()
        self.orders: list[PlacedOrder] = []
        self.pending: PendingCheckout | None = None
        self.keys_used: list[str] = []
        self.unanswered: list[str] = []
        """Keys of checkouts whose answer never came (the orders table will tell)."""
        self.started = False
        self._checkouts = 0

    # ------------------------------------------------------------ bookkeeping
    def find(self, check: str, expected: str, got: str) -> None:
        self.shared.findings.append(Finding(check, self.n, self.username, self.shared.stage,
                                            round(self.shared.now(), 2), expected, got))

    def _logged_out(self, reply: Reply, what: str) -> bool:
        """A 401: a finding if the user knew itself logged in; it logs in again next."""
        if reply.status != 401:
            return False
        if self.logged_in is True:
            self.find("session_continuity", f"logged in as {self.username}",
                      f"401 on {what}")
        self.logged_in, self.cart = False, CartModel()
        return True

    def _unexpected(self, check: str, reply: Reply, what: str) -> None:
        self.find(check, f"{what} to succeed", f"{reply.status} {str(reply.body)[:120]}")

    # ------------------------------------------------------------ the loop
    async def run(self, start_delay: float) -> None:
        try:
            await asyncio.wait_for(self.shared.stop.wait(), start_delay)
            return
        except TimeoutError:
            pass
        self.started = True
        while not self.shared.stop.is_set():
            if self.shared.checked.get(self.n, 0) < self.shared.check_epoch:
                epoch = self.shared.check_epoch
                await self.check()
                self.shared.checked[self.n] = epoch
                self.shared.progress.set()
                continue
            await self.step()
            await self._pause(self.rng.uniform(*self.think_s))

    async def _pause(self, seconds: float) -> bool:
        """Think; True when the run is stopping. A check request cuts the pause short."""
        wake = self.shared.wake
        try:
            await asyncio.wait_for(wake.wait(), seconds)
        except TimeoutError:
            pass
        return self.shared.stop.is_set()

    async def step(self) -> None:
        if not await self.ensure_login():
            return
        if self.pending is not None:
            await self.retry_checkout()
            return
        journey = self.rng.choices(self.journeys, self.weights)[0]
        if journey in ("add_to_cart", "remove_from_cart", "checkout", "relogin") \
                and not self.cart.certain and not await self.view_cart():
            journey = "browse"  # the cart is not known yet: change nothing until it is
        await getattr(self, journey)()

    async def ensure_login(self) -> bool:
        if self.logged_in is None:
            me = await self.shop.call("GET", "/api/me")
            if me.status == 200:
                self.logged_in = True
            elif me.status == 401:
                self.logged_in, self.cart = False, CartModel()
            else:
                return False
        if self.logged_in:
            return True
        self.logged_in = None
        reply = await self.shop.login(self.username, self.shared.password)
        if reply.status == 200:
            self.logged_in, self.cart = True, CartModel()
        elif reply.answered:
            self.logged_in = False
            self._unexpected("session_continuity", reply, f"login as {self.username}")
        return self.logged_in is True

    # ------------------------------------------------------------ journeys
    async def browse(self) -> None:
        listing = await self.shop.call("GET", "/api/products")
        if listing.status == 200 and isinstance(listing.body, dict):
            ids = [p.get("id") for p in listing.body.get("products", [])]
            self.shared.products = [i for i in ids if isinstance(i, int)] or self.shared.products
        await self.shop.call("GET", f"/api/products/{self.rng.choice(self.shared.products)}")

    async def view_cart(self) -> bool:
        """Read the cart and hold it against the model; True once the model is certain."""
        reply = await self.shop.call("GET", "/api/cart")
        if self._logged_out(reply, "GET /api/cart"):
            return False
        if reply.status != 200:
            if reply.answered:
                self._unexpected("cart_integrity", reply, "GET /api/cart")
            return False
        self._reconcile(reply, "GET /api/cart")
        return True

    def _reconcile(self, reply: Reply, what: str) -> None:
        observed = cart_lines(reply.body)
        expected = self.cart.expected_text()
        if observed is None:
            self._unexpected("cart_integrity", reply, what)
        elif not self.cart.reconcile(observed):
            self.find("cart_integrity", f"cart {expected}", f"{show(observed)} ({what})")

    async def _change_cart(self, op: CartOp, method: str, path: str,
                           body: object = None) -> None:
        self.cart.unknown(op)
        reply = await self.shop.call(method, path, body)
        if self._logged_out(reply, f"{method} {path}"):
            return
        if reply.status == 200:
            self.cart.confirm(op)
            self._reconcile(reply, f"answer to {op}")
        elif reply.answered:
            if op in self.cart.pending:
                self.cart.pending.remove(op)
            self._unexpected("cart_integrity", reply, f"{method} {path}")
        else:
            await self.view_cart()  # no answer: did it happen? the cart will tell

    async def add_to_cart(self) -> None:
        pid, qty = self.rng.choice(self.shared.products), self.rng.randint(1, 3)
        await self._change_cart(CartOp("add", pid, qty), "POST", "/api/cart/items",
                                {"product_id": pid, "qty": qty})

    async def remove_from_cart(self) -> None:
        pid = self.rng.choice(sorted(self.cart.lines) or self.shared.products)
        await self._change_cart(CartOp("remove", pid), "DELETE", f"/api/cart/items/{pid}")

    async def checkout(self) -> None:
        if not self.cart.lines:
            await self.add_to_cart()
            if not self.cart.certain or not self.cart.lines or self.logged_in is not True:
                return
        self._checkouts += 1
        key = f"rh-{self.shared.run_id}-u{self.n}-{self._checkouts}"
        self.keys_used.append(key)
        self.pending = PendingCheckout(key, dict(self.cart.lines), self.shared.stage)
        self.cart.unknown(CartOp("checkout", took=tuple(sorted(self.cart.lines.items()))))
        await self.retry_checkout()

    async def retry_checkout(self) -> None:
        """Send (or send again) the pending checkout with its key."""
        pending = self.pending
        assert pending is not None
        pending.attempts += 1
        reply = await self.shop.call("POST", "/api/checkout",
                                     headers={"Idempotency-Key": pending.key})
        if self._logged_out(reply, "POST /api/checkout"):
            self.unanswered.append(pending.key)  # the session is gone; the table will tell
            self.pending = None
            return
        if reply.status in (200, 201):
            self._placed(pending, reply)
        elif reply.answered:
            self.pending = None
            self.cart.pending.clear()
            self._unexpected("cart_integrity" if reply.status == 400 else "orders_integrity",
                             reply, f"checkout with key {pending.key} of cart "
                             f"{show(pending.items)}")

    def _placed(self, pending: PendingCheckout, reply: Reply) -> None:
        order = reply.body.get("order") if isinstance(reply.body, dict) else None
        lines = order_lines(order)
        if order is None or lines is None:
            self._unexpected("orders_integrity", reply, f"checkout {pending.key}")
            return
        self.pending = None
        if lines != pending.items:
            self.find("orders_integrity", f"order of cart {show(pending.items)}",
                      f"order #{order.get('id')} with {show(lines)}")
        self.orders.append(PlacedOrder(int(order["id"]), pending.key, lines,
                                       str(order.get("total")), pending.stage))
        op = self.cart.pending[0] if self.cart.pending else None
        if op is not None:
            self.cart.confirm(op, CartOp("checkout", took=tuple(sorted(lines.items()))))

    async def list_orders(self) -> None:
        reply = await self.shop.call("GET", "/api/orders")
        if self._logged_out(reply, "GET /api/orders") or not reply.answered:
            return
        for problem in orders_problems(self.orders, reply.body):
            self.find("orders_integrity", "every order placed", problem)

    async def relogin(self) -> None:
        self.logged_in = None
        reply = await self.shop.call("POST", "/logout")
        if reply.status == 200:
            self.logged_in, self.cart = False, CartModel()
        await self.ensure_login()

    # ------------------------------------------------------------ checks
    async def check(self, attempts: int = 4) -> bool:
        """/api/me, /api/cart, /api/orders against the model; False if it could not be done."""
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(0.25 * attempt)
            if await self._check_once():
                return True
        self.shared.unverified.append((self.shared.stage, f"user {self.n} ({self.username}), "
                                       f"stage '{self.shared.stage}': no answer to its checks"))
        return False

    async def _check_once(self) -> bool:
        if self.pending is not None:
            await self.retry_checkout()
            if self.pending is not None:
                return False
        if self.logged_in is not True:
            return await self.ensure_login()  # nothing of its session left to check
        me = await self.shop.call("GET", "/api/me")
        if self._logged_out(me, "GET /api/me"):
            return True
        if me.status != 200:
            return False
        user = me.body.get("user") if isinstance(me.body, dict) else None
        if not isinstance(user, dict) or user.get("username") != self.username:
            self.find("session_continuity", f"GET /api/me as {self.username}", str(me.body)[:120])
        if not await self.view_cart() and self.logged_in:
            return False  # no answer about the cart (a 401 was recorded and is final)
        reply = await self.shop.call("GET", "/api/orders")
        if reply.status != 200:
            return self._logged_out(reply, "GET /api/orders")
        for problem in orders_problems(self.orders, reply.body):
            self.find("orders_integrity", "every order placed", problem)
        return True
