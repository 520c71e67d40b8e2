"""/v1/accounts and /v1/platform/accounts: custody balances, deposits, withdrawals, entries."""

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from app.api.deps import Admin, AnyKey, Idem, Svc, problem_responses, render, render_json
from app.api.guard import GuardedRoute
from app.api.schemas import (
    SUBJECT_PATTERN,
    AccountList,
    AccountOut,
    EntryPage,
    MoneyIn,
    MoneyMovedOut,
    PolicyOut,
)

router = APIRouter(tags=["accounts"], route_class=GuardedRoute)
AccountId = Annotated[str, Path(min_length=1, max_length=128, pattern=SUBJECT_PATTERN)]


@router.post(
    "/v1/accounts/{account_id}/deposits", status_code=201, response_model=MoneyMovedOut,
    responses=problem_responses(400, 413, 422), summary="Report money that arrived in custody",
)
async def deposit(
    account_id: AccountId, body: MoneyIn, who: Admin, svc: Svc, idem: Idem
) -> Response:
    """Admin only: the platform's payment side reports a deposit."""
    return render(await svc.market.move_money(
        who, account_id, body.amount, body.reference, withdrawal=False, idem=idem
    ))


@router.post(
    "/v1/accounts/{account_id}/withdrawals", status_code=201, response_model=MoneyMovedOut,
    responses=problem_responses(400, 404, 409, 413, 422), summary="Pay available money out",
)
async def withdraw(
    account_id: AccountId, body: MoneyIn, who: AnyKey, svc: Svc, idem: Idem
) -> Response:
    """The owner or an admin; only available (not reserved) money can leave."""
    return render(await svc.market.move_money(
        who, account_id, body.amount, body.reference, withdrawal=True, idem=idem
    ))


@router.get(
    "/v1/accounts/{account_id}", response_model=AccountOut, responses=problem_responses(404, 422)
)
async def get_account(account_id: AccountId, who: AnyKey, svc: Svc) -> Response:
    return render_json(svc.accounts.account(who, account_id))


@router.get(
    "/v1/accounts/{account_id}/entries", response_model=EntryPage,
    responses=problem_responses(404, 422), summary="Ledger entries, oldest first",
)
async def account_entries(
    account_id: AccountId,
    who: AnyKey,
    svc: Svc,
    after: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    return render_json(await svc.accounts.entries(who, account_id, after, limit))


@router.get(
    "/v1/platform/accounts", response_model=AccountList, responses=problem_responses(),
    summary="The fee and risk-reserve pools",
)
async def platform_accounts(who: Admin, svc: Svc) -> Response:
    return render_json(svc.accounts.platform())


@router.get("/v1/policy", response_model=PolicyOut, responses=problem_responses())
async def policy(who: AnyKey, svc: Svc) -> Response:
    """The grade policy new listings open under (an open listing keeps its own copy)."""
    return render_json(svc.policy)
