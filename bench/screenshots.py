"""Screenshots of the live page for the README, taken in Debian's chromium. Run by hand:

    python bench/screenshots.py [--out docs/screenshots]

Starts the service (`loan-auction serve`, embedded PostgreSQL in a temporary folder), opens a
listing, places bids from a few lenders (a fixed seed, so reruns look alike), and photographs,
as the lender `lena` sees it (her own id in full, the others masked): the open auctions, the
auction during the bidding, and after the borrower accepts early, the loan; at 1280 px and at
a phone's 390 px.
"""

import argparse
import asyncio
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.async_api import Page, ViewportSize, async_playwright, expect

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LENDERS = ["lena", "chen", "maria", "olu", "sven", "aiko", "ravi", "zoe"]
DESKTOP = ViewportSize(width=1280, height=900)
PHONE = ViewportSize(width=390, height=844)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def wait_ready(base: str, process: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=2) as client:
        for _ in range(600):
            if process.poll() is not None:
                raise SystemExit(f"the service exited with {process.returncode}")
            try:
                if (await client.get("/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit("the service did not get ready")


async def auction(client: httpx.AsyncClient) -> tuple[str, dict[str, str]]:
    """A listing and bids; returns its id and each lender's key."""
    keys = {}
    for name in LENDERS:
        response = await client.post("/v1/api-keys", json={"role": "lender", "subject": name})
        keys[name] = response.json()["key"]
    response = await client.post("/v1/listings", json={
        "borrower_id": "bob", "amount": 2_500_000, "term_months": 12, "max_rate_bps": 2400,
        "grade": "B", "duration_s": 3 * 3600 + 125, "pricing": "pay_as_bid",
        "min_funding_bps": 8000,
    })
    listing_id = str(response.json()["id"])
    rng = random.Random(20261128)
    marginal = 2400
    for n in range(40):
        lender = rng.choice(LENDERS)
        # the first bids spread over the band; once covered, each undercuts the marginal bid
        top = 2300 if n < 12 else marginal - 25
        rate = rng.randrange(max(900, top - 450), max(925, top), 25)
        bid = {"amount": rng.choice([50_000, 100_000, 150_000, 200_000, 300_000]),
               "min_rate_bps": rate}
        await client.post(f"/v1/listings/{listing_id}/bids", json=bid,
                          headers={"Authorization": f"Bearer {keys[lender]}"})
        listing = (await client.get(f"/v1/listings/{listing_id}")).json()
        marginal = listing["marginal_rate_bps"] or marginal
    return listing_id, keys


async def shoot(page: Page, out: Path, name: str) -> None:
    for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
        await page.set_viewport_size(size)
        await asyncio.sleep(0.4)  # the chart redraws at the new width
        path = out / f"{name}-{label}.png"
        await page.screenshot(path=str(path), full_page=True)
        print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


async def run(base: str, admin: str, out: Path) -> None:
    headers = {"Authorization": f"Bearer {admin}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=10) as client:
        listing_id, keys = await auction(client)
        async with async_playwright() as playwright:
            with tempfile.TemporaryDirectory() as profile:
                context = await playwright.chromium.launch_persistent_context(
                    profile, executable_path=CHROMIUM, headless=True, args=ARGS, viewport=DESKTOP
                )
                page = await context.new_page()
                await page.goto(base + "/")
                await page.fill("#key-input", keys["lena"])
                await page.click("#key-form button")
                await expect(page.locator("#listings tbody tr")).to_have_count(1)
                await page.screenshot(path=str(out / "listings-desktop.png"))
                print(f"wrote {out / 'listings-desktop.png'}")
                await page.goto(f"{base}/auctions/{listing_id}")
                await expect(page.locator("#events li")).to_have_count(40)
                await shoot(page, out, "auction")
                await page.set_viewport_size(DESKTOP)
                accepted = await client.post(f"/v1/listings/{listing_id}/accept")
                assert accepted.status_code == 200, accepted.text
                await expect(page.locator("#schedule tbody tr")).to_have_count(12)
                await shoot(page, out, "closed")
                await context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="loan-auction-shots-"))
    admin = "la_admin_shots_" + os.urandom(8).hex()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOAN_AUCTION_")}
    env.pop("DATABASE_URL", None)
    env.update(LOAN_AUCTION_ADMIN_KEY=admin, LOAN_AUCTION_DATA_DIR=str(tmp / "data"),
               LOAN_AUCTION_RATE_LIMIT_PER_S="0")
    script = Path(sys.executable).parent / "loan-auction"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "app.cli"]
    with (tmp / "service.log").open("wb") as log:
        process = subprocess.Popen(
            [*command, "serve", "--port", str(port)], cwd=ROOT, env=env, stdout=log, stderr=log,
            start_new_session=True,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        asyncio.run(wait_ready(base, process))
        asyncio.run(run(base, admin, args.out))
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        time.sleep(0.2)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
