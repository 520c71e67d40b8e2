"""Recovery replays each stored book in slices (a turn of the event loop between them): with a
slice of two bids, the books rebuilt from Postgres equal the live ones field by field, for
books that were covered with bids pushed out, auto bids, and a listing capping lenders' shares.
The books come a fetch ahead (the next fetch in flight while one replays): one book a fetch
gives the same books, and a replay that fails with a fetch in flight leaves the connection
usable and its own error standing."""

from unittest.mock import patch

import httpx
import pytest
from fastapi import FastAPI

from app import recovery, store
from matching import Engine
from tests.integration.conftest import ADMIN, running_service
from tests.integration.helpers import open_listing, place_bid
from tests.integration.test_standing_orders import create_order
from tests.unit.books import book_state

BIDS = [(20_000, 1_500), (30_000, 1_400), (10_000, 1_000), (25_000, 900), (5_000, 1_999),
        (40_000, 800)]


async def bid_in_turn(client: httpx.AsyncClient, listing_id: str, lenders: int) -> None:
    """The bids of BIDS from `lenders` lenders in turn: later ones cover the listing and push
    earlier ones out; some are refused (not competitive, or over a share cap)."""
    for n, (amount, rate) in enumerate(BIDS):
        response = await client.post(
            f"/v1/listings/{listing_id}/bids", headers=ADMIN,
            json={"amount": amount, "min_rate_bps": rate, "lender_id": f"l{1 + n % lenders}"},
        )
        assert response.status_code in (201, 409), response.text


async def assert_rebuilt_books_equal_live(app: FastAPI, open_books: int) -> None:
    live = app.state.services.market
    with patch.object(recovery, "_YIELD_EVERY", 2):
        rebuilt, _ = await recovery.rebuild(live.store, live.rules)
    rebuilt.check_invariants()
    ids = sorted(live.engine.open_listing_ids())
    assert len(ids) == open_books
    assert sorted(rebuilt.open_listing_ids()) == ids
    for listing_id in ids:
        assert book_state(rebuilt._books[listing_id]) == book_state(live.engine._books[listing_id])


async def test_books_rebuilt_in_slices_equal_the_live_books(database_url: str) -> None:
    async with running_service(database_url) as (app, client):
        await create_order(client, "l1", amount_per_listing=20_000, min_rate_bps=1_200)
        await create_order(client, "l2", amount_per_listing=30_000, min_rate_bps=1_300)
        covered = (await open_listing(client, amount=100_000))["id"]
        await bid_in_turn(client, covered, lenders=2)
        uncovered = (await open_listing(client, amount=300_000))["id"]
        await place_bid(client, uncovered, 5_000, 1_999, lender_id="lena")
        book = app.state.services.market.engine._books[covered]
        assert book.outbid and book.auto_orders, "a covered book with outbids and auto bids"
        await assert_rebuilt_books_equal_live(app, open_books=2)

    async with running_service(database_url, max_lender_share_bps=5_000) as (app, client):
        capped = (await open_listing(client, amount=100_000))["id"]
        await bid_in_turn(client, capped, lenders=3)
        assert app.state.services.market.engine._books[capped].live_by_lender
        await assert_rebuilt_books_equal_live(app, open_books=3)


async def test_books_read_one_a_fetch_with_the_next_fetch_ahead_equal_the_live_books(
    database_url: str,
) -> None:
    async with running_service(database_url) as (app, client):
        for _ in range(3):
            await bid_in_turn(client, (await open_listing(client, amount=100_000))["id"], 2)
        with patch.object(store, "_BOOKS_PER_FETCH", 1):
            await assert_rebuilt_books_equal_live(app, open_books=3)


async def test_a_replay_failing_with_a_fetch_in_flight_leaves_the_connection_usable(
    database_url: str,
) -> None:
    async with running_service(database_url) as (app, client):
        for _ in range(3):
            await place_bid(client, (await open_listing(client))["id"], 5_000, 1_000)
        live = app.state.services.market
        failing = patch.object(Engine, "restore_bids", side_effect=ValueError("replay failed"))
        with patch.object(store, "_BOOKS_PER_FETCH", 1), failing:
            with pytest.raises(ValueError, match="replay failed"):
                await recovery.rebuild(live.store, live.rules)
        assert await live.store.pool.fetchval("SELECT 1") == 1
        rebuilt, _ = await recovery.rebuild(live.store, live.rules)
        assert sorted(rebuilt.open_listing_ids()) == sorted(live.engine.open_listing_ids())
