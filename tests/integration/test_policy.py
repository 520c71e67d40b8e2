"""Grade policy from configuration: the table shown at /v1/policy, floors, the lender share cap,
the borrower limit, and an open listing keeping the policy it opened under across a change."""

from pathlib import Path

import httpx
import pytest

from app.policy import PolicyError, load_grade_policies
from tests.integration.conftest import ADMIN, running_service
from tests.integration.helpers import (
    bid_body,
    get_json,
    listing_body,
    open_listing,
    problem,
    wait_until_closed,
)


def policy_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return path


async def test_the_policy_route_shows_the_table_and_the_market_wide_limits(
    client: httpx.AsyncClient,
) -> None:
    policy = await get_json(client, "/v1/policy")
    assert policy["grades"]["HR"] == {"min_rate_bps": 0, "service_fee_bps": 0, "reserve_bps": 500}
    assert (policy["max_lender_share_bps"], policy["borrower_limit"]) == (10_000, 0)
    assert policy["autobid_max_share_bps"] == 8_000


async def test_a_listing_and_a_bid_below_the_grade_floor_are_refused(
    database_url: str, tmp_path: Path
) -> None:
    path = policy_file(tmp_path, "[grades.A]\nmin_rate_bps = 800\nservice_fee_bps = 100\n")
    async with running_service(database_url, policy_file=path) as (_, client):
        low = await client.post("/v1/listings", headers=ADMIN,
                                json=listing_body(grade="A", max_rate_bps=799))
        assert problem(low, 422, "rate_below_grade_floor")["errors"][0]["field"] == "max_rate_bps"
        listing = await open_listing(client, grade="A", max_rate_bps=2000)
        assert listing["policy"] == {
            "min_rate_bps": 800, "service_fee_bps": 100, "reserve_bps": 100,
            "max_lender_share_bps": 10_000, "autobid_max_share_bps": 8_000,
        }, "a grade's fields left out of the file keep their defaults"
        path_bids = f"/v1/listings/{listing['id']}/bids"
        below = await client.post(path_bids, headers=ADMIN, json=bid_body(10_000, 799))
        problem(below, 422, "rate_below_grade_floor")
        at_floor = await client.post(path_bids, headers=ADMIN, json=bid_body(10_000, 800))
        assert at_floor.status_code == 201, at_floor.text


async def test_one_lender_cannot_hold_more_than_the_share_cap_of_a_listing(
    database_url: str,
) -> None:
    async with running_service(database_url, max_lender_share_bps=2_500) as (_, client):
        listing = await open_listing(client, amount=400_000)
        path = f"/v1/listings/{listing['id']}/bids"
        assert (await client.post(path, headers=ADMIN, json=bid_body(100_000, 1500))).is_success
        over = await client.post(path, headers=ADMIN, json=bid_body(5_000, 1400))
        problem(over, 409, "lender_share_exceeded")
        other = await client.post(path, headers=ADMIN, json=bid_body(100_000, 1500, "leo"))
        assert other.status_code == 201, other.text


async def test_a_borrower_cannot_ask_for_more_than_the_borrower_limit(database_url: str) -> None:
    async with running_service(database_url, borrower_limit=500_000) as (_, client):
        await open_listing(client, amount=300_000)
        over = await client.post("/v1/listings", headers=ADMIN, json=listing_body(amount=200_001))
        problem(over, 409, "borrower_limit_exceeded")
        await open_listing(client, amount=200_000)


async def test_an_open_listing_keeps_its_policy_when_the_table_changes(
    database_url: str, tmp_path: Path
) -> None:
    before = policy_file(tmp_path, "[grades.A]\nreserve_bps = 100\nservice_fee_bps = 50\n")
    async with running_service(database_url, policy_file=before) as (_, client):
        listing = await open_listing(client, grade="A", amount=200_000, duration_s=2)
        path = f"/v1/listings/{listing['id']}/bids"
        assert (await client.post(path, headers=ADMIN, json=bid_body(200_000, 1500))).is_success
    after = tmp_path / "after.toml"
    after.write_text("[grades.A]\nreserve_bps = 900\nservice_fee_bps = 300\n")
    async with running_service(database_url, policy_file=after, fund_lenders=False) as (
        _, client
    ):
        assert (await get_json(client, "/v1/policy"))["grades"]["A"]["reserve_bps"] == 900
        closed = await wait_until_closed(client, listing["id"], database_url)
        assert closed["policy"]["reserve_bps"] == 100
        loan = await get_json(client, f"/v1/loans/{closed['loan_id']}")
        assert (loan["service_fee"], loan["reserve_contribution"]) == (1_000, 2_000)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[grades.A]\nservice_fee_bps = 10001\n", "grades.A.service_fee_bps"),
        ("[grades.B]\nreserve_bps = -1\n", "grades.B.reserve_bps"),
        ("[grades.C]\nservice_fee_bps = 6000\nreserve_bps = 4000\n", "grades.C"),
        ("[grades.D]\nmin_rate_bps = 3601\n", "grades.D.min_rate_bps"),
        ("[grades.Z]\nreserve_bps = 1\n", "grades.Z"),
        ("[grades.A]\nreserve = 1\n", "grades.A.reserve"),
        ("[grades.A]\nreserve_bps = 1.5\n", "grades.A.reserve_bps"),
        ("[grades.A\nreserve_bps = 1\n", "does not parse"),
    ],
)
def test_a_bad_policy_file_is_refused_naming_the_field(
    tmp_path: Path, text: str, named: str
) -> None:
    with pytest.raises(PolicyError, match=named.replace(".", r"\.")):
        load_grade_policies(policy_file(tmp_path, text), legal_rate_cap_bps=3_600)
