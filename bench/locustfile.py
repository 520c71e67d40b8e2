"""Locust load test: bursts of lenders piling onto a few listings near their deadline.

    LOAN_AUCTION_ADMIN_KEY=... locust -f bench/locustfile.py --host http://127.0.0.1:8000 \\
        --headless -u 64 -r 16 -t 60s --csv bench/results/locust

Every simulated lender bids through the one admin key, so start the service with the per-key
rate limit off (`LOAN_AUCTION_RATE_LIMIT_PER_S=0`), or the load measures 429s.

Each simulated lender bids on the open listing closest to its deadline most of the time (the
burst), sometimes on another; listings are re-opened as they close, so the burst repeats.
"""

import os
import random
import threading
import time
import uuid
from typing import Any

from locust import HttpUser, between, events, task

ADMIN = {"Authorization": f"Bearer {os.environ.get('LOAN_AUCTION_ADMIN_KEY', 'change-me')}"}
LISTINGS = int(os.environ.get("LOCUST_LISTINGS", "4"))
WINDOW_S = int(os.environ.get("LOCUST_WINDOW_S", "30"))

_lock = threading.Lock()
_open: dict[str, float] = {}  # listing id -> closes_at (epoch seconds)


def _open_listing(client: Any) -> None:
    response = client.post("/v1/listings", headers=ADMIN, name="/v1/listings", json={
        "borrower_id": "locust-borrower", "amount": 50_000_000, "term_months": 12,
        "max_rate_bps": 3600, "grade": "B", "duration_s": WINDOW_S, "pricing": "uniform",
    })
    if response.status_code == 201:
        with _lock:
            _open[response.json()["id"]] = time.time() + WINDOW_S


@events.test_start.add_listener  # type: ignore[untyped-decorator]
def _seed(environment: Any, **kwargs: Any) -> None:
    import requests

    session = requests.Session()
    session.headers.update(ADMIN)

    class _Client:
        def post(self, path: str, **kwargs: Any) -> Any:
            kwargs.pop("name", None)
            return session.post(environment.host + path, **kwargs)

    for _ in range(LISTINGS):
        _open_listing(_Client())


class Lender(HttpUser):
    wait_time = between(0.005, 0.05)

    def on_start(self) -> None:
        self.lender_id = f"locust-{uuid.uuid4().hex[:10]}"

    @task
    def bid(self) -> None:
        with _lock:
            now = time.time()
            for listing_id in [k for k, closes in _open.items() if closes <= now]:
                del _open[listing_id]
            live = sorted(_open.items(), key=lambda item: item[1])
        if len(live) < LISTINGS:
            _open_listing(self.client)
        if not live:
            return
        listing_id = live[0][0] if random.random() < 0.8 else random.choice(live)[0]
        with self.client.post(
            f"/v1/listings/{listing_id}/bids",
            headers=ADMIN,
            name="/v1/listings/{id}/bids",
            json={
                "amount": random.randint(5_000, 50_000),
                "min_rate_bps": random.randint(500, 3600),
                "lender_id": self.lender_id,
            },
            catch_response=True,
        ) as response:
            if response.status_code in (201, 409):
                response.success()  # outbid-by-design answers are part of the game
