"""Baselines for bench/burst.py, each served in its own process.

Default: a trivial FastAPI app with one POST endpoint (the bid path of the real service, so
the load generator sends identical bytes) that parses the JSON body with orjson and returns it
with 201. It is served by `uvicorn.run` with the same flags as `loan-auction serve`.

`--raw`: no framework at all, an asyncio server that answers every HTTP/1.1 request with a
canned 201. It measures the load generator's own ceiling, not a web stack.

    python bench/trivial_app.py --host 127.0.0.1 --port 8001 [--raw]
"""

import argparse
import asyncio
from typing import cast

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response


def create_app() -> FastAPI:
    app = FastAPI(title="trivial baseline")

    @app.post("/v1/listings/{listing_id}/bids", status_code=201)
    async def echo(listing_id: str, request: Request) -> Response:
        body = orjson.loads(await request.body())
        return Response(orjson.dumps(body), 201, media_type="application/json")

    return app


_CANNED = (
    b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
)


class _RawProtocol(asyncio.Protocol):
    """Counts complete requests in the stream (headers + Content-Length body), answers each."""

    def __init__(self) -> None:
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data
        answers = 0
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buffer[:end].lower()
            at = head.find(b"content-length:")
            length = 0
            if at >= 0:
                stop = head.find(b"\r\n", at)
                length = int(head[at + 15: stop if stop >= 0 else len(head)])
            if len(buffer) < end + 4 + length:
                break
            buffer = buffer[end + 4 + length:]
            answers += 1
        self._buffer = buffer
        if answers and self._transport is not None:
            self._transport.write(_CANNED * answers)


async def _serve_raw(host: str, port: int) -> None:
    server = await asyncio.get_running_loop().create_server(_RawProtocol, host, port, backlog=2048)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--raw", action="store_true", help="canned-response asyncio server")
    args = parser.parse_args()
    if args.raw:
        try:
            import uvloop
        except ImportError:
            asyncio.run(_serve_raw(args.host, args.port))
        else:
            uvloop.run(_serve_raw(args.host, args.port))
        return
    import uvicorn

    from app.serving import OneWriteHttpTools

    # The same flags as `loan-auction serve` (app/cli.py), its one-write HTTP protocol included:
    # the baseline gets every saving below the app that the service gets.
    uvicorn.run(create_app(), host=args.host, port=args.port, log_config=None, access_log=False,
                timeout_graceful_shutdown=10, http=OneWriteHttpTools)


if __name__ == "__main__":
    main()
