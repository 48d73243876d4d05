"""Once per ``Idempotency-Key``: the shared idempotency store of docs/protocol.md section 2,
for any service.

In **one transaction**: look up ``(scope, key)`` (the scope is usually the user
id). Found with another request hash: 422 (``IdempotencyKeyReused``). Found with
the same hash: replay what was recorded. Not found: run the action, record its
result in the same transaction and commit. A unique violation on the key row
means a concurrent request with the same key won: roll back and replay the
winner's result.

Where the key rows live is a ``KeyTable``: ``JsonResults`` keeps a JSON body and
a status in a table of its own, ``RowIds`` the id of the row the action made
(the caller reads that row back to answer a replay); both table names are
configurable. An application whose schema already has a key table (the shop's
``idempotency_keys`` pointing at an order) adapts it with a small class of its own.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    insert,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .errors import BadRequest, IdempotencyKeyReused

R = TypeVar("R")
_KEY = re.compile(r"[\x20-\x7e]{1,255}")
HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"


class InvalidIdempotencyKey(BadRequest):
    code = "invalid_idempotency_key"
    detail = "Idempotency-Key must be 1-255 printable ASCII characters"


def idempotency_key(raw: str | None) -> str | None:
    """The header's value: absent, or 1-255 printable ASCII characters (else 400)."""
    if raw is None:
        return None
    if _KEY.fullmatch(raw) is None:
        raise InvalidIdempotencyKey()
    return raw


def request_hash(raw: bytes) -> str:
    """sha256 of the canonical body: ``json.dumps(parsed, sort_keys=True,
    separators=(",", ":"))``, the empty string for no body (zero bytes); 400 if the
    body is not JSON."""
    canonical = ""
    if raw:
        try:
            parsed = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise BadRequest() from None
        canonical = json.dumps(parsed, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Found(Generic[R]):
    """A key row: the hash it was recorded with and its result."""

    request_hash: str
    result: R
    created_at: datetime | None = None


class KeyTable(Protocol[R]):
    """Where key rows live; both calls run inside the caller's transaction."""

    async def find(self, conn: AsyncConnection, scope: Any, key: str) -> Found[R] | None: ...

    async def record(self, conn: AsyncConnection, scope: Any, key: str, digest: str,
                     result: R) -> None: ...


@dataclass(frozen=True, slots=True)
class Outcome(Generic[R]):
    result: R
    replayed: bool
    created_at: datetime | None = None
    """When a replayed result was first recorded (``None`` for a fresh one)."""


Transaction = Callable[[], AbstractAsyncContextManager[AsyncConnection]]


async def run_once(engine: AsyncEngine, table: KeyTable[R], scope: Any, key: str | None,
                   digest: str, action: Callable[[AsyncConnection], Awaitable[R]], *,
                   transaction: Transaction | None = None) -> Outcome[R]:
    """Run ``action`` once per ``(scope, key)`` (every time when ``key`` is None).
    ``transaction`` opens the write transaction (default ``engine.begin``; SQLite may
    want ``BEGIN IMMEDIATE``)."""
    begin = transaction or engine.begin
    try:
        async with begin() as conn:
            if key is not None and (found := await _replay(conn, table, scope, key, digest)):
                return found
            result = await action(conn)
            if key is not None:
                await table.record(conn, scope, key, digest, result)
            return Outcome(result, replayed=False)
    except IntegrityError:
        if key is None:
            raise
        async with engine.connect() as conn:  # the concurrent request with this key won
            found = await _replay(conn, table, scope, key, digest)
        if found is None:
            raise
        return found


async def _replay(conn: AsyncConnection, table: KeyTable[R], scope: Any, key: str,
                  digest: str) -> Outcome[R] | None:
    row = await table.find(conn, scope, key)
    if row is None:
        return None
    if row.request_hash != digest:
        raise IdempotencyKeyReused()
    return Outcome(row.result, replayed=True, created_at=row.created_at)


@dataclass(frozen=True, slots=True)
class Response:
    """A JSON answer to record and replay."""

    status: int
    body: Any


class JsonResults:
    """Key rows holding the response itself, in a table of their own::

        <name>(scope TEXT, key TEXT, request_hash TEXT, status INTEGER, body TEXT,
               created_at TIMESTAMP, PRIMARY KEY (scope, key))
    """

    def __init__(self, metadata: MetaData, name: str = "strangler_idempotency") -> None:
        self.table = Table(
            name, metadata,
            Column("scope", String(255), primary_key=True),
            Column("key", String(255), primary_key=True),
            Column("request_hash", String(64), nullable=False),
            Column("status", Integer, nullable=False),
            Column("body", Text, nullable=False),
            Column("created_at", DateTime, nullable=False),
        )

    async def find(self, conn: AsyncConnection, scope: Any,
                   key: str) -> Found[Response] | None:
        t = self.table
        row = (await conn.execute(select(t.c.request_hash, t.c.status, t.c.body, t.c.created_at)
                                  .where(t.c.scope == str(scope), t.c.key == key))).first()
        if row is None:
            return None
        return Found(row.request_hash, Response(row.status, json.loads(row.body)),
                     row.created_at)

    async def record(self, conn: AsyncConnection, scope: Any, key: str, digest: str,
                     result: Response) -> None:
        await conn.execute(insert(self.table).values(
            scope=str(scope), key=key, request_hash=digest, status=result.status,
            body=json.dumps(result.body, separators=(",", ":")),
            created_at=datetime.now(UTC).replace(tzinfo=None)))


class RowIds:
    """Key rows holding the id of the row the action made::

        <name>(scope TEXT, key TEXT, request_hash TEXT, ref BIGINT, created_at TIMESTAMP,
               PRIMARY KEY (scope, key))
    """

    def __init__(self, metadata: MetaData, name: str = "strangler_idempotency_refs") -> None:
        self.table = Table(
            name, metadata,
            Column("scope", String(255), primary_key=True),
            Column("key", String(255), primary_key=True),
            Column("request_hash", String(64), nullable=False),
            Column("ref", BigInteger, nullable=False),
            Column("created_at", DateTime, nullable=False),
        )

    async def find(self, conn: AsyncConnection, scope: Any, key: str) -> Found[int] | None:
        t = self.table
        row = (await conn.execute(select(t.c.request_hash, t.c.ref, t.c.created_at)
                                  .where(t.c.scope == str(scope), t.c.key == key))).first()
        return None if row is None else Found(row.request_hash, int(row.ref), row.created_at)

    async def record(self, conn: AsyncConnection, scope: Any, key: str, digest: str,
                     result: int) -> None:
        await conn.execute(insert(self.table).values(
            scope=str(scope), key=key, request_hash=digest, ref=result,
            created_at=datetime.now(UTC).replace(tzinfo=None)))
