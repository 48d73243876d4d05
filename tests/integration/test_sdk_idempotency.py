"""strangler_sdk.idempotency on a real SQL database: one action per key, replays, 422 on
another request, and a same-key race where the loser replays the winner's result."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from strangler_sdk.errors import BadRequest, IdempotencyKeyReused
from strangler_sdk.idempotency import (
    InvalidIdempotencyKey,
    JsonResults,
    Response,
    RowIds,
    idempotency_key,
    request_hash,
    run_once,
)

METADATA = MetaData()
KEYS = JsonResults(METADATA, name="sdk_test_keys")
REFS = RowIds(METADATA, name="sdk_test_refs")
bookings = Table("sdk_test_bookings", METADATA,
                 Column("id", Integer, primary_key=True, autoincrement=True),
                 Column("who", String(40), nullable=False))


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database_url)
    async with engine.begin() as conn:
        await conn.run_sync(METADATA.create_all)
    yield engine
    await engine.dispose()


def book(who: str) -> Callable[[AsyncConnection], Awaitable[Response]]:
    async def action(conn: AsyncConnection) -> Response:
        booking = (await conn.execute(insert(bookings).values(who=who)
                                      .returning(bookings.c.id))).scalar_one()
        return Response(201, {"booking": booking, "who": who})
    return action


async def count(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(bookings))).scalar_one())


async def test_a_key_runs_its_action_once_and_replays_after(engine: AsyncEngine) -> None:
    digest = request_hash(b'{"b": 1, "a": 2}')
    first = await run_once(engine, KEYS, "u-1", "k1", digest, book("ann"))
    assert not first.replayed and first.result.status == 201
    again = await run_once(engine, KEYS, "u-1", "k1", request_hash(b'{"a":2,"b":1}'),
                           book("ann"))
    assert again.replayed and again.result == first.result, "the canonical body is the same"
    assert await count(engine) == 1
    other_user = await run_once(engine, KEYS, "u-2", "k1", digest, book("ben"))
    assert not other_user.replayed, "keys are scoped"
    assert await count(engine) == 2


async def test_the_same_key_with_another_request_is_422(engine: AsyncEngine) -> None:
    await run_once(engine, KEYS, "u-1", "k1", request_hash(b"{}"), book("ann"))
    with pytest.raises(IdempotencyKeyReused) as refused:
        await run_once(engine, KEYS, "u-1", "k1", request_hash(b'{"x":1}'), book("ann"))
    assert refused.value.status == 422
    assert await count(engine) == 1


async def test_no_key_runs_every_time(engine: AsyncEngine) -> None:
    for _ in range(2):
        await run_once(engine, KEYS, "u-1", None, request_hash(b""), book("ann"))
    assert await count(engine) == 2


async def test_a_failing_action_records_nothing(engine: AsyncEngine) -> None:
    async def fails(conn: AsyncConnection) -> Response:
        await book("ann")(conn)
        raise BadRequest("the wizard is incomplete")
    with pytest.raises(BadRequest):
        await run_once(engine, KEYS, "u-1", "k1", request_hash(b""), fails)
    assert await count(engine) == 0
    done = await run_once(engine, KEYS, "u-1", "k1", request_hash(b""), book("ann"))
    assert not done.replayed, "the key is free again"


async def test_a_key_may_record_the_id_of_the_row_it_made(engine: AsyncEngine) -> None:
    async def booking_id(conn: AsyncConnection) -> int:
        return int((await book("ann")(conn)).body["booking"])
    first = await run_once(engine, REFS, "u-1", "k1", request_hash(b""), booking_id)
    again = await run_once(engine, REFS, "u-1", "k1", request_hash(b""), booking_id)
    assert (again.result, again.replayed, first.replayed) == (first.result, True, False)
    assert again.created_at is not None
    assert await count(engine) == 1


@pytest.mark.postgres
async def test_a_same_key_race_replays_the_winner(postgres_url: str) -> None:
    engine = create_async_engine(postgres_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(METADATA.create_all)
        both_inside = asyncio.Barrier(2)

        def racing(who: str) -> Callable[[AsyncConnection], Awaitable[Response]]:
            async def action(conn: AsyncConnection) -> Response:
                await both_inside.wait()  # both looked the key up and found nothing
                return await book(who)(conn)
            return action
        digest = request_hash(b"{}")
        a, b = await asyncio.wait_for(asyncio.gather(
            run_once(engine, KEYS, "u-1", "k", digest, racing("a")),
            run_once(engine, KEYS, "u-1", "k", digest, racing("b"))), timeout=30)
        assert a.result == b.result, "the loser answers with the winner's result"
        assert sorted([a.replayed, b.replayed]) == [False, True]
        assert await count(engine) == 1, "the loser's action was rolled back"
    finally:
        await engine.dispose()


@pytest.mark.parametrize("raw", ["", "x" * 256, "caf\u00e9", "a\nb"])
def test_keys_are_1_to_255_printable_ascii(raw: str) -> None:
    with pytest.raises(InvalidIdempotencyKey):
        idempotency_key(raw)
    assert idempotency_key("order-1 retry") == "order-1 retry"
    assert idempotency_key(None) is None


def test_a_body_that_is_not_json_is_400() -> None:
    with pytest.raises(BadRequest):
        request_hash(b"{nope")
    assert request_hash(b"") == request_hash(b"") != request_hash(b"{}")
