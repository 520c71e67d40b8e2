"""/v1/loans: a booked loan with its fills and the borrower's repayment schedule."""

from fastapi import APIRouter
from fastapi.responses import Response

from app.api.deps import AnyKey, Svc, problem_responses, render_json
from app.api.guard import GuardedRoute
from app.api.schemas import LoanOut

router = APIRouter(prefix="/v1/loans", tags=["loans"], route_class=GuardedRoute)


@router.get("/{loan_id}", response_model=LoanOut, responses=problem_responses(404, 422))
async def get_loan(
    loan_id: str, who: AnyKey, svc: Svc, fill_schedules: bool = False
) -> Response:
    """`fill_schedules=true` adds each fill's own schedule (the lender's side of the IOU)."""
    return render_json(await svc.queries.loan(who, loan_id, fill_schedules))
