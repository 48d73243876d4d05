"""Request parsing: malformed input becomes a 4xx ``ApiError``, never a 500.

``bool`` is a subclass of ``int`` in Python; the shop API does not take
``true`` for a number, so every integer check excludes it explicitly.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, TypeGuard

from .db import MAX_DB_ID
from .errors import ApiError

MIN_QTY, MAX_QTY = 1, 100
# The monolith's rule: an optional minus and ASCII digits. '-3' is an integer that
# names no row (a 404 for a product, a no-op for a cart line); 'abc' is a 404.
_PATH_ID = re.compile(r"-?[0-9]{1,30}")
_IDEMPOTENCY_KEY = re.compile(r"[\x20-\x7e]{1,255}")


@dataclass(frozen=True, slots=True)
class CartItem:
    product_id: int
    qty: int


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str
    password: str


def is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def path_id(raw: str) -> int:
    """An integer path segment, else 404 (``int()`` would take ' 7', '+7', '1_0'...)."""
    if _PATH_ID.fullmatch(raw) is None:
        raise ApiError("not_found")
    return int(raw)


def fits_db_id(value: int) -> bool:
    """Whether ``value`` can be a row id; anything else must not reach an INTEGER column."""
    return 1 <= value <= MAX_DB_ID


def parse_json(raw: bytes) -> Any:
    """Any JSON value in UTF-8; 400 ``bad_request`` for anything else."""
    try:
        # Decode ourselves: json.loads(bytes) would also guess UTF-16/32 and a BOM.
        return json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise ApiError("bad_request") from exc


def json_object(raw: bytes) -> dict[str, Any]:
    value = parse_json(raw)
    if not isinstance(value, dict):
        raise ApiError("bad_request")
    return value


def cart_item(body: dict[str, Any]) -> CartItem:
    """``{"product_id": int, "qty": int 1..100}``; extra keys are ignored."""
    pid, qty = body.get("product_id"), body.get("qty")
    if is_int(pid) and is_int(qty) and MIN_QTY <= qty <= MAX_QTY:
        return CartItem(pid, qty)
    raise ApiError("bad_request")


def credentials(body: dict[str, Any]) -> Credentials:
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        raise ApiError("bad_request")
    return Credentials(username, password)


def idempotency_key(raw: str | None) -> str | None:
    """The ``Idempotency-Key`` header: absent, or 1-255 printable ASCII characters."""
    if raw is None:
        return None
    if _IDEMPOTENCY_KEY.fullmatch(raw) is None:
        raise ApiError("invalid_idempotency_key")
    return raw


def request_hash(raw: bytes) -> str:
    """sha256 of the canonical body (docs/protocol.md section 2); an empty body hashes ''.

    Both backends must compute the same hash for the same request, or a key used on
    one and retried on the other would be refused as reused: only zero bytes is "no
    body" (whitespace is malformed JSON), exactly as in the monolith.
    """
    canonical = ""
    if raw:
        canonical = json.dumps(parse_json(raw), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
