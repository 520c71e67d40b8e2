"""Stream subscribers for the burst benchmark, in a process of their own.

    python bench/streams.py --port P --key K --listing ID --subscribers 1000

Opens N `GET /v1/listings/{id}/stream` connections (raw asyncio protocols, uvloop when
installed, so the reading costs little and none of it runs in the service's process), reads
everything, counts events (`id:` lines) and bytes, and reconnects a stream the service closed
with `Last-Event-ID` after the delay its `retry:` field asks for, as EventSource does (a dropped
stream resumes; nothing is skipped, so the events counted are the events delivered). Prints
`{"ready": N}` once every stream got its 200, then one JSON line of running totals for each
`mark` line read on stdin; exits on `stop` or end of input.
"""

import argparse
import asyncio
import re
import sys
import time
from typing import Any

import orjson

HOST = "127.0.0.1"
_ID = b"\nid: "
_LAST_ID = re.compile(rb"\nid: (\d+)\n")
_RETRY = re.compile(rb"(?:^|\n)retry: (\d+)\n")


class Totals:
    def __init__(self) -> None:
        self.events = 0
        self.bytes = 0
        self.connected = 0
        self.ready = 0
        self.reconnects = 0
        self.errors: dict[str, int] = {}

    def snapshot(self) -> dict[str, Any]:
        return {
            "t": time.monotonic(), "events": self.events, "bytes": self.bytes,
            "connected": self.connected, "reconnects": self.reconnects,
            "errors": self.errors,
        }


class Subscriber(asyncio.Protocol):
    """One stream; counts what arrives and remembers the last event id for resuming."""

    def __init__(self, pool: "Pool") -> None:
        self.pool = pool
        self.totals = pool.totals
        self.last_id: int | None = None
        self.head = b""  # until the status line and headers are in
        self.carry = b""  # the last 4 bytes, so an `id:` split between two reads is counted
        self.window = b""  # the last bytes, to find the last complete `id:` line
        self.started = False
        self.retry_s = 2.0

    def connection_made(self, transport: Any) -> None:  # uvloop's transports are not asyncio's
        self.totals.connected += 1
        resume = b"" if self.last_id is None else b"Last-Event-ID: %d\r\n" % self.last_id
        transport.write(self.pool.request + resume + b"\r\n")

    def data_received(self, data: bytes) -> None:
        totals = self.totals
        if not self.started:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            status = self.head[9:12].decode(errors="replace")
            if status != "200":
                totals.errors[status] = totals.errors.get(status, 0) + 1
            else:
                self.started = True
                totals.ready += 1
            data, self.head = self.head[end + 4:], b""
        totals.bytes += len(data)
        joined = self.carry + data
        totals.events += joined.count(_ID)  # the 4-byte carry cannot hold a whole match twice
        self.carry = joined[-4:]
        window = (self.window + data)[-256:]
        ids = _LAST_ID.findall(window)
        if ids:
            self.last_id = int(ids[-1])
        retry = _RETRY.search(window)
        if retry:
            self.retry_s = int(retry.group(1)) / 1000
        self.window = window[-64:]

    def connection_lost(self, exc: Exception | None) -> None:
        self.totals.connected -= 1
        if not self.pool.stopping:
            self.totals.reconnects += 1
            self.started, self.head, self.carry, self.window = False, b"", b"", b""
            asyncio.get_running_loop().call_later(
                self.retry_s, lambda: asyncio.ensure_future(self.pool.connect(self))
            )


class Pool:
    def __init__(self, port: int, key: str, listing: str) -> None:
        self.port = port
        self.totals = Totals()
        self.stopping = False
        self.request = (
            f"GET /v1/listings/{listing}/stream HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
            f"Authorization: Bearer {key}\r\nAccept: text/event-stream\r\n"
        ).encode()

    async def connect(self, sub: Subscriber) -> None:
        loop = asyncio.get_running_loop()
        while not self.stopping:
            try:
                await loop.create_connection(lambda: sub, HOST, self.port)
                return
            except OSError as error:
                name = type(error).__name__
                self.totals.errors[name] = self.totals.errors.get(name, 0) + 1
                await asyncio.sleep(0.05)


async def main(args: argparse.Namespace) -> None:
    pool = Pool(args.port, args.key, args.listing)
    subs = [Subscriber(pool) for _ in range(args.subscribers)]
    for start in range(0, len(subs), 100):  # in waves: the listen backlog is finite
        await asyncio.gather(*(pool.connect(s) for s in subs[start:start + 100]))
    deadline = time.monotonic() + 60
    while pool.totals.ready < len(subs) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    _say({"ready": pool.totals.ready, "errors": pool.totals.errors})
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = (await reader.readline()).strip()
        if line == b"mark":
            _say(pool.totals.snapshot())
        else:  # "stop" or end of input
            pool.stopping = True
            return


def _say(message: dict[str, Any]) -> None:
    sys.stdout.write(orjson.dumps(message).decode() + "\n")
    sys.stdout.flush()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/streams.py", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--listing", required=True)
    parser.add_argument("--subscribers", type=int, default=1000)
    return parser.parse_args()


if __name__ == "__main__":
    try:
        import uvloop
    except ImportError:
        asyncio.run(main(parse_args()))
    else:
        uvloop.run(main(parse_args()))
