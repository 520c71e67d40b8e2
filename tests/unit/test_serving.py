"""A response's head waits for its body, so both go in one write; nothing is lost or reordered."""

import asyncio
from typing import Any

from app.serving import HeldHeads

HEAD = b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n"


class Recorded:
    """A transport that records what is written and when it is closed."""

    def __init__(self) -> None:
        self.calls: list[Any] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.calls.append(data)

    def write_eof(self) -> None:
        self.calls.append("eof")

    def close(self) -> None:
        self.calls.append("close")
        self.closing = True

    def abort(self) -> None:
        self.calls.append("abort")
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


def held() -> tuple[HeldHeads, Recorded]:
    recorded = Recorded()
    return HeldHeads(recorded, asyncio.get_running_loop()), recorded  # type: ignore[arg-type]


async def test_a_head_and_its_body_sent_in_one_turn_go_out_in_one_write() -> None:
    transport, recorded = held()
    transport.write(HEAD)
    transport.write(b"{}")
    assert recorded.calls == [HEAD + b"{}"]
    await asyncio.sleep(0)
    assert recorded.calls == [HEAD + b"{}"], "nothing left to flush at the end of the turn"


async def test_a_head_with_nothing_after_it_goes_out_at_the_end_of_the_turn() -> None:
    transport, recorded = held()
    transport.write(HEAD)
    assert recorded.calls == []
    await asyncio.sleep(0)
    assert recorded.calls == [HEAD]
    transport.write(b"chunk")  # a streamed body's later parts go out as they come
    assert recorded.calls == [HEAD, b"chunk"]


async def test_other_writes_go_out_at_once_and_in_order() -> None:
    transport, recorded = held()
    transport.write(b"HTTP/1.1 100 Continue")  # not a whole head: not held
    transport.write(b"5\r\nhello\r\n")
    transport.writelines([HEAD, b"ok"])  # a head with its body: one write, at once
    assert recorded.calls == [b"HTTP/1.1 100 Continue", b"5\r\nhello\r\n", HEAD + b"ok"]


async def test_closing_sends_a_held_head_first_and_aborting_drops_it() -> None:
    transport, recorded = held()
    transport.write(HEAD)
    transport.close()
    assert recorded.calls == [HEAD, "close"]
    await asyncio.sleep(0)
    assert recorded.calls == [HEAD, "close"]

    transport, recorded = held()
    transport.write(HEAD)
    transport.write_eof()
    assert recorded.calls == [HEAD, "eof"]

    transport, recorded = held()
    transport.write(HEAD)
    transport.abort()
    await asyncio.sleep(0)
    assert recorded.calls == ["abort"]


async def test_a_head_held_when_the_peer_went_away_is_dropped_and_the_rest_delegates() -> None:
    transport, recorded = held()
    transport.write(HEAD)
    recorded.closing = True
    await asyncio.sleep(0)
    assert recorded.calls == []
    assert transport.get_extra_info("peername") == "info:peername"
