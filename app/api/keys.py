"""/v1/api-keys: mint a key for a role and subject (admin). The key is shown once."""

from typing import TYPE_CHECKING

from fastapi import APIRouter
from fastapi.responses import Response

from app.api.deps import Admin, Idem, Svc, problem_responses, render, shown_once
from app.api.guard import GuardedRoute
from app.api.schemas import ApiKeyIn, ApiKeyOut
from app.clock import format_utc
from app.idempotency import Reply

if TYPE_CHECKING:
    from app.store import Connection

router = APIRouter(prefix="/v1/api-keys", tags=["api keys"], route_class=GuardedRoute)


@router.post(
    "", status_code=201, response_model=ApiKeyOut, responses=problem_responses(400, 413, 422)
)
async def create_key(body: ApiKeyIn, who: Admin, svc: Svc, idem: Idem) -> Response:
    async def mint(conn: "Connection") -> Reply:
        minted = await svc.keys.mint(body.role, body.subject, conn)
        shown = {
            "id": str(minted.id),
            "key": minted.key,
            "role": minted.role,
            "subject": minted.subject,
            "created_at": format_utc(minted.created_at),
        }
        return shown_once(201, shown, "key")

    return render(await svc.idempotency.transaction(idem, mint))
