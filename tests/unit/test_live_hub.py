"""The live view's fan-out, without I/O: frames and masking, the hub's memory and channels,
dropping a stream that falls behind, and the send budget."""

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from app.errors import Unavailable
from app.live import frames
from app.live.budget import Budget
from app.live.frames import Frame, Viewer
from app.live.hub import Hub
from app.live.subscriber import DROPPED, ENDED, LIVE, Subscriber
from app.rendering import event_from_row

ADMIN = Viewer(True, None)
BORROWER = Viewer(False, None)
AT = datetime(2026, 11, 28, 12, 0, 0, 123456, tzinfo=UTC)
LISTING = str(uuid.uuid4())


def row(seq: int, type: str = "bid.placed", listing: str = LISTING, **data: Any) -> tuple[Any, ...]:
    """A committed journal row: (seq, id, type, listing_id, created_at, data as JSON text,
    hash)."""
    body = {"listing_id": listing, "lender_id": "lena", "amount": 5_000, **data}
    return (seq, str(uuid.uuid4()), type, listing, AT, orjson.dumps(body).decode(), f"{seq:064x}")


def sse_data(payload: bytes) -> list[Any]:
    return [
        orjson.loads(line[6:]) for line in payload.split(b"\n") if line.startswith(b"data: ")
    ]


def hub(**overrides: Any) -> Hub:
    options: dict[str, Any] = {
        "flush_s": 60.0, "buffer_events": 100, "history_events": 100, "heartbeat_s": 60.0,
        "budget": Budget(1.0),
    }
    options.update(overrides)
    made = Hub(**options)
    made.start(0)
    return made


def test_a_frame_is_the_event_as_the_event_log_renders_it() -> None:
    committed = row(7, amount=12_345)
    frame = Frame.committed(committed)
    stored = {
        "seq": 7, "id": uuid.UUID(committed[1]), "type": "bid.placed",
        "listing_id": uuid.UUID(LISTING), "created_at": AT, "data": orjson.loads(committed[5]),
        "hash": committed[6],
    }
    expected = event_from_row(stored)
    assert frame.full == b"id: 7\nevent: bid.placed\ndata: %s\n\n" % orjson.dumps(expected)
    assert Frame.stored(stored).full == frame.full
    assert sse_data(frame.full) == [expected]


def test_other_lenders_ids_are_masked_and_a_lenders_own_id_is_not() -> None:
    placed = Frame.committed(row(1, lender_id="lena"))
    funded = Frame.committed(row(2, "listing.funded", loan={"fills": [
        {"lender_id": "lena", "amount": 1}, {"lender_id": "maxim", "amount": 2},
    ]}))

    def lenders(frame: Frame, viewer: Viewer) -> list[str]:
        data = sse_data(frame.bytes_for(viewer))[0]["data"]
        if "loan" in data:
            return [f["lender_id"] for f in data["loan"]["fills"]]
        return [data["lender_id"]]

    assert lenders(placed, ADMIN) == ["lena"]
    assert lenders(placed, BORROWER) == ["le***"]
    assert lenders(placed, Viewer(False, "lena")) == ["lena"]
    assert lenders(placed, Viewer(False, "maxim")) == ["le***"]
    assert lenders(funded, Viewer(False, "maxim")) == ["le***", "maxim"]
    assert lenders(funded, BORROWER) == ["le***", "ma***"]
    assert funded.lenders == {"lena", "maxim"}


async def test_each_event_is_rendered_at_most_twice_whatever_the_number_of_streams(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = []

    def counting(fields: Any) -> Any:
        calls.append(fields["seq"])
        return event_from_row(fields)

    monkeypatch.setattr(frames, "event_from_row", counting)
    live = hub()
    viewers = [ADMIN, BORROWER, Viewer(False, "someone-else")] * 200
    subs = [Subscriber(LISTING, v) for v in viewers]
    for sub in subs:
        assert live.attach(sub, None) == []
    live.publish([row(seq) for seq in range(1, 11)])
    live.flush()
    for sub in subs:
        (batch,) = sub.take()
        assert len(sse_data(batch.payload(sub.viewer))) == 10
    assert len(calls) == 20  # a full and a masked rendering per event, not one per stream


async def test_a_stream_resuming_before_the_memory_is_sent_to_postgres_first() -> None:
    live = hub(history_events=3)
    live.publish([row(seq) for seq in range(1, 6)])
    live.flush()
    assert (live.floor, live.flushed) == (2, 5)
    assert live.attach(Subscriber(LISTING, ADMIN), 1) is None  # event 2 is only in Postgres
    sub = Subscriber(LISTING, ADMIN)
    resumed = live.attach(sub, 2)
    assert resumed is not None
    assert [f.seq for f in resumed] == [3, 4, 5]
    assert live.subscribers == 1


async def test_a_stream_further_behind_than_its_buffer_is_dropped_and_the_others_go_on() -> None:
    live = hub(buffer_events=5)
    slow, keeping_up = Subscriber(LISTING, ADMIN), Subscriber(LISTING, ADMIN)
    live.attach(slow, None)
    live.attach(keeping_up, None)
    for first in (1, 4):
        live.publish([row(seq) for seq in range(first, first + 3)])
        live.flush()
        assert len(keeping_up.take()) == 1
    assert slow.state == DROPPED and live.dropped == 1
    assert keeping_up.state == LIVE and live.subscribers == 1


async def test_a_listing_channel_carries_its_listing_only_and_closes_with_the_resolution() -> None:
    live = hub()
    other = str(uuid.uuid4())
    mine, everything = Subscriber(LISTING, ADMIN), Subscriber(None, ADMIN)
    live.attach(mine, None)
    live.attach(everything, None)
    live.publish([row(1), row(2, listing=other), row(3, "listing.cancelled")])
    live.flush()
    (batch,) = mine.take()
    assert [f.seq for f in batch.frames] == [1, 3] and batch.resolves
    assert [f.seq for f in everything.take()[0].frames] == [1, 2, 3]
    assert live.subscribers == 1  # the listing's channel is gone; the all-events one stays


async def test_closing_the_hub_ends_every_stream_and_refuses_new_ones() -> None:
    live = hub()
    sub = Subscriber(LISTING, ADMIN)
    live.attach(sub, None)
    live.close()
    assert sub.state == ENDED
    with pytest.raises(Unavailable):
        live.attach(Subscriber(LISTING, ADMIN), None)


async def test_an_idle_stream_is_woken_for_a_heartbeat() -> None:
    live = hub(heartbeat_s=0.04)
    sub = Subscriber(LISTING, ADMIN)
    live.attach(sub, None)
    async with asyncio.timeout(5):
        await sub.wait()
    assert sub.beat_due and sub.idle


async def test_past_its_budget_a_stream_waits_for_its_turn() -> None:
    budget = Budget(0.2)
    await budget.acquire()  # within the bucket: at once
    budget.spend(10.0, 0, True)  # ten seconds of CPU: far past it
    waiting = asyncio.create_task(budget.acquire())
    await asyncio.sleep(0.05)
    assert not waiting.done()
    budget.tokens = 1.0  # as if the process had run long enough to earn it back
    async with asyncio.timeout(5):
        await waiting


async def test_an_unlimited_budget_never_waits() -> None:
    budget = Budget(1.0)
    budget.spend(10.0, 10**9, False)
    async with asyncio.timeout(1):
        await budget.acquire()


async def test_the_hub_knows_where_an_open_listing_began_until_it_closes() -> None:
    live = hub()
    live.publish([row(1, listing=str(uuid.uuid4())), row(2, "listing.opened"), row(3)])
    live.flush()
    assert live.first_seq(LISTING) == 2  # a stream from its start skips events 1 and before
    live.publish([row(4, "listing.funded")])
    live.flush()
    assert live.first_seq(LISTING) is None
