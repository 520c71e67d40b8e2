"""The `text/event-stream` response: sends a stream's chunks until it ends, the client goes, or
the hub cuts it off.

Two tasks per stream, as Starlette's StreamingResponse has (one sends, one listens for the
disconnect), plus a way out that StreamingResponse lacks: a client that stops reading leaves
the sender stuck in the server's send (flow control), so the hub cancels that task when it
drops the stream. The response is then incomplete and uvicorn closes the connection; the
error uvicorn logs for an incomplete response is expected there and filtered out.
"""

import asyncio
import contextlib
import contextvars
import logging
import time

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from app.live.stream import Stream
from app.live.subscriber import LIVE

log = logging.getLogger(__name__)

_INCOMPLETE = "ASGI callable returned without completing response."
_cut_off: contextvars.ContextVar[bool] = contextvars.ContextVar("stream_cut_off", default=False)

HEADERS = {
    "Cache-Control": "no-store",
    "X-Accel-Buffering": "no",  # nginx and friends: do not buffer the stream
    "Connection": "close",  # once a stream ends (or is dropped) the client reconnects anyway
}


class EventStreamResponse(Response):
    media_type = "text/event-stream"

    def __init__(self, stream: Stream) -> None:
        # As StreamingResponse does: no body attribute, so no Content-Length header.
        self.status_code = 200
        self.background = None
        self.init_headers(HEADERS)
        self.stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sender = asyncio.create_task(self._send_all(send), name="sse-send")
        self.stream.sub.task = sender
        listener = asyncio.create_task(_until_disconnect(receive), name="sse-listen")
        try:
            await asyncio.wait((sender, listener), return_when=asyncio.FIRST_COMPLETED)
        finally:
            listener.cancel()
            if not sender.done():
                sender.cancel()
            await asyncio.gather(sender, listener, return_exceptions=True)
        if sender.cancelled() and self.stream.sub.state != LIVE:  # dropped, or shutting down
            _cut_off.set(True)  # read by the log filter, in this same task's context
        elif not sender.cancelled() and sender.exception() is not None:
            log.warning("event stream failed", extra={"error": repr(sender.exception())})

    async def _send_all(self, send: Send) -> None:
        budget = self.stream.hub.budget
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        async with contextlib.aclosing(self.stream.parts()) as parts:
            async for part in parts:
                if isinstance(part, bytes):
                    await self._send(send, part)
                    continue
                await budget.acquire()
                started = time.thread_time()
                payload = part()
                composed = time.thread_time() - started
                if not payload:
                    budget.spend(composed, 0, True)
                    continue
                waited = _Flag()  # set by the loop only if the send lets it run other tasks
                handle = asyncio.get_running_loop().call_soon(waited.set)
                await self._send(send, payload)
                handle.cancel()
                if waited.value:
                    budget.spend(composed, len(payload), False)
                else:
                    budget.spend(time.thread_time() - started, len(payload), True)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _send(self, send: Send, body: bytes) -> None:
        sub = self.stream.sub
        sub.sending = True
        await send({"type": "http.response.body", "body": body, "more_body": True})
        sub.sending = False
        sub.last_sent = time.monotonic()


class _Flag:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = False

    def set(self) -> None:
        self.value = True


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class CutOffFilter(logging.Filter):
    """Drops uvicorn's 'incomplete response' error for streams the hub cut off on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (_cut_off.get() and record.getMessage() == _INCOMPLETE)
