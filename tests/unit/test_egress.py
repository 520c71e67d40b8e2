"""Which addresses webhooks may reach, and that the connection goes to the address checked."""

import ipaddress
import socket

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from app.webhooks.client import GuardedResolver
from app.webhooks.egress import EgressRefused, literal_address, refusal

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


class FixedResolver(AbstractResolver):
    """Answers every lookup with `answers`, counting the lookups."""

    def __init__(self, *answers: str) -> None:
        self.answers = answers
        self.lookups = 0

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.lookups += 1
        return [
            {"hostname": host, "host": a, "port": port, "proto": 6, "flags": 0,
             "family": socket.AF_INET6 if ":" in a else socket.AF_INET}
            for a in self.answers
        ]

    async def close(self) -> None:
        pass


async def test_only_addresses_that_pass_the_check_are_handed_to_the_connector() -> None:
    resolver = GuardedResolver(allow_private=False)
    resolver._inner = FixedResolver("10.0.0.7", "93.184.215.14", "169.254.169.254")
    found = await resolver.resolve("hooks.example", 443)
    assert [r["host"] for r in found] == ["93.184.215.14"]
    assert found[0]["hostname"] == "hooks.example", "TLS still checks the name"


async def test_a_name_resolving_only_inward_is_refused_before_any_connection() -> None:
    resolver = GuardedResolver(allow_private=False)
    resolver._inner = FixedResolver("10.0.0.7", "::1")
    with pytest.raises(EgressRefused, match=r"refused: private address 10\.0\.0\.7"):
        await resolver.resolve("inward.example", 80)
