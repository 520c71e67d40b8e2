"""Which addresses webhooks may reach, and that the connection goes to the address checked."""

import asyncio
import ipaddress
import socket
from typing import Any

import httpcore
import pytest

from app.webhooks.egress import EgressRefused, GuardedBackend, literal_address, refusal

INWARD = [
    "127.0.0.1", "127.8.9.10", "10.1.2.3", "172.16.0.1", "192.168.1.1", "100.64.0.1",
    "169.254.1.1", "0.0.0.0", "224.0.0.1", "239.1.2.3", "240.0.0.1", "255.255.255.255",
    "::1", "::", "fe80::1", "fc00::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
    "2002:7f00:1::1",  # 6to4 wrapping 127.0.0.1
]
METADATA = ["169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200",
            "168.63.129.16", "64:ff9b::a9fe:a9fe"]  # the last: NAT64 for 169.254.169.254
PUBLIC = ["93.184.215.14", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"]


@pytest.mark.parametrize("address", INWARD)
def test_inward_addresses_are_refused_unless_private_targets_are_allowed(address: str) -> None:
    ip = ipaddress.ip_address(address)
    assert refusal(ip, allow_private=False) == "refused: private address"
    assert refusal(ip, allow_private=True) is None


@pytest.mark.parametrize("address", METADATA)
def test_cloud_metadata_addresses_are_always_refused(address: str) -> None:
    ip = ipaddress.ip_address(address)
    assert refusal(ip, allow_private=False) == "refused: cloud metadata address"
    assert refusal(ip, allow_private=True) == "refused: cloud metadata address"


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed(address: str) -> None:
    assert refusal(ipaddress.ip_address(address), allow_private=False) is None


@pytest.mark.parametrize(("host", "address"), [
    ("127.0.0.1", "127.0.0.1"), ("[::1]", "::1"), ("127.1", "127.0.0.1"),
    ("0x7f.1", "127.0.0.1"), ("2130706433", "127.0.0.1"), ("example.com", None),
    ("cafe.example", None), ("localhost", None),
])
def test_a_host_names_an_address_literally_in_every_form_a_resolver_accepts(
    host: str, address: str | None
) -> None:
    found = literal_address(host)
    assert (None if found is None else str(found)) == address


class RecordingBackend(httpcore.AsyncNetworkBackend):
    def __init__(self) -> None:
        self.connected: list[str] = []

    async def connect_tcp(self, host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        self.connected.append(host)
        return object()


def resolving(monkeypatch: pytest.MonkeyPatch, *answers: str) -> list[str]:
    """Make the event loop's resolver answer `answers`, each lookup one after the other."""
    asked: list[str] = []

    async def getaddrinfo(self: Any, host: str, port: int, **kwargs: Any) -> Any:
        asked.append(host)
        address = answers[min(len(asked), len(answers)) - 1]
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", getaddrinfo)
    return asked


async def test_the_connection_goes_to_the_address_that_was_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Resolve once, check, connect to that address: a rebinding resolver that would answer
    127.0.0.1 on a second lookup never gets one."""
    asked = resolving(monkeypatch, "93.184.215.14", "127.0.0.1")
    backend = GuardedBackend(allow_private=False)
    inner = RecordingBackend()
    backend._inner = inner  # type: ignore[assignment]
    await backend.connect_tcp("hooks.example", 443)
    assert asked == ["hooks.example"]
    assert inner.connected == ["93.184.215.14"]


async def test_a_name_resolving_inward_is_refused_before_any_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    resolving(monkeypatch, "10.0.0.7")
    backend = GuardedBackend(allow_private=False)
    inner = RecordingBackend()
    backend._inner = inner  # type: ignore[assignment]
    with pytest.raises(EgressRefused, match=r"refused: private address 10\.0\.0\.7"):
        await backend.connect_tcp("inward.example", 80)
    assert inner.connected == []
