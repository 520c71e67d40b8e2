"""The service's uvicorn protocol (`app.serving`) answers as uvicorn's own does, on a real
socket: bodies whole, streamed bodies in order, empty bodies, several requests on one
connection."""

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.responses import Response, StreamingResponse

from app.serving import HeldHeads, OneWriteHttpTools


def _app() -> FastAPI:
    app = FastAPI()

    @app.post("/echo", status_code=201)
    async def echo(body: dict[str, int]) -> dict[str, int]:
        return body

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def parts() -> AsyncIterator[bytes]:
            for n in range(3):
                await asyncio.sleep(0.01)  # the head goes out alone, then each part
                yield b"part %d\n" % n

        return StreamingResponse(parts(), media_type="text/plain")

    @app.delete("/empty", status_code=204)
    async def empty() -> Response:
        return Response(status_code=204)

    return app


async def test_the_one_write_protocol_serves_whole_streamed_and_empty_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The protocol swaps uvicorn's `self.transport`, an internal: if uvicorn stops writing
    # through it, the answers still come but no longer through `HeldHeads`. Fail loudly then.
    through: list[bytes] = []
    write = HeldHeads.write

    def recorded(held: HeldHeads, data: bytes) -> None:
        through.append(data)
        write(held, data)

    monkeypatch.setattr(HeldHeads, "write", recorded)
    config = uvicorn.Config(_app(), host="127.0.0.1", port=0, http=OneWriteHttpTools,
                            log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        for _ in range(500):
            if server.started:
                break
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for n in range(20):  # one kept-alive connection
                answer = await client.post("/echo", json={"n": n})
                assert (answer.status_code, answer.json()) == (201, {"n": n})
            streamed = await client.get("/stream")
            assert streamed.text == "part 0\npart 1\npart 2\n"
            empty = await client.delete("/empty")
            assert (empty.status_code, empty.content) == (204, b"")
            head = await client.head("/stream")
            assert head.status_code == 405
        heads = [data for data in through if data.startswith(b"HTTP/1.1 201 ")]
        assert len(heads) == 20, "uvicorn no longer writes through the protocol's transport"
        # A client that waits for `100 Continue` before it sends the body gets it, then the
        # answer (the interim head is held at most one turn of the loop).
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                     b"content-length: 7\r\nexpect: 100-continue\r\n\r\n")
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b'{"n":7}')
        final = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert final.startswith(b"HTTP/1.1 201 "), final
        assert await asyncio.wait_for(reader.readexactly(7), 10) == b'{"n":7}'
        writer.close()
        await writer.wait_closed()
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 10)
