"""Who may do what: 401 without a valid key, 403 for the wrong role or subject, admin does all.

The first three tests hold the app's route table to `route_matrix.MATRIX`, written by hand:
a route served without a row, or declaring other roles than its row, fails them, and every
caller is sent to every route to see the row hold (refusals with any body, before it is read).
"""

import hashlib
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from app.api.guard import api_routes, route_roles
from tests.integration.conftest import ADMIN, KeyMaker, running_service
from tests.integration.helpers import (
    bid_body,
    get_json,
    listing_body,
    open_listing,
    place_bid,
    problem,
    rows,
)
from tests.integration.live import serving
from tests.integration.route_matrix import (
    BODIES,
    CALLERS,
    MATRIX,
    SELF_GUARDED,
    SUBJECTS,
    Route,
    admitted_roles,
    expected,
)

#: The bid route behaves the same with the fast lane on and off.
pytestmark = pytest.mark.usefixtures("either_lane")


#: Bodies that would each be refused on their own (400, 422) or acted on (a valid one).
ANY_BODY: list[bytes | None] = [None, b"", b"{", b"[]", b'{"amount": -1}', b'{"colour": "red"}']
BAD_HEADERS: list[dict[str, str]] = [
    {}, {"Authorization": "Bearer not-a-key"}, {"Authorization": "Bearer "},
    {"Authorization": "Basic dGVzdC1hZG1pbi1rZXk6"}, {"Authorization": "test-admin-key"},
]
#: Tables a refused request must leave as they were.
WRITTEN = ("listings", "bids", "ledger_entries", "api_keys", "webhook_endpoints",
           "idempotency_keys")


def _routes(app: FastAPI) -> dict[Route, APIRoute]:
    return {(method, route.path): route
            for route in api_routes(app) for method in route.methods or ()}


@pytest.fixture
async def unlimited(database_url: str) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The service without abuse limits: the matrix sends thousands of keyless requests."""
    async with running_service(
        database_url, rate_limit_per_s=0, rate_limit_unauthenticated_per_s=0
    ) as running:
        yield running


async def test_every_route_the_app_serves_has_a_row_for_every_caller_and_its_declared_roles(
    service: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    served = _routes(service[0])
    assert sorted(served.keys() - MATRIX.keys()) == [], "served without a row in route_matrix"
    assert sorted(MATRIX.keys() - served.keys()) == [], "a row for a route no longer served"
    for key, route in served.items():
        assert len(MATRIX[key]) == len(CALLERS), key
        roles = route_roles(route)
        if roles is None:
            assert key in SELF_GUARDED or set(MATRIX[key]) == {"admitted"}, (
                f"{key} declares no roles, so the matrix must open it to every caller")
            continue
        assert set(roles) == admitted_roles(key), f"{key} declares {roles}"
        assert expected(key, "no key") == "unauthorized", key


async def test_every_caller_the_matrix_refuses_is_refused_whatever_the_body(
    unlimited: tuple[FastAPI, httpx.AsyncClient], database_url: str,
) -> None:
    client = unlimited[1]
    keys = {role: await _mint(client, role) for role in ("borrower", "lender")}
    ids = await _resources(client, ADMIN)
    before = await _counts(database_url)
    checked = 0
    for method, template in MATRIX:
        for caller in CALLERS:
            outcome = expected((method, template), caller)
            if outcome == "admitted":
                continue
            path = _path(template, ids, SUBJECTS[caller])
            for headers in BAD_HEADERS if caller == "no key" else [keys[caller]]:
                for body in ANY_BODY:
                    response = await client.request(
                        method, path, content=body,
                        headers={**headers, "Content-Type": "application/json"},
                    )
                    problem(response, 403 if outcome == "forbidden_role" else 401, outcome)
                    checked += 1
    assert checked > 1_000
    assert await _counts(database_url) == before, "a refused request changed something"


async def test_every_caller_the_matrix_admits_gets_past_the_guard(database_url: str) -> None:
    """A real server, so that an admitted stream answers its headers while it stays open."""
    async with serving(database_url, rate_limit_unauthenticated_per_s=0) as running:
        client = running.client
        headers = {"admin": ADMIN, "no key": {}}
        for role in ("borrower", "lender"):
            headers[role] = await _mint(client, role)
        ids = await _resources(client, ADMIN)
        admitted = 0
        for method, template in MATRIX:
            for caller in CALLERS:
                if expected((method, template), caller) != "admitted":
                    continue
                path = _path(template, ids, SUBJECTS[caller])
                async with client.stream(method, path, headers=headers[caller],
                                         json=BODIES.get((method, template))) as response:
                    assert response.status_code not in (401, 403), (
                        method, path, caller, await response.aread())
                    assert response.status_code < 500, (method, path, caller)
                admitted += 1
        assert admitted == sum(o == "admitted" for row in MATRIX.values() for o in row)


async def _resources(client: httpx.AsyncClient, admin: dict[str, str]) -> dict[str, str]:
    """One of everything a path can name, so a refusal is never a 404 in disguise."""
    listing = await open_listing(client, admin, duration_s=3600)
    bid = await place_bid(client, listing["id"], 10_000, 1000, admin)
    funded = await open_listing(client, admin, amount=100_000, close_when_funded=True)
    await place_bid(client, funded["id"], 100_000, 1000, admin)
    loan_id = (await get_json(client, f"/v1/listings/{funded['id']}", admin))["loan_id"]
    spare = await client.post("/v1/api-keys", headers=admin,
                              json={"role": "lender", "subject": "spare"})
    endpoint = await client.post("/v1/webhook-endpoints", headers=admin,
                                 json={"url": "https://hooks.invalid/matrix"})
    assert endpoint.status_code == 201, endpoint.text
    order = await client.post("/v1/standing-orders", headers=admin,
                              json=BODIES[("POST", "/v1/standing-orders")])
    assert order.status_code == 201, order.text
    event = (await get_json(client, "/v1/events", admin))["data"][0]
    return {"listing_id": listing["id"], "bid_id": bid["id"], "loan_id": loan_id,
            "key_id": spare.json()["id"], "endpoint_id": endpoint.json()["id"],
            "event_id": event["id"], "order_id": order.json()["id"]}


async def _mint(client: httpx.AsyncClient, role: str) -> dict[str, str]:
    minted = await client.post("/v1/api-keys", headers=ADMIN,
                               json={"role": role, "subject": SUBJECTS[role]})
    assert minted.status_code == 201, minted.text
    return {"Authorization": f"Bearer {minted.json()['key']}"}


def _path(template: str, ids: dict[str, str], subject: str) -> str:
    """The route's path naming real resources, and the caller's own account and bids."""
    values = {**ids, "lender_id": subject, "account_id": subject}
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], template)


async def _counts(database_url: str) -> dict[str, int]:
    return {table: len(await rows(database_url, f"SELECT 1 FROM {table}")) for table in WRITTEN}


async def test_a_borrower_cannot_bid(client: httpx.AsyncClient, make_key: KeyMaker) -> None:
    listing = await open_listing(client)
    bob = await make_key("borrower", "bob")
    response = await client.post(f"/v1/listings/{listing['id']}/bids", headers=bob,
                                 json=bid_body(10_000, 1000, "bob"))
    problem(response, 403, "forbidden_role")


async def test_a_lender_cannot_open_listings(client: httpx.AsyncClient, make_key: KeyMaker) -> None:
    lena = await make_key("lender", "lena")
    body = listing_body(borrower_id="lena")
    response = await client.post("/v1/listings", headers=lena, json=body)
    problem(response, 403, "forbidden_role")


async def test_a_borrower_cannot_open_a_listing_for_another_borrower(
    client: httpx.AsyncClient, make_key: KeyMaker, database_url: str
) -> None:
    bob = await make_key("borrower", "bob")
    response = await client.post("/v1/listings", headers=bob, json=listing_body(borrower_id="eve"))
    problem(response, 403, "forbidden_subject")
    assert await rows(database_url, "SELECT id FROM listings") == []


async def test_a_lender_cannot_bid_in_another_lenders_name(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    listing = await open_listing(client)
    lena = await make_key("lender", "lena")
    response = await client.post(f"/v1/listings/{listing['id']}/bids", headers=lena,
                                 json=bid_body(10_000, 1000, "otto"))
    problem(response, 403, "forbidden_subject")
    await place_bid(client, listing["id"], 10_000, 1000, lena, lender_id="lena")


async def test_only_the_owning_borrower_or_an_admin_accepts_or_cancels(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    bob = await make_key("borrower", "bob")
    eve = await make_key("borrower", "eve")
    lena = await make_key("lender", "lena")
    listing = await open_listing(client, bob, min_funding_bps=1)
    await place_bid(client, listing["id"], 10_000, 1000)
    for action in ("accept", "cancel"):
        path = f"/v1/listings/{listing['id']}/{action}"
        problem(await client.post(path, headers=eve), 403, "forbidden_subject")
        problem(await client.post(path, headers=lena), 403, "forbidden_role")
    assert (await get_json(client, f"/v1/listings/{listing['id']}"))["status"] == "open"
    accepted = await client.post(f"/v1/listings/{listing['id']}/accept", headers=bob)
    assert accepted.status_code == 200, accepted.text
    # Once closed, another borrower still learns nothing but 403 about it.
    problem(await client.post(f"/v1/listings/{listing['id']}/cancel", headers=eve),
            403, "forbidden_subject")


async def test_a_lender_cannot_read_another_lenders_bids(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    listing = await open_listing(client)
    bid = await place_bid(client, listing["id"], 10_000, 1000, lender_id="lena")
    otto = await make_key("lender", "otto")
    problem(await client.get(f"/v1/bids/{bid['id']}", headers=otto), 403, "forbidden_subject")
    problem(await client.get("/v1/lenders/lena/bids", headers=otto), 403, "forbidden_subject")
    assert (await get_json(client, "/v1/lenders/otto/bids", otto))["data"] == []


async def test_a_borrower_cannot_read_a_lenders_bids_even_under_the_same_subject(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    listing = await open_listing(client)
    bid = await place_bid(client, listing["id"], 10_000, 1000, lender_id="lena")
    borrower_lena = await make_key("borrower", "lena")
    problem(await client.get(f"/v1/bids/{bid['id']}", headers=borrower_lena),
            403, "forbidden_role")
    problem(await client.get("/v1/lenders/lena/bids", headers=borrower_lena),
            403, "forbidden_role")


async def test_a_lender_reads_its_own_bids_and_any_key_reads_listings_books_and_loans(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    listing = await open_listing(client, amount=100_000, close_when_funded=True)
    bid = await place_bid(client, listing["id"], 100_000, 1000, lender_id="lena")
    lena = await make_key("lender", "lena")
    assert (await get_json(client, f"/v1/bids/{bid['id']}", lena))["id"] == bid["id"]
    assert len((await get_json(client, "/v1/lenders/lena/bids", lena))["data"]) == 1
    loan_id = (await get_json(client, f"/v1/listings/{listing['id']}"))["loan_id"]
    for headers in (lena, await make_key("borrower", "eve"), await make_key("lender", "otto")):
        for path in ("/v1/listings", f"/v1/listings/{listing['id']}",
                     f"/v1/listings/{listing['id']}/bids", f"/v1/listings/{listing['id']}/book",
                     f"/v1/loans/{loan_id}"):
            await get_json(client, path, headers)


async def test_an_admin_can_do_everything(client: httpx.AsyncClient) -> None:
    listing = await open_listing(client, ADMIN, borrower_id="bob", min_funding_bps=1)
    bid = await place_bid(client, listing["id"], 10_000, 1000, ADMIN, lender_id="lena")
    for path in (f"/v1/listings/{listing['id']}", f"/v1/listings/{listing['id']}/bids",
                 f"/v1/listings/{listing['id']}/book", f"/v1/bids/{bid['id']}",
                 "/v1/lenders/lena/bids", "/v1/events", "/v1/listings"):
        await get_json(client, path, ADMIN)
    accepted = await client.post(f"/v1/listings/{listing['id']}/accept", headers=ADMIN)
    assert accepted.status_code == 200, accepted.text
    await get_json(client, f"/v1/loans/{accepted.json()['loan_id']}", ADMIN)
    other = await open_listing(client, ADMIN, borrower_id="carl")
    cancelled = await client.post(f"/v1/listings/{other['id']}/cancel", headers=ADMIN)
    assert cancelled.status_code == 200, cancelled.text


async def test_the_event_log_is_for_admins_only(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    await open_listing(client)
    for headers in (await make_key("borrower", "bob"), await make_key("lender", "lena")):
        problem(await client.get("/v1/events", headers=headers), 403, "forbidden_role")
    problem(await client.get("/v1/events"), 401, "unauthorized")
    assert len((await get_json(client, "/v1/events", ADMIN))["data"]) == 1


async def test_only_an_admin_mints_keys_and_only_their_hash_is_stored(
    client: httpx.AsyncClient, make_key: KeyMaker, database_url: str
) -> None:
    lena = await make_key("lender", "lena")
    for headers in (lena, await make_key("borrower", "bob")):
        response = await client.post("/v1/api-keys", headers=headers,
                                     json={"role": "admin", "subject": "me"})
        problem(response, 403, "forbidden_role")
    response = await client.post("/v1/api-keys", headers=ADMIN,
                                 json={"role": "borrower", "subject": "carl"})
    assert response.status_code == 201, response.text
    minted = response.json()
    assert (minted["role"], minted["subject"]) == ("borrower", "carl")
    assert minted["key"]
    stored = await rows(database_url, "SELECT * FROM api_keys WHERE subject = 'carl'")
    assert len(stored) == 1
    assert bytes(stored[0]["key_hash"]) == hashlib.sha256(minted["key"].encode()).digest()
    assert minted["key"] not in {str(v) for v in stored[0].values()}
    carl = {"Authorization": f"Bearer {minted['key']}"}
    listing = await open_listing(client, carl, borrower_id=None)
    assert listing["borrower_id"] == "carl", "the new key works at once"
    problem(await client.post("/v1/api-keys", headers=ADMIN,
                              json={"role": "auditor", "subject": "x"}), 422, "validation_error")


async def test_only_an_admin_lists_or_revokes_keys(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    minted = await client.post("/v1/api-keys", headers=ADMIN,
                               json={"role": "lender", "subject": "lena"})
    lena = {"Authorization": f"Bearer {minted.json()['key']}"}
    for headers in (lena, await make_key("borrower", "bob")):
        problem(await client.get("/v1/api-keys", headers=headers), 403, "forbidden_role")
        problem(await client.delete(f"/v1/api-keys/{minted.json()['id']}", headers=headers),
                403, "forbidden_role")
    assert (await client.get("/v1/lenders/lena/bids", headers=lena)).status_code == 200
    listed = (await get_json(client, "/v1/api-keys", ADMIN))["data"]
    assert all(key["revoked_at"] is None for key in listed)
