"""API key lifecycle: list (never the key), revoke (refused at once), expiry, last use, subjects."""

import asyncio
import hashlib
import time
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

import httpx
import pytest
from fastapi import FastAPI

from app.clock import format_utc
from tests.integration.conftest import ADMIN
from tests.integration.helpers import Json, get_json, problem, rows

if TYPE_CHECKING:
    from app.keys.service import Keys

KEY_FIELDS = {
    "id", "role", "subject", "prefix", "created_at", "last_used_at", "expires_at", "revoked_at",
}


async def _mint(client: httpx.AsyncClient, role: str, subject: str, **extra: Any) -> Json:
    response = await client.post(
        "/v1/api-keys", headers=ADMIN, json={"role": role, "subject": subject, **extra}
    )
    assert response.status_code == 201, response.text
    body: Json = response.json()
    return body


def _bearer(minted: Json) -> dict[str, str]:
    return {"Authorization": f"Bearer {minted['key']}"}


def _keys(app: FastAPI) -> "Keys":
    keys: Keys = app.state.services.keys
    return keys


async def test_an_admin_lists_keys_newest_first_with_a_prefix_and_never_the_key(
    client: httpx.AsyncClient,
) -> None:
    minted = [await _mint(client, "lender", f"lender-{n}") for n in range(3)]
    minted.append(await _mint(client, "borrower", "bob"))
    response = await client.get("/v1/api-keys", headers=ADMIN)
    assert response.status_code == 200, response.text
    listed = response.json()["data"]
    assert [k["id"] for k in listed] == [m["id"] for m in reversed(minted)]
    for key, made in zip(listed, reversed(minted), strict=True):
        assert set(key) == KEY_FIELDS
        assert (key["role"], key["subject"], key["created_at"]) == (
            made["role"], made["subject"], made["created_at"],
        )
        assert made["key"].startswith(key["prefix"]) and len(key["prefix"]) <= 8
        assert (key["last_used_at"], key["expires_at"], key["revoked_at"]) == (None, None, None)
        assert made["key"] not in response.text
        assert hashlib.sha256(made["key"].encode()).hexdigest() not in response.text

    first = await get_json(client, "/v1/api-keys", limit=3)
    assert [k["id"] for k in first["data"]] == [m["id"] for m in reversed(minted)][:3]
    rest = await get_json(client, "/v1/api-keys", limit=3, cursor=first["next_cursor"])
    assert ([k["id"] for k in rest["data"]], rest["next_cursor"]) == ([minted[0]["id"]], None)
    mine = await get_json(client, "/v1/api-keys", subject="bob")
    assert [k["id"] for k in mine["data"]] == [minted[3]["id"]]
    problem(await client.get("/v1/api-keys", headers=ADMIN, params={"cursor": "x"}),
            422, "invalid_cursor")


async def test_a_revoked_key_is_refused_on_its_very_next_request(
    client: httpx.AsyncClient, database_url: str
) -> None:
    lena = await _mint(client, "lender", "lena")
    assert (await client.get("/v1/lenders/lena/bids", headers=_bearer(lena))).status_code == 200
    revoked = await client.delete(f"/v1/api-keys/{lena['id']}", headers=ADMIN)
    assert (revoked.status_code, revoked.content) == (204, b"")
    problem(await client.get("/v1/lenders/lena/bids", headers=_bearer(lena)), 401, "unauthorized")
    stored = await rows(database_url, "SELECT revoked_at FROM api_keys WHERE id = $1",
                        UUID(lena["id"]))
    assert stored[0]["revoked_at"] is not None

    again = await client.delete(f"/v1/api-keys/{lena['id']}", headers=ADMIN)
    assert again.status_code == 204, "revoking twice is harmless"
    assert (await rows(database_url, "SELECT revoked_at FROM api_keys WHERE id = $1",
                       UUID(lena["id"])))[0]["revoked_at"] == stored[0]["revoked_at"]
    listed = (await get_json(client, "/v1/api-keys"))["data"][0]
    assert listed["revoked_at"] is not None
    for unknown in (str(uuid4()), "not-a-key-id"):
        problem(await client.delete(f"/v1/api-keys/{unknown}", headers=ADMIN),
                404, "api_key_not_found")


async def test_a_key_revoked_while_its_first_lookup_is_in_flight_is_not_kept(
    service: tuple[FastAPI, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, client = service
    lena = await _mint(client, "lender", "lena")
    keys = _keys(app)
    looked_up, release = asyncio.Event(), asyncio.Event()
    real_active = keys.store.active

    async def slow_active(key_hash: bytes) -> Any:
        found = await real_active(key_hash)  # read before the revocation commits
        looked_up.set()
        await release.wait()
        return found

    monkeypatch.setattr(keys.store, "active", slow_active)
    first = asyncio.create_task(client.get("/v1/lenders/lena/bids", headers=_bearer(lena)))
    await asyncio.wait_for(looked_up.wait(), 10)
    assert (await client.delete(f"/v1/api-keys/{lena['id']}", headers=ADMIN)).status_code == 204
    release.set()
    await first  # in flight when the revocation landed: either answer is fair
    problem(await client.get("/v1/lenders/lena/bids", headers=_bearer(lena)), 401, "unauthorized")


async def test_a_key_past_its_expiry_is_refused_from_the_cache_and_from_postgres(
    service: tuple[FastAPI, httpx.AsyncClient], database_url: str
) -> None:
    app, client = service
    cached = await _mint(client, "lender", "lena", ttl_s=3600)
    made = datetime.fromisoformat(cached["created_at"])
    assert datetime.fromisoformat(cached["expires_at"]) == made + timedelta(seconds=3600)
    assert (await client.get("/v1/lenders/lena/bids", headers=_bearer(cached))).status_code == 200
    # An hour passes, for the cache's clock and for Postgres's (the cache must not serve it on).
    _keys(app).clock = lambda: time.time() + 3601
    await rows(database_url, "UPDATE api_keys SET expires_at = now() - interval '1 second'"
                             " WHERE id = $1", UUID(cached["id"]))
    problem(await client.get("/v1/lenders/lena/bids", headers=_bearer(cached)),
            401, "unauthorized")

    later = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    fresh = await _mint(client, "lender", "otto", expires_at=later)
    assert fresh["expires_at"] is not None
    await rows(database_url, "UPDATE api_keys SET expires_at = now() - interval '1 second'"
                             " WHERE id = $1", UUID(fresh["id"]))
    problem(await client.get("/v1/lenders/otto/bids", headers=_bearer(fresh)),
            401, "unauthorized")


async def test_an_expiry_is_an_rfc3339_time_in_the_bounded_future_or_a_ttl(
    client: httpx.AsyncClient, database_url: str
) -> None:
    now = datetime.now(UTC)
    for expires_at, code in (
        ((now - timedelta(seconds=5)).isoformat(), "expiry_out_of_range"),
        ((now + timedelta(days=6 * 366)).isoformat(), "expiry_out_of_range"),
        ("2031-01-01T00:00:00", "validation_error"),  # no offset
        ("1924000000", "validation_error"),
        (1924000000, "validation_error"),
        ("next week", "validation_error"),
    ):
        sent = {"role": "lender", "subject": "lena", "expires_at": expires_at}
        problem(await client.post("/v1/api-keys", headers=ADMIN, json=sent), 422, code)
    extras: list[dict[str, object]] = [
        {"ttl_s": 0}, {"ttl_s": "60"}, {"ttl_s": 6 * 366 * 86_400},
        {"ttl_s": 60, "expires_at": (now + timedelta(days=1)).isoformat()},
    ]
    for extra in extras:
        body: dict[str, object] = {"role": "lender", "subject": "lena", **extra}
        problem(await client.post("/v1/api-keys", headers=ADMIN, json=body),
                422, "validation_error")
    assert await rows(database_url, "SELECT id FROM api_keys") == [], "nothing was minted"
    target = (now + timedelta(days=30)).replace(microsecond=0)
    in_beijing = target.astimezone(timezone(timedelta(hours=8))).isoformat()
    offset = await _mint(client, "lender", "lena", expires_at=in_beijing)
    assert offset["expires_at"] == format_utc(target), "stored and shown in UTC"


async def test_last_use_is_recorded_in_batches_off_the_request_path(
    service: tuple[FastAPI, httpx.AsyncClient], database_url: str
) -> None:
    app, client = service
    lena = await _mint(client, "lender", "lena")
    for _ in range(5):
        assert (await client.get("/v1/lenders/lena/bids", headers=_bearer(lena))).status_code == 200
    stored = "SELECT last_used_at FROM api_keys WHERE id = $1"
    assert (await rows(database_url, stored, UUID(lena["id"])))[0]["last_used_at"] is None, (
        "no database write per request"
    )
    await _keys(app).record_usage()
    used = (await rows(database_url, stored, UUID(lena["id"])))[0]["last_used_at"]
    assert used is not None
    listed = (await get_json(client, "/v1/api-keys"))["data"][0]
    assert datetime.fromisoformat(listed["last_used_at"]) == used


async def test_a_key_cannot_be_minted_for_a_ledger_system_account(
    client: httpx.AsyncClient, database_url: str
) -> None:
    for subject in ("external", "platform:fees", "platform:reserve", "platform:anything"):
        body = {"role": "lender", "subject": subject}
        refused = problem(await client.post("/v1/api-keys", headers=ADMIN, json=body),
                          422, "subject_reserved")
        assert refused["errors"][0]["field"] == "subject"
    assert await rows(database_url, "SELECT id FROM api_keys") == []
    for subject in ("platformer", "external-bank", "platform"):
        await _mint(client, "borrower", subject)
