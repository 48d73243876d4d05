"""Untrusted input -> typed values, or an ``ApiError`` (a 4xx, never a 500).

JSON is parsed strictly: ``true`` is not an int, ``1.0`` is not an int, and a
number too big for the database names nothing rather than crashing a query.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from legacy_shop.db import INT32_MAX
from legacy_shop.errors import ApiError

MIN_QTY, MAX_QTY = 1, 100
_PATH_INT = re.compile(r"-?[0-9]{1,30}")
_IDEMPOTENCY_KEY = re.compile(r"[\x20-\x7e]{1,255}")


def parse_json(raw: bytes) -> Any:
    """Any JSON value; ``bad_request`` for bytes that are not UTF-8 JSON."""
    try:
        return json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise ApiError("bad_request") from exc


def parse_object(raw: bytes) -> dict[str, Any]:
    value = parse_json(raw)
    if not isinstance(value, dict):
        raise ApiError("bad_request")
    return value


async def read_form(request: web.Request) -> dict[str, str]:
    """A posted form's text fields; ``bad_request`` for a body that is not a form."""
    try:
        form = await request.post()
    # A missing boundary or bad bytes (ValueError), an unknown charset
    # (LookupError), a malformed part header (HttpProcessingError).
    except (ValueError, LookupError, HttpProcessingError) as exc:
        raise ApiError("bad_request") from exc
    return {k: v for k, v in form.items() if isinstance(v, str)}


def strict_int(value: Any) -> int | None:
    """``value`` if it is a JSON integer (not a bool, not a float), else ``None``."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_credentials(body: dict[str, Any]) -> tuple[str, str]:
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        raise ApiError("bad_request")
    return username, password


def parse_cart_item(body: dict[str, Any]) -> tuple[int, int]:
    """``(product_id, qty)``; ``qty`` must be in 1..100. Does not check the product exists."""
    product_id, qty = strict_int(body.get("product_id")), strict_int(body.get("qty"))
    if product_id is None or qty is None or not MIN_QTY <= qty <= MAX_QTY:
        raise ApiError("bad_request")
    return product_id, qty


def parse_path_id(text: str) -> int:
    """An integer path segment, else ``not_found`` (``/api/products/abc`` names nothing)."""
    if not _PATH_INT.fullmatch(text):
        raise ApiError("not_found")
    return int(text)


def storable_id(value: int) -> bool:
    """Could a row have this id? Ids outside ``INTEGER`` are answered without a query."""
    return 1 <= value <= INT32_MAX


def valid_idempotency_key(key: str) -> bool:
    return _IDEMPOTENCY_KEY.fullmatch(key) is not None


def request_hash(raw: bytes) -> str:
    """sha256 of the canonical body (docs/protocol.md section 2); empty body -> hash of ""."""
    if not raw:
        return hashlib.sha256(b"").hexdigest()
    parsed = parse_json(raw)
    try:
        canonical = json.dumps(parsed, sort_keys=True, separators=(",", ":"))
    except (ValueError, RecursionError) as exc:
        raise ApiError("bad_request") from exc
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
