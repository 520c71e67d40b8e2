"""The e2e helpers report what they are meant to catch (against a scripted HTTP server)."""

from collections import Counter

import httpx
import pytest

from tests.e2e.drive import until_closed

LISTING, LOAN = "listing-1", "loan-1"


def _client(states: list[str], loan_answers: list[int]) -> tuple[httpx.AsyncClient, Counter[str]]:
    """A listing that reads each of `states` in turn (then the last), and a loan that answers
    each of `loan_answers` in turn (then the last)."""
    asked: Counter[str] = Counter()

    def answer(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        asked[path] += 1
        if path == f"/v1/listings/{LISTING}":
            status = states[min(asked[path], len(states)) - 1]
            loan_id = LOAN if status == "funded" else None
            return httpx.Response(200, json={"id": LISTING, "status": status, "loan_id": loan_id})
        code = loan_answers[min(asked[path], len(loan_answers)) - 1]
        return httpx.Response(code, json={"id": LOAN} if code == 200 else {"code": "not_found"})

    client = httpx.AsyncClient(transport=httpx.MockTransport(answer), base_url="http://test")
    return client, asked


async def test_waiting_for_a_close_fails_on_a_funded_listings_loan_that_is_not_found() -> None:
    client, asked = _client(["open", "funded"], [404, 200])
    async with client:
        with pytest.raises(AssertionError, match="its loan loan-1 answers 404"):
            await until_closed(client, LISTING, seconds=5)
    assert asked[f"/v1/loans/{LOAN}"] == 1, "reported at the first 404, not polled past"


async def test_waiting_for_a_close_polls_an_open_listing_and_returns_it_once_closed() -> None:
    client, asked = _client(["open", "open", "funded"], [200])
    async with client:
        closed = await until_closed(client, LISTING, seconds=5)
    assert closed["status"] == "funded"
    assert asked[f"/v1/listings/{LISTING}"] == 3


async def test_waiting_for_a_close_needs_no_loan_for_a_failed_listing() -> None:
    client, asked = _client(["failed"], [404])
    async with client:
        assert (await until_closed(client, LISTING, seconds=5))["status"] == "failed"
    assert asked[f"/v1/loans/{LOAN}"] == 0
