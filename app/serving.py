"""uvicorn's HTTP protocol with a response's head and body sent in one write.

uvicorn writes the head of a response when the app sends `http.response.start`, and the body
at `http.response.body`: two socket writes, two TCP segments and two wake-ups of the reader,
for a response the app sends in one go. Here the transport holds a head until the next write
on it (the body, sent in the same turn of the loop), or until the end of that turn when nothing
follows (a streamed or empty body), so each write goes out unchanged and in order; `close`
and `write_eof` send a held head first. Measured with a bare ASGI app under wrk -c64: 20.1 ->
17.9 µs of server CPU a request (BENCHMARKS.md, issue 14 third pass).
"""

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class HeldHeads:
    """A transport that holds a response head (a write starting `HTTP/` and ending with the
    blank line) until the next write or the end of the loop's turn. Everything else is the
    wrapped transport's."""

    __slots__ = ("_transport", "_loop", "_head")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._head: bytes | None = None

    def write(self, data: bytes) -> None:
        head = self._head
        if head is not None:
            self._head = None
            self._transport.write(head + data)
        elif data[:5] == b"HTTP/" and data[-4:] == b"\r\n\r\n":
            self._head = data
            self._loop.call_soon(self.flush)
        else:
            self._transport.write(data)

    def writelines(self, lines: Any) -> None:
        self.write(b"".join(lines))

    def flush(self) -> None:
        head, self._head = self._head, None
        if head is not None and not self._transport.is_closing():
            self._transport.write(head)

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._head = None
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class OneWriteHttpTools(HttpToolsProtocol):
    """`uvicorn.Config(http=OneWriteHttpTools)`: httptools, with `HeldHeads` on each connection."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = HeldHeads(transport, self.loop)  # type: ignore[assignment]
