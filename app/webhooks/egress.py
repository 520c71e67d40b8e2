"""Where webhooks may go: by default never inward.

Loopback, private, shared (CGNAT), link-local, multicast, unspecified and reserved addresses are
refused, and cloud metadata addresses always are. The check runs on the addresses actually
connected to: the resolver (`app.webhooks.client.GuardedResolver`) hands aiohttp only addresses
that passed, and aiohttp connects to exactly those (TLS still verifies and sends SNI for the
URL's host name; the Host header is the URL's), so a name that resolves inward, or is rebound
between a check and the connect, cannot reach inside. A URL naming an address literally skips
resolution, so it is checked before the request (`literal_refusal`).
"""

import ipaddress
import socket

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: AWS, GCP, Azure, Oracle (169.254.169.254), AWS ECS (169.254.170.2), AWS IPv6, Alibaba, Azure
#: wire server: refused even where private targets are allowed.
METADATA = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200", "168.63.129.16",
))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class EgressRefused(OSError):
    """The target resolves to no address webhooks may reach; nothing was connected."""


class InvalidURL(ValueError):
    """Not a URL webhooks can be sent to (httpx's reason, as its `InvalidURL` gave it)."""


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


def literal_refusal(url: str, allow_private: bool) -> str | None:
    """Refuse a URL whose host is a literal address webhooks may not reach (raises InvalidURL
    for a URL that is not one)."""
    import httpx  # only here, to parse URLs: its import (~35 ms) stays out of every start

    try:
        host = httpx.URL(url).host
    except httpx.InvalidURL as error:
        raise InvalidURL(str(error)) from None
    address = literal_address(host)
    if address is None:
        return None
    reason = refusal(address, allow_private)
    return None if reason is None else f"{reason} {address}"


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
