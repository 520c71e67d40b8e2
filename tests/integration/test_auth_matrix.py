"""Who may do what: 401 without a valid key, 403 for the wrong role or subject, admin does all."""

import hashlib
from uuid import uuid4

import httpx
import pytest
from fastapi import FastAPI

from app.api.guard import api_routes, route_roles
from tests.integration.conftest import ADMIN, KeyMaker
from tests.integration.helpers import (
    bid_body,
    get_json,
    listing_body,
    open_listing,
    place_bid,
    problem,
    rows,
)

#: The bid route behaves the same with the fast lane on and off.
pytestmark = pytest.mark.usefixtures("either_lane")


def _every_route(listing_id: str, bid_id: str, loan_id: str) -> list[tuple[str, str, object]]:
    return [
        ("GET", "/v1/listings", None),
        ("POST", "/v1/listings", listing_body()),
        ("GET", f"/v1/listings/{listing_id}", None),
        ("POST", f"/v1/listings/{listing_id}/bids", bid_body(10_000, 1000)),
        ("GET", f"/v1/listings/{listing_id}/bids", None),
        ("GET", f"/v1/listings/{listing_id}/book", None),
        ("POST", f"/v1/listings/{listing_id}/accept", None),
        ("POST", f"/v1/listings/{listing_id}/cancel", None),
        ("GET", f"/v1/bids/{bid_id}", None),
        ("GET", "/v1/lenders/lena/bids", None),
        ("GET", f"/v1/loans/{loan_id}", None),
        ("GET", "/v1/events", None),
        ("POST", "/v1/api-keys", {"role": "lender", "subject": "x"}),
        ("GET", "/v1/api-keys", None),
        ("DELETE", f"/v1/api-keys/{uuid4()}", None),
        ("GET", "/metrics", None),
    ]


async def test_every_endpoint_needs_a_valid_bearer_key(
    client: httpx.AsyncClient, database_url: str
) -> None:
    listing = await open_listing(client)
    bid = await place_bid(client, listing["id"], 10_000, 1000)
    bad_headers: list[dict[str, str]] = [
        {}, {"Authorization": "Bearer not-a-key"}, {"Authorization": "Bearer "},
        {"Authorization": "Basic dGVzdC1hZG1pbi1rZXk6"}, {"Authorization": "test-admin-key"},
    ]
    for method, path, body in _every_route(listing["id"], bid["id"], str(uuid4())):
        for headers in bad_headers:
            response = await client.request(method, path, headers=headers, json=body)
            problem(response, 401, "unauthorized")
    assert len(await rows(database_url, "SELECT id FROM listings")) == 1, "nothing was done"
    assert len(await rows(database_url, "SELECT id FROM bids")) == 1


ROLES = ("admin", "borrower", "lender")
#: Bodies that would each be refused on their own (400, 422) or acted on (a valid one).
BODIES: list[bytes | None] = [None, b"", b"{", b"[]", b'{"amount": -1}', b'{"colour": "red"}']


async def test_every_route_refuses_a_role_it_does_not_admit_with_403_whatever_the_body(
    service: tuple[FastAPI, httpx.AsyncClient], make_key: KeyMaker, database_url: str
) -> None:
    app, client = service
    listing = await open_listing(client)
    keys = {role: await make_key(role, "someone") for role in ("borrower", "lender")}
    checked = 0
    for route in api_routes(app):
        roles = route_roles(route)
        if not route.path.startswith("/v1/"):
            assert roles is None, route.path
            continue
        assert roles, f"{route.path} declares no roles"
        path = route.path.replace("{listing_id}", listing["id"]).replace("{", "").replace("}", "")
        for role in set(keys) - set(roles):
            for method in route.methods or ():
                for body in BODIES:
                    headers = {**keys[role], "Content-Type": "application/json"}
                    response = await client.request(method, path, headers=headers, content=body)
                    problem(response, 403, "forbidden_role")
                    checked += 1
    assert checked > 50
    assert len(await rows(database_url, "SELECT id FROM listings")) == 1, "nothing was done"
    assert await rows(database_url, "SELECT id FROM bids") == []


async def test_without_a_valid_key_any_body_gets_401(client: httpx.AsyncClient) -> None:
    listing = await open_listing(client)
    for path in ("/v1/listings", f"/v1/listings/{listing['id']}/bids", "/v1/api-keys"):
        for body in BODIES:
            response = await client.post(path, content=body,
                                         headers={"Content-Type": "application/json"})
            problem(response, 401, "unauthorized")


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
