"""/v1/api-keys: mint a key for a role and subject (admin). The key is shown once."""

from fastapi import APIRouter
from fastapi.responses import Response

from app.api.deps import Caller, Svc, problem_responses, render_json
from app.api.schemas import ApiKeyIn, ApiKeyOut
from app.clock import format_utc

router = APIRouter(prefix="/v1/api-keys", tags=["api keys"])


@router.post(
    "", status_code=201, response_model=ApiKeyOut, responses=problem_responses(400, 413, 422)
)
async def create_key(body: ApiKeyIn, who: Caller, svc: Svc) -> Response:
    who.require("admin")
    minted = await svc.keys.mint(body.role, body.subject)
    return render_json(
        {
            "id": str(minted.id),
            "key": minted.key,
            "role": minted.role,
            "subject": minted.subject,
            "created_at": format_utc(minted.created_at),
        },
        201,
    )
