"""The auction page in a real browser: Debian's chromium, driven by Playwright, against the
service as a real process. Bids go in through the API; the page must show them from its stream.

Chromium is the system's (`apt-get install chromium`; .ci/run installs it): Playwright's own
browser downloads are never used. Without it this test fails rather than skips.
"""

import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Locator, Page, async_playwright, expect

from tests.e2e.conftest import ADMIN, ADMIN_KEY, ServiceProcess

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
WAIT_MS = 5_000


@pytest.fixture
async def page(tmp_path: Path) -> AsyncIterator[Page]:
    assert os.access(CHROMIUM, os.X_OK), f"no {CHROMIUM}: apt-get install -y chromium"
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True, args=ARGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            opened = await context.new_page()
            errors: list[str] = []
            opened.on("pageerror", lambda error: errors.append(str(error)))
            yield opened
            assert not errors, errors
        finally:
            await context.close()


async def count(locator: Locator, n: int) -> None:
    await expect(locator).to_have_count(n, timeout=WAIT_MS)


async def bid(client: httpx.AsyncClient, listing_id: str, amount: int, rate_bps: int) -> float:
    response = await client.post(
        f"/v1/listings/{listing_id}/bids",
        json={"amount": amount, "min_rate_bps": rate_bps, "lender_id": f"lender-{rate_bps % 40}"},
    )
    assert response.status_code == 201, response.text
    return time.perf_counter()


async def test_a_person_watches_an_auction_move_and_then_sees_the_loan(
    service: ServiceProcess, page: Page
) -> None:
    async with service.client() as client:
        response = await client.post("/v1/listings", json={
            "borrower_id": "bob", "amount": 300_000, "term_months": 12, "max_rate_bps": 2000,
            "grade": "B", "duration_s": 600, "pricing": "uniform",
        })
        assert response.status_code == 201, response.text
        listing_id = response.json()["id"]

        requests: list[tuple[str, str | None]] = []
        page.on("request", lambda r: requests.append((r.url, r.headers.get("authorization"))))
        await page.goto(service.base_url + "/")
        assert await page.locator("#listings tbody tr").count() == 0  # no key yet: nothing read
        await page.fill("#key-input", ADMIN_KEY)
        await page.click("#key-form button")
        await page.click(f'tr[data-listing="{listing_id}"] a', timeout=WAIT_MS)
        await page.wait_for_url(f"**/auctions/{listing_id}")
        assert ADMIN_KEY not in page.url
        await count(page.locator("#events li"), 1)

        delays = []
        expected = [  # after each bid: coverage, rate levels drawn, events listed
            (150_000, 1200, 150_000, 1, 2),
            (100_000, 1500, 250_000, 2, 3),
            (100_000, 1800, 300_000, 3, 4),
            (100_000, 1000, 300_000, 4, 6),  # pushes the 18 % bid out: placed and outbid
        ]
        for amount, rate, covered, levels, events in expected:
            placed_at = await bid(client, listing_id, amount, rate)
            await expect(page.locator("#coverage")).to_have_attribute(
                "data-covered", str(covered), timeout=WAIT_MS
            )
            await count(page.locator("#chart .level"), levels)
            await count(page.locator("#events li"), events)
            delays.append(time.perf_counter() - placed_at)  # at most: `expect` polls the page
        await expect(page.locator("#stat-marginal")).to_have_text("15.00 %")
        await expect(page.locator("#events li").first.locator(".chip")).to_have_text("outbid")
        await count(page.locator("#chart .funding"), 1)
        await count(page.locator("#chart .marginal"), 1)
        print("page updated after each accepted bid (s):", ", ".join(f"{d:.3f}" for d in delays))

        accepted = await client.post(f"/v1/listings/{listing_id}/accept", headers=ADMIN)
        assert accepted.status_code == 200, accepted.text
        await expect(page.locator("#loan")).to_be_visible(timeout=WAIT_MS)
        await count(page.locator("#schedule tbody tr"), 12)
        await count(page.locator("#fills tbody tr"), 3)
        await expect(page.locator("#status")).to_have_text("funded")
        await expect(page.locator("#loan-facts")).to_contain_text("15.00 %")
        await expect(page.locator("#connection")).to_have_text("auction closed", timeout=WAIT_MS)
    assert not [url for url, _ in requests if ADMIN_KEY in url]  # the key never in a URL
    streams = [auth for url, auth in requests if url.endswith(f"/{listing_id}/stream")]
    assert streams and all(auth == f"Bearer {ADMIN_KEY}" for auth in streams)
