"""A shop cart model for the stress tests: what one shopper believes its cart holds.

A request that got no answer (5xx, timeout, reset) may or may not have done
its work. Such an operation is kept *pending*: the next cart the user reads
is accepted if it equals the model with any subset of the pending operations
applied, in order; then the model adopts it. Anything else is an integrity
failure -- the shop lost or invented a change. So a correct gateway yields
no failures however many requests fail, and a broken one is caught.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import product
from typing import Any, Literal

Lines = dict[int, int]
"""product id -> quantity (lines with qty 0 are left out)."""

MAX_PENDING = 8


@dataclass(frozen=True, slots=True)
class CartOp:
    kind: Literal["add", "remove", "checkout", "logout"]
    product_id: int = 0
    qty: int = 0
    took: tuple[tuple[int, int], ...] = ()
    """checkout: the lines the order takes."""

    def apply(self, lines: Lines) -> Lines:
        out = dict(lines)
        if self.kind == "add":
            out[self.product_id] = out.get(self.product_id, 0) + self.qty
        elif self.kind == "remove":
            out.pop(self.product_id, None)
        elif self.kind == "checkout":
            for pid, qty in self.took:
                left = out.get(pid, 0) - qty
                if left > 0:
                    out[pid] = left
                else:
                    out.pop(pid, None)
        else:
            out.clear()
        return out

    def __str__(self) -> str:
        if self.kind == "add":
            return f"add {self.product_id}x{self.qty}"
        if self.kind == "remove":
            return f"remove {self.product_id}"
        return self.kind


@dataclass
class CartModel:
    lines: Lines = field(default_factory=dict)
    pending: list[CartOp] = field(default_factory=list)

    @property
    def certain(self) -> bool:
        return not self.pending

    def unknown(self, op: CartOp) -> None:
        """Sent, answer not (yet) known. Called *before* sending: a user stopped
        mid-request leaves the operation pending, never silently forgotten."""
        self.pending.append(op)
        del self.pending[:-MAX_PENDING]

    def confirm(self, op: CartOp, took: CartOp | None = None) -> None:
        """The shop confirmed ``op`` (``took``: what it really did, e.g. an order's lines)."""
        if self.pending == [op]:
            self.pending.clear()
            self.lines = (took or op).apply(self.lines)

    def outcomes(self) -> list[Lines]:
        """Every cart the shop may hold: each pending operation applied or not, in order."""
        seen: list[Lines] = []
        for mask in product((False, True), repeat=len(self.pending)):
            lines = self.lines
            for applied, op in zip(mask, self.pending, strict=True):
                if applied:
                    lines = op.apply(lines)
            if lines not in seen:
                seen.append(lines)
        return seen

    def reconcile(self, observed: Lines) -> bool:
        """Adopt what the shop holds; False when no outcome explains it."""
        ok = observed in self.outcomes()
        self.lines, self.pending = dict(observed), []
        return ok

    def expected_text(self) -> str:
        options = self.outcomes()
        if len(options) == 1:
            return show(options[0])
        return " or ".join(show(o) for o in options[:4]) + (" ..." if len(options) > 4 else "")


def show(lines: Lines) -> str:
    return "{" + ", ".join(f"{p}: {q}" for p, q in sorted(lines.items())) + "}"


def cart_lines(body: Any) -> Lines | None:
    """product id -> qty of a cart body; None when it is not a cart."""
    try:
        return {int(i["product_id"]): int(i["qty"]) for i in body["items"] if int(i["qty"]) > 0}
    except (KeyError, TypeError, ValueError):
        return None
