"""Where webhooks may go: by default never inward.

Loopback, private, shared (CGNAT), link-local, multicast, unspecified and reserved addresses are
refused, and cloud metadata addresses always are. The check runs on the address actually
connected to: the host is resolved once, the result checked, and the connection made to that
checked address (TLS still verifies and sends SNI for the URL's host name), so a name that
resolves inward, or is rebound between a check and the connect, cannot reach inside.
"""

import asyncio
import ipaddress
import socket
from typing import Any

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: AWS, GCP, Azure, Oracle (169.254.169.254), AWS ECS (169.254.170.2), AWS IPv6, Alibaba, Azure
#: wire server: refused even where private targets are allowed.
METADATA = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200", "168.63.129.16",
))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class EgressRefused(httpcore.ConnectError):
    """The target resolves to an address webhooks may not reach; nothing was connected."""


def refusal(address: IPAddress, allow_private: bool) -> str | None:
    """Why a webhook may not go to `address`, or None when it may."""
    candidates = [address, *_embedded_ipv4(address)]
    if any(a in METADATA for a in candidates):
        return "refused: cloud metadata address"
    if allow_private:
        return None
    if any(not a.is_global or a.is_multicast for a in candidates):
        return "refused: private address"
    return None


def literal_address(host: str) -> IPAddress | None:
    """The address a URL's host names literally (including forms like `127.1` or `0x7f.1` that
    resolvers accept), or None for a DNS name."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if host and all(c in "0123456789abcdefxABCDEFX." for c in host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def url_refusal(url: str, allow_private: bool) -> str | None:
    """At creation: refuse a URL whose host is a literal address webhooks may not reach."""
    address = literal_address(httpx.URL(url).host)
    return None if address is None else refusal(address, allow_private)


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to resolved addresses that pass the check."""

    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self, host: str, port: int, timeout: float | None = None,
        local_address: str | None = None, socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        address = await self.checked_address(host, port)
        return await self._inner.connect_tcp(
            str(address), port, timeout, local_address, socket_options
        )

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.AsyncNetworkStream:
        raise EgressRefused("refused: unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)

    async def checked_address(self, host: str, port: int) -> IPAddress:
        """The first address `host` resolves to that may be reached; refused when none may."""
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except socket.gaierror as error:
            raise httpcore.ConnectError(f"cannot resolve {host}: {error}") from None
        reasons = []
        for info in infos:
            address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
            reason = refusal(address, self.allow_private)
            if reason is None:
                return address
            reasons.append(f"{reason} {address}")
        raise EgressRefused(f"{reasons[0]} ({host})" if reasons else f"no address for {host}")


def _embedded_ipv4(address: IPAddress) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address carries (mapped, 6to4, Teredo, NAT64): checked too."""
    if isinstance(address, ipaddress.IPv4Address):
        return []
    found = [address.ipv4_mapped, address.sixtofour]
    if address.teredo:
        found.append(address.teredo[1])
    if address in _NAT64:
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return [a for a in found if a is not None]
