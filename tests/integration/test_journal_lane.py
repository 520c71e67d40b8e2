"""The journal's libpq lane (app/journal/lane.py): batches that only append go on it, the rest on
asyncpg; what it stores is what the asyncpg path stores, and losing it loses no acknowledged bid."""

import asyncio
import contextlib
import itertools
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest.mock import patch
from uuid import uuid4

import asyncpg
import httpx
import psutil
import pytest
from fastapi import FastAPI

from app.fence.store import application_name
from app.journal import BatchStats, Entry, JournalWriter
from app.journal import statements as sql
from app.journal.lane import AppendLane
from app.journal.transaction import PoolPath
from tests.integration.conftest import ADMIN, running_service
from tests.integration.helpers import (
    Embedded,
    bid_body,
    listing_body,
    open_listing,
    place_bid,
    rows,
    writing_again,
)
from tests.waiting import eventually


def batches(app: FastAPI, connection: str) -> float:
    """Group commits so far on `connection` ("lane" or "asyncpg"), from the service's metrics."""
    value = app.state.metrics.registry.get_sample_value(
        "loan_auction_journal_batches_total", {"connection": connection}
    )
    return float(value or 0)


def writer_of(app: FastAPI) -> JournalWriter:
    writer = app.state.services.market.writer
    assert isinstance(writer, JournalWriter)
    return writer


@pytest.mark.parametrize("journal_lane", [True, False], ids=["lane", "no_lane"])
async def test_bids_go_on_the_lane_and_listings_on_asyncpg_unless_the_lane_is_off(
    database_url: str, journal_lane: bool
) -> None:
    async with running_service(database_url, journal_lane=journal_lane) as (app, client):
        listing = (await open_listing(client, amount=5_000_000))["id"]
        await asyncio.gather(*(place_bid(client, listing, 100_000, 900 + n) for n in range(20)))
        on_lane, on_asyncpg = batches(app, "lane"), batches(app, "asyncpg")
        count = (await client.get(f"/v1/listings/{listing}", headers=ADMIN)).json()["bid_count"]
        await open_listing(client)  # with the lane open: a listing still goes on asyncpg
        after = batches(app, "lane"), batches(app, "asyncpg")
    assert count == 20
    assert (on_lane >= 1) is journal_lane
    assert after == (on_lane, on_asyncpg + 1)


async def test_an_idempotent_bid_written_on_the_lane_replays_the_same_answer_after_a_restart(
    database_url: str,
) -> None:
    """The key's row (its hash and body as bytes) goes through the lane's JSON as base64."""
    keyed = {**ADMIN, "Idempotency-Key": "bid-on-the-lane"}
    async with running_service(database_url) as (app, client):
        listing = (await open_listing(client))["id"]
        path = f"/v1/listings/{listing}/bids"
        before = batches(app, "lane")
        first = await client.post(path, headers=keyed, json=bid_body(100_000, 1_500))
        assert first.status_code == 201, first.text
        assert batches(app, "lane") == before + 1
    async with running_service(database_url, fund_lenders=False) as (_, client):
        again = await client.post(path, headers=keyed, json=bid_body(100_000, 1_500))
        changed = await client.post(path, headers=keyed, json=bid_body(100_000, 1_400))
    assert (again.status_code, again.content) == (201, first.content)
    assert changed.status_code == 422  # the same key with another body: the stored hash differs
    assert changed.json()["code"] == "idempotency_key_reused"


async def test_a_lane_whose_session_ends_is_replaced_and_every_acknowledged_bid_is_stored(
    database_url: str,
) -> None:
    async with running_service(database_url) as (app, client):
        writer = writer_of(app)
        listing = (await open_listing(client))["id"]
        await place_bid(client, listing, 100_000, 1_500)
        await place_bid(client, listing, 100_000, 1_400)
        lane = writer._lane
        assert lane is not None, "the second bid's batch opened the lane"
        await _terminate(database_url, lane._conn.backend_pid)
        acknowledged = await _bid_until_acknowledged(client, listing, count=10)
        assert writer._lane is not None and writer._lane is not lane, "a new lane"
        assert batches(app, "lane") >= 2
    stored = {str(r["id"]) for r in await rows(database_url, "SELECT id FROM bids")}
    assert set(acknowledged) <= stored


async def _terminate(database_url: str, pid: int) -> None:
    (ended,) = await rows(database_url, "SELECT pg_terminate_backend($1)", pid)
    assert ended[0]


async def _bid_until_acknowledged(
    client: httpx.AsyncClient, listing: str, count: int
) -> list[str]:
    """Bid until `count` bids are acknowledged; a 503 (the batch on the ended session, or the
    rebuild after it) is retried, as a client would."""
    acknowledged: list[str] = []

    async def one_more() -> bool:
        response = await client.post(
            f"/v1/listings/{listing}/bids", headers=ADMIN,
            json=bid_body(100_000, 1_300 - len(acknowledged)),
        )
        assert response.status_code in (201, 503), response.text
        if response.status_code == 201:
            acknowledged.append(response.json()["id"])
        return len(acknowledged) >= count

    await eventually(one_more, what=f"{count} bids acknowledged after the lane's session ended")
    return acknowledged


async def lane_open(app: FastAPI, client: httpx.AsyncClient) -> tuple[JournalWriter, str]:
    """The service's writer once a bid has opened its lane, and that bid's listing."""
    writer = writer_of(app)
    listing = (await open_listing(client))["id"]
    await place_bid(client, listing, 100_000, 1_500)
    assert writer._lane is not None
    return writer, listing


def an_event(**data: object) -> Entry:
    """An entry of one event: it appends only, so it goes on the lane when there is one."""
    return Entry(events=[(str(uuid4()), "listing.opened", None, datetime.now(UTC), data)])


def doomed() -> Entry:
    """An entry Postgres refuses (an idempotency key's created_at is NOT NULL)."""
    return Entry(events=an_event().events, idempotency=[("s", "k", b"", 200, b"", None)])


async def gathering(writer: JournalWriter) -> "asyncio.Future[None]":
    """Commit an entry on the lane with another waiting, and return in the turn the commit woke
    this task: the waiting entry's batch is due once the loop has run what was ready."""
    first = writer.submit(an_event())
    for _ in range(100):  # the journal's task sends it on its own within a turn or two
        if writer._on_lane is not None:
            break
        await asyncio.sleep(0)
    assert writer._on_lane is not None and not first.done()
    waiting = writer.submit(an_event())
    await first
    assert writer._gathering is not None and not waiting.done()
    return waiting


def recorded_commits(writer: JournalWriter) -> list[BatchStats]:
    """Each batch the writer commits from now on, in order (it still reports it as before)."""
    commits: list[BatchStats] = []
    on_commit = writer._on_commit

    def recording(entry: Entry, stats: BatchStats) -> None:
        commits.append(stats)
        on_commit(entry, stats)

    writer._on_commit = recording
    return commits


async def test_the_next_lane_batch_takes_what_the_requests_woken_by_a_commit_submit(
    database_url: str,
) -> None:
    """A commit answers its requests at once, and the next batch leaves after them: an entry a
    woken request submits rides with the one already waiting, in one commit, not two."""
    async with running_service(database_url) as (app, client):
        writer, _ = await lane_open(app, client)
        before = batches(app, "lane")
        waiting = await gathering(writer)
        woken = writer.submit(an_event())  # in the turn the commit woke this task
        await asyncio.wait_for(asyncio.gather(waiting, woken), timeout=10)
        assert batches(app, "lane") == before + 2


async def test_the_next_lane_batch_takes_half_of_what_waits_and_of_the_batch_just_committed(
    database_url: str,
) -> None:
    """Callers that wait for their answers take turns in two groups: one entry committed with
    nine waiting sends five, then the other four, so the groups even out (docs/operations.md)."""
    async with running_service(database_url) as (app, client):
        writer, _ = await lane_open(app, client)
        commits = recorded_commits(writer)
        waiting = await gathering(writer)
        more = [writer.submit(an_event()) for _ in range(8)]
        await asyncio.wait_for(asyncio.gather(waiting, *more), timeout=10)
    assert [stats.entries for stats in commits] == [1, 5, 4]


async def test_an_entry_that_does_not_only_append_left_waiting_by_the_half_goes_to_the_task_next(
    database_url: str,
) -> None:
    """Five waiting after a batch of one: the three before it go on the lane, then it and the
    one after it in the task's transaction, and the events are stored in submission order."""
    async with running_service(database_url) as (app, client):
        writer, _ = await lane_open(app, client)
        commits = recorded_commits(writer)
        waiting = await gathering(writer)
        settles = Entry(  # an update that matches no bid: it commits, but not on the lane
            events=an_event(n=2).events, settled_bids=[(str(uuid4()), "rejected", 0)]
        )
        entries = [an_event(n=0), an_event(n=1), settles, an_event(n=3)]
        more = [writer.submit(entry) for entry in entries]
        await asyncio.wait_for(asyncio.gather(waiting, *more), timeout=10)
        await asyncio.wait_for(writer.flushed(), timeout=10)
    assert [(stats.entries, stats.on_lane) for stats in commits] == [
        (1, True), (3, True), (2, False)
    ]
    stored = await rows(database_url, "SELECT data->>'n' FROM events WHERE data ? 'n' ORDER BY seq")
    assert [row[0] for row in stored] == ["0", "1", "2", "3"]


async def test_a_lane_session_that_ends_while_the_next_batch_gathers_leaves_it_to_the_task(
    database_url: str,
) -> None:
    """The batch is not sent on the dropped lane: the task takes it (on a new lane), it commits,
    and the writer goes idle."""
    async with running_service(database_url) as (app, client):
        writer, _ = await lane_open(app, client)
        lane = writer._lane
        assert lane is not None
        waiting = await gathering(writer)
        woken = writer.submit(an_event(woken=True))
        writer._drop_lane()  # as `_lane_readable` does when the server ends the session
        await asyncio.wait_for(asyncio.gather(waiting, woken), timeout=10)
        await asyncio.wait_for(writer.flushed(), timeout=10)
        assert writer._lane is not None and writer._lane is not lane
        assert not writer.recovering
    stored = await rows(database_url, "SELECT count(*) FROM events WHERE data ? 'woken'")
    assert stored[0][0] == 1


@pytest.mark.parametrize(
    ("how", "message"), [("stop", "the journal stopped"), ("close", "closing")]
)
async def test_a_stop_or_a_close_while_the_next_batch_gathers_fails_what_waits_sends_nothing(
    database_url: str, how: str, message: str
) -> None:
    async with running_service(database_url) as (app, client):
        writer, _ = await lane_open(app, client)
        before = batches(app, "lane")
        waiting = await gathering(writer)
        if how == "stop":
            (journal,) = (t for t in asyncio.all_tasks() if t.get_name() == "journal")
            journal.cancel()
        else:
            writer.close(RuntimeError("closing"))
        done, _ = await asyncio.wait([waiting], timeout=5)
        assert done, "the waiting entry's future never ended"
        error = waiting.exception()
        assert isinstance(error, RuntimeError) and str(error) == message
        await asyncio.wait_for(writer.flushed(), timeout=5)
        await asyncio.sleep(0.05)  # the gathered turn, and the task's, are behind
        assert writer._on_lane is None and batches(app, "lane") == before + 1


async def test_an_entry_that_does_not_only_append_joining_a_gathering_batch_goes_to_the_task(
    database_url: str,
) -> None:
    """The gathered batch holds it, so the whole batch takes the task's transaction (here it
    fails there, as such an entry fails on the task's path), and the writer goes on after."""
    async with running_service(database_url) as (app, client):
        writer, listing = await lane_open(app, client)
        before = batches(app, "lane")
        waiting = await gathering(writer)
        listed = writer.submit(Entry(listings=[("too", "few")]))
        with pytest.raises(ValueError, match="listings"):
            await asyncio.wait_for(listed, timeout=10)
        with pytest.raises(ValueError, match="listings"):
            await waiting
        assert batches(app, "lane") == before + 1
        await writing_again(app)
        await asyncio.wait_for(place_bid(client, listing, 100_000, 1_400), timeout=10)


async def test_a_failed_batch_on_the_task_path_leaves_the_lane_writing_after_the_rebuild(
    database_url: str,
) -> None:
    """The failure forgets the chain head; the next batch of bids must read it again, not go on
    the lane that stayed open (that killed the journal's task, and the bid hung)."""
    async with running_service(database_url) as (app, client):
        writer, listing = await lane_open(app, client)
        with pytest.raises(ValueError, match="listings"):  # not appending: the task's path
            await writer.submit(Entry(listings=[("too", "few")]))
        await writing_again(app)
        await asyncio.wait_for(place_bid(client, listing, 100_000, 1_400), timeout=10)


async def test_an_entry_submitted_after_a_lane_batch_failed_but_before_the_market_heard_fails(
    database_url: str,
) -> None:
    """It was computed on the books with the failed batch in them: writing it would store rows
    on top of ones Postgres does not have (the asyncpg path told the market in the same step)."""
    async with running_service(database_url) as (app, client):
        writer, _ = await lane_open(app, client)
        with pytest.raises(Exception) as failed:  # noqa: PT011 - psycopg's, checked below
            await writer.submit(doomed())
        assert getattr(failed.value, "sqlstate", None) == "23502"
        late = writer.submit(an_event(late=True))  # no turn of the loop since the failure
        with pytest.raises(Exception) as also:  # noqa: PT011 - the same failure
            await asyncio.wait_for(late, timeout=10)
        assert also.value is failed.value


async def test_closing_while_the_lane_opens_waits_for_the_batch_and_a_stop_fails_it(
    database_url: str,
) -> None:
    """A batch taken while the lane connects is in flight: `flushed` waits for it, and a journal
    task cancelled then fails it rather than leave its request waiting for ever."""
    connecting = threading.Event()
    go_on = threading.Event()
    async with running_service(database_url) as (app, client):
        writer = writer_of(app)
        await open_listing(client)
        writer._drop_lane()  # the next batch of bids opens one
        opener = writer._open_lane
        assert opener is not None

        def slow_open() -> AppendLane:
            connecting.set()
            go_on.wait(10)
            return opener()

        writer._open_lane = slow_open
        try:
            taken = writer.submit(an_event())
            await asyncio.to_thread(connecting.wait, 10)
            writer.close(RuntimeError("closing"))
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(writer.flushed(), timeout=0.3)
            (journal,) = (t for t in asyncio.all_tasks() if t.get_name() == "journal")
            journal.cancel()
            done, _ = await asyncio.wait([taken], timeout=5)
            assert done, "the batch's future never ended"
            assert isinstance(taken.exception(), RuntimeError)
        finally:
            go_on.set()


async def test_the_lane_sends_text_as_utf8_whatever_the_sessions_default_encoding(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """asyncpg always asks for UTF-8; libpq takes PGCLIENTENCODING (or the server's default)."""
    monkeypatch.setenv("PGCLIENTENCODING", "LATIN1")
    async with running_service(database_url) as (app, client):
        writer, listing = await lane_open(app, client)
        entry = an_event(note="prêt à 5 % — 日本")
        event_id = entry.events[0][0]
        await writer.submit(entry)
        keyed = [(k.encode(), v.encode()) for k, v in ADMIN.items()]
        keyed.append((b"Idempotency-Key", "clé-ü".encode("latin-1")))  # a header is latin-1
        response = await client.post(
            f"/v1/listings/{listing}/bids", headers=keyed, json=bid_body(100_000, 1_400)
        )
        assert response.status_code == 201, response.text
        assert batches(app, "lane") >= 3
    ((data,),) = await rows(database_url, "SELECT data FROM events WHERE id = $1", event_id)
    keys = await rows(database_url, "SELECT key FROM idempotency_keys")
    assert data == '{"note": "prêt à 5 % — 日本"}'
    assert [row["key"] for row in keys] == ["clé-ü"]


async def test_a_takeover_would_end_the_lanes_session_with_the_pools(database_url: str) -> None:
    """A takeover ends the old writer's sessions by application_name (`evict`): the lane's is
    among them. Evicting for real here would also stop this writer and close the lane anyway."""
    async with running_service(database_url) as (app, client):
        writer, _ = await lane_open(app, client)
        lane = writer._lane
        assert lane is not None
        named = await rows(
            database_url, "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND application_name = $1", application_name(writer._fence.instance),
        )
        assert lane._conn.backend_pid in {row["pid"] for row in named}


async def test_an_entry_the_lane_cannot_encode_fails_like_on_the_task_path(
    database_url: str,
) -> None:
    """Encoding it was outside the lane's failure path: the journal's task died, the request
    waited for ever. It fails, and the writer goes on after the rebuild."""
    async with running_service(database_url) as (app, client):
        writer, listing = await lane_open(app, client)
        with pytest.raises(TypeError):
            await asyncio.wait_for(writer.submit(Entry(bids=[(object(),)])), timeout=10)
        await writing_again(app)
        await asyncio.wait_for(place_bid(client, listing, 100_000, 1_400), timeout=10)


async def test_bids_take_the_pool_while_the_lane_cannot_open(database_url: str) -> None:
    async with running_service(database_url) as (app, client):
        writer = writer_of(app)
        listing = (await open_listing(client))["id"]
        writer._drop_lane()
        tries: list[int] = []

        def refused() -> AppendLane:
            tries.append(1)
            raise OSError("no lane today")

        writer._open_lane = refused
        before = batches(app, "asyncpg")
        for rate in (1_500, 1_400, 1_300):
            await asyncio.wait_for(place_bid(client, listing, 100_000, rate), timeout=10)
        assert writer._lane is None
        assert tries == [1], "one try, then none until the retry delay"
        assert batches(app, "asyncpg") >= before + 3
        count = (await client.get(f"/v1/listings/{listing}", headers=ADMIN)).json()["bid_count"]
    assert count == 3


@pytest.mark.parametrize("journal_lane", [True, False], ids=["lane", "no_lane"])
async def test_a_journal_max_batch_of_zero_still_writes_one_entry_a_batch(
    database_url: str, journal_lane: bool
) -> None:
    """A batch never takes fewer than one entry, on the lane's limited path or the task's (the
    task's took none, and wrote empty batches for ever)."""
    async with running_service(
        database_url, journal_lane=journal_lane, journal_max_batch=0
    ) as (_, client):
        listing = (await asyncio.wait_for(open_listing(client), timeout=10))["id"]
        await asyncio.wait_for(place_bid(client, listing, 100_000, 1_500), timeout=10)
        count = (await client.get(f"/v1/listings/{listing}", headers=ADMIN)).json()["bid_count"]
    assert count == 1


@pytest.fixture
async def own_postgres(tmp_path: Path) -> AsyncIterator[str]:
    """A Postgres of the test's own (its processes are stopped here), not the shared one's."""
    postgres = Embedded(tmp_path)
    uri = await postgres.start()
    try:
        yield uri
    finally:
        await postgres.stop()


async def longest_pause_until(done: Callable[[], bool]) -> float:
    """Wake every 10 ms until `done()`; the longest the loop stood still between two wake-ups
    (a wait inside the service shows as one long pause)."""
    ticks = [time.monotonic()]
    while not done():
        await asyncio.sleep(0.01)
        ticks.append(time.monotonic())
    return max((b - a for a, b in itertools.pairwise(ticks)), default=0.0)


async def test_a_batch_the_socket_cannot_take_at_once_waits_on_it_without_stalling_the_loop(
    own_postgres: str,
) -> None:
    """A lane backend that reads nothing (stopped: a hung server, or a network that dropped
    out) must not stall the service: the rest of the batch goes as the socket takes it, the
    loop runs on meanwhile, and the lane's deadline fails the batch. The service then writes
    again on a new lane. Its own Postgres: a process of it is stopped."""
    async with running_service(own_postgres, db_timeout_s=0.5) as (app, client):  # deadline: 3 s
        writer, listing = await lane_open(app, client)
        assert writer._lane is not None
        with suspended(writer._lane._conn.backend_pid) as backend:
            huge = writer.submit(an_event(blob="x" * 32_000_000))  # > the socket buffers
            longest = await longest_pause_until(huge.done)
        assert longest < 1.5, f"the loop stalled {longest:.2f} s"  # the deadline is 3 s
        error = huge.exception()
        assert isinstance(error, TimeoutError) and "no commit within" in str(error)
        await writing_again(app)
        for rate in (1_400, 1_300):  # the first reads the chain head on the task's path
            await asyncio.wait_for(place_bid(client, listing, 100_000, rate), timeout=10)
        assert writer._lane is not None and writer._lane._conn.backend_pid != backend.pid
    stored = await rows(own_postgres, "SELECT count(*) FROM events WHERE data ? 'blob'")
    assert stored[0][0] == 0


async def test_a_batch_the_socket_takes_in_parts_commits_once_it_has_taken_all_of_it(
    own_postgres: str,
) -> None:
    """The other way out of that wait: the backend reads again well before the deadline, the
    socket takes the rest as it becomes writable, the writer callback is removed once it has
    all of it, and the batch commits on the same lane."""
    async with running_service(own_postgres) as (app, client):
        writer, _ = await lane_open(app, client)
        lane = writer._lane
        assert lane is not None
        with patch.object(writer, "_lane_writable", wraps=writer._lane_writable) as writable:
            with suspended(lane._conn.backend_pid):
                big = writer.submit(an_event(blob="x" * 32_000_000))  # > the socket buffers

                async def sent() -> bool:
                    return writer._on_lane is not None

                await eventually(sent, what="the batch on the lane")
                await asyncio.sleep(0.2)
                assert not big.done()
            await asyncio.wait_for(big, timeout=30)
        assert writable.call_count >= 1, "the socket took the batch in parts"
        assert writer._lane is lane and not writer.recovering
        assert not asyncio.get_running_loop().remove_writer(lane.socket), "a writer was left"
        await asyncio.wait_for(writer.flushed(), timeout=5)
    stored = await rows(own_postgres, "SELECT count(*) FROM events WHERE data ? 'blob'")
    assert stored[0][0] == 1


async def test_a_lane_statement_past_its_deadline_is_ended_not_left_to_commit_later(
    database_url: str,
) -> None:
    """A statement the server is still running when the lane's deadline fails its batch (here
    it waits for a row another session holds) must not commit once it gets the row: its
    requests were refused and the books are rebuilt without it. Closing the session does not
    stop it; the rebuild ends the session before it reads."""

    async def nothing_waits_for_a_lock() -> bool:
        (waiting,) = await rows(
            database_url, "SELECT count(*) FROM pg_stat_activity"
            " WHERE wait_event_type = 'Lock' AND datname = current_database()",
        )
        return bool(waiting[0] == 0)

    async with running_service(database_url, db_timeout_s=0.5) as (app, client):  # 3 s
        writer, _ = await lane_open(app, client)
        holder = await asyncpg.connect(database_url)
        try:
            await holder.execute("INSERT INTO accounts (id, available, reserved, updated_at)"
                                 " VALUES ('held', 0, 0, now())")
            held = holder.transaction()
            await held.start()
            await holder.execute("SELECT 1 FROM accounts WHERE id = 'held' FOR UPDATE")
            late = Entry(
                events=an_event(late=True).events, balances=[("held", 1, 0, datetime.now(UTC))]
            )
            with pytest.raises(TimeoutError, match="no commit within"):
                await asyncio.wait_for(writer.submit(late), timeout=30)
            await eventually(nothing_waits_for_a_lock, what="the late statement stopped")
        finally:
            await holder.close()  # the row is free: a statement still waiting would go on
        await writing_again(app)
    stored = await rows(database_url, "SELECT count(*) FROM events WHERE data ? 'late'")
    assert stored[0][0] == 0


async def test_a_lane_statement_the_server_has_not_read_never_commits_after_the_rebuild(
    own_postgres: str,
) -> None:
    """The lane's backend stopped (a hung session, or a network holding the statement back):
    the deadline fails the batch, but the statement still sits in the backend's socket and
    would run once it reads again, after the books were rebuilt without it. The rebuild ends
    that session first and reads nothing until it is gone; the loop runs on meanwhile. Its own
    Postgres: a process of it is stopped."""
    async with running_service(own_postgres, db_timeout_s=0.5) as (app, client):  # deadline: 3 s
        writer, _ = await lane_open(app, client)
        assert writer._lane is not None
        market = app.state.services.market
        with suspended(writer._lane._conn.backend_pid) as backend:
            stuck = writer.submit(an_event(stuck=True))
            longest = await longest_pause_until(stuck.done)
            error = stuck.exception()
            assert isinstance(error, TimeoutError) and "no commit within" in str(error)
            waited_until = time.monotonic() + 2
            longest = max(
                longest, await longest_pause_until(lambda: time.monotonic() >= waited_until)
            )
            assert not market.writable, "rebuilt while the old session could still commit"
        assert longest < 1.5, f"the loop stalled {longest:.2f} s"
        await writing_again(app)
        assert exited(backend), "the rebuild went on with the old session alive"
        await place_bid(client, (await open_listing(client))["id"], 100_000, 1_400)
    stored = await rows(own_postgres, "SELECT count(*) FROM events WHERE data ? 'stuck'")
    assert stored[0][0] == 0


async def test_a_task_path_statement_the_server_has_not_read_never_commits_after_the_rebuild(
    own_postgres: str,
) -> None:
    """The asyncpg path had the lane's gap: its command timeout sends a cancel, which a backend
    that has not read the statement yet ignores (a cancel while idle is dropped), and asyncpg
    then closes the connection; resumed, the backend read the statement and committed it after
    the books were rebuilt without it (1 row stored). With the lane off, bids take this path.
    Its own Postgres: a process of it is stopped."""
    async with running_service(own_postgres, db_timeout_s=0.5, journal_lane=False) as (
        app, client,
    ):  # the command timeout: 3 s
        writer = writer_of(app)
        listing = (await open_listing(client))["id"]
        conn = writer._pool_path._conn
        assert conn is not None, "the task's path keeps its connection"
        market = app.state.services.market
        with suspended(conn.get_server_pid()) as backend:
            stuck = writer.submit(an_event(stuck=True))
            done, _ = await asyncio.wait([stuck], timeout=30)
            assert done, "the batch never failed"
            assert isinstance(stuck.exception(), TimeoutError)
            await asyncio.sleep(2)
            assert not market.writable, "rebuilt while the old session could still commit"
        await writing_again(app)
        assert exited(backend), "the rebuild went on with the old session alive"
        await place_bid(client, listing, 100_000, 1_400)
    stored = await rows(own_postgres, "SELECT count(*) FROM events WHERE data ? 'stuck'")
    assert stored[0][0] == 0


async def test_a_listings_commit_the_server_has_not_read_is_not_stored_after_its_503(
    own_postgres: str,
) -> None:
    """A batch that opens a listing is a transaction on the asyncpg path. Its backend stopped
    just before the COMMIT arrives: the timeout's cancel is ignored there too, and resumed, the
    backend committed the listing its borrower was answered 503 for (the rebuild had waited for
    its open transaction, then read it). Its own Postgres: a process of it is stopped."""
    async with running_service(own_postgres, db_timeout_s=0.5) as (app, client):  # 3 s
        writer = writer_of(app)
        await open_listing(client)
        conn = writer._pool_path._conn
        assert conn is not None, "the task's path keeps its connection"
        backend = psutil.Process(conn.get_server_pid())
        append = PoolPath._append

        async def then_stopped(path: PoolPath, *args: Any) -> sql.Head:
            after = await append(path, *args)
            backend.suspend()  # the transaction's last statement goes next: its COMMIT
            return after

        market = app.state.services.market
        try:
            with patch.object(PoolPath, "_append", then_stopped):
                response = await client.post(
                    "/v1/listings", headers=ADMIN, json=listing_body(amount=424_200)
                )
            assert response.status_code == 503, response.text
            await asyncio.sleep(2)
            assert not market.writable, "rebuilt while the old session could still commit"
        finally:
            backend.resume()
        await writing_again(app)
        await open_listing(client)
    stored = await rows(own_postgres, "SELECT count(*) FROM listings WHERE amount = 424200")
    assert stored[0][0] == 0


async def test_the_rebuild_ends_the_abandoned_session_not_another_that_got_its_pid(
    database_url: str,
) -> None:
    """A pid names a session only while it runs: once Postgres has restarted (a container's
    server hands out the same low pids again) the lane's may be another session's by the time
    the rebuild ends it, say the writer fence's or a standby's. Here the lane's pid is made
    another session's, as a reuse would."""
    async with running_service(database_url) as (app, client):
        writer, _ = await lane_open(app, client)
        assert writer._lane is not None
        other = await asyncpg.connect(database_url)
        try:
            writer._lane.backend_pid = other.get_server_pid()
            with pytest.raises(Exception) as failed:  # noqa: PT011 - psycopg's
                await writer.submit(doomed())
            assert getattr(failed.value, "sqlstate", None) == "23502"
            await writing_again(app)
            assert await other.fetchval("SELECT 1") == 1, "another session was ended"
        finally:
            other.terminate()


async def test_a_stop_waits_for_no_session_the_rebuild_is_ending(own_postgres: str) -> None:
    """A rebuild waiting for the old lane session to end is abandoned by a stopping service: the
    stop does not wait for the session. Its own Postgres: a process of it is stopped (and
    resumed from a thread after 15 s, so a stop that waits fails rather than hangs)."""
    stopped: list[psutil.Process] = []
    safety: threading.Timer | None = None
    try:
        async with running_service(own_postgres, db_timeout_s=0.5) as (app, client):  # 3 s
            writer, _ = await lane_open(app, client)
            assert writer._lane is not None
            stopped.append(psutil.Process(writer._lane._conn.backend_pid))
            stopped[0].suspend()
            safety = threading.Timer(15, resumed, [stopped])
            safety.start()
            with pytest.raises(TimeoutError, match="no commit within"):
                await asyncio.wait_for(writer.submit(an_event(stuck=True)), timeout=30)
            await asyncio.sleep(0.5)  # the rebuild is waiting for the session now
            assert not app.state.services.market.writable
            stopping = time.monotonic()
        stopped_in = time.monotonic() - stopping
    finally:
        if safety is not None:
            safety.cancel()
        resumed(stopped)
    assert stopped_in < 2, f"the stop took {stopped_in:.2f} s"


def exited(process: psutil.Process) -> bool:
    """The process has ended, reaped or not: a backend leaves `pg_stat_activity` before it
    exits, and the postmaster reaps it a moment later (`is_running` holds for a zombie)."""
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@contextlib.contextmanager
def suspended(pid: int) -> Iterator[psutil.Process]:
    """The server process `pid` stopped (SIGSTOP: a hung session, or a network gone quiet),
    resumed on the way out."""
    process = psutil.Process(pid)
    process.suspend()
    try:
        yield process
    finally:
        resumed([process])


def resumed(processes: list[psutil.Process]) -> None:
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):  # resumed already, and it ended
            process.resume()
