"""The HTTP client deliveries go out through: aiohttp, connecting only where egress allows.

The dispatcher imports this module at its first delivery, not at start: aiohttp's import
(~70 ms, most of it its connector's TLS contexts) is the largest a start would otherwise pay
for something most starts never use.
"""

import ipaddress
import socket

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from app.webhooks.egress import EgressRefused, refusal

_READ_LIMIT = 64 * 1024  # a receiver's answer is read this far (to reuse the connection), no more


class GuardedResolver(AbstractResolver):
    """Resolves with getaddrinfo and returns only the addresses that pass the check."""

    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private
        self._inner: AbstractResolver = ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        reasons, allowed = [], []
        for result in await self._inner.resolve(host, port, family):
            address = ipaddress.ip_address(result["host"])
            reason = refusal(address, self.allow_private)
            if reason is None:
                allowed.append(result)
            else:
                reasons.append(f"{reason} {address}")
        if not allowed:
            raise EgressRefused(f"{reasons[0]} ({host})" if reasons else f"no address for {host}")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


class WebhookClient:
    """One session for every delivery, at most `max_in_flight` connections at a time."""

    def __init__(self, max_in_flight: int, timeout_s: float, allow_private: bool) -> None:
        self.timeout_s = timeout_s
        connector = aiohttp.TCPConnector(
            limit=max_in_flight, resolver=GuardedResolver(allow_private)
        )
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=timeout_s),
            auto_decompress=False, skip_auto_headers=("User-Agent",),
        )

    async def post(
        self, url: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int | None, str | None]:
        """One POST; (status, error)."""
        try:
            async with self._session.post(
                url, data=body, headers=headers, allow_redirects=False
            ) as response:
                await _read_a_little(response)
                ok = 200 <= response.status < 300
                return response.status, None if ok else f"HTTP {response.status}"
        except aiohttp.ClientConnectorDNSError as error:
            if isinstance(error.os_error, EgressRefused):
                return None, str(error.os_error)
            return None, f"{type(error).__name__}: {error}"[:500]
        except TimeoutError:
            return None, f"timed out after {self.timeout_s} s"
        except (aiohttp.ClientError, OSError, ValueError) as error:
            return None, f"{type(error).__name__}: {error}"[:500]

    async def close(self) -> None:
        await self._session.close()


async def _read_a_little(response: aiohttp.ClientResponse) -> None:
    """Read a small answer so the connection can be reused; stop at a large one."""
    read = 0
    async for chunk in response.content.iter_chunked(16 * 1024):
        read += len(chunk)
        if read > _READ_LIMIT:
            return
