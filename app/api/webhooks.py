"""/v1/webhook-endpoints and manual redelivery (admin)."""

from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from app.api.deps import (
    Admin,
    Idem,
    Svc,
    json_reply,
    problem_responses,
    render,
    render_json,
    shown_once,
)
from app.api.guard import GuardedRoute
from app.api.schemas import (
    DeliveryList,
    RedeliveryList,
    WebhookEndpointIn,
    WebhookEndpointList,
    WebhookEndpointOut,
)
from app.idempotency import Reply

if TYPE_CHECKING:
    from app.store import Connection

router = APIRouter(tags=["webhooks"], route_class=GuardedRoute)


@router.post(
    "/v1/webhook-endpoints", status_code=201, response_model=WebhookEndpointOut,
    responses=problem_responses(400, 413, 422), summary="Subscribe; the secret is shown once",
)
async def create_endpoint(
    body: WebhookEndpointIn, who: Admin, svc: Svc, idem: Idem
) -> Response:
    async def create(conn: "Connection") -> Reply:
        created = await svc.webhooks.create(
            body.url, list(body.event_types or []) or None, body.description, conn
        )
        return shown_once(201, created, "secret")

    return render(await svc.idempotency.transaction(idem, create))


@router.get(
    "/v1/webhook-endpoints", response_model=WebhookEndpointList, responses=problem_responses()
)
async def list_endpoints(who: Admin, svc: Svc) -> Response:
    return render_json(await svc.webhooks.list())


@router.get(
    "/v1/webhook-endpoints/{endpoint_id}",
    response_model=WebhookEndpointOut,
    responses=problem_responses(404),
)
async def get_endpoint(endpoint_id: str, who: Admin, svc: Svc) -> Response:
    return render_json(await svc.webhooks.get(endpoint_id))


@router.delete(
    "/v1/webhook-endpoints/{endpoint_id}", status_code=204, responses=problem_responses(404)
)
async def delete_endpoint(endpoint_id: str, who: Admin, svc: Svc) -> Response:
    await svc.webhooks.delete(endpoint_id)
    return Response(status_code=204)


@router.get(
    "/v1/webhook-endpoints/{endpoint_id}/deliveries",
    response_model=DeliveryList,
    responses=problem_responses(404, 422),
    summary="Delivery log with every attempt",
)
async def deliveries(
    endpoint_id: str, who: Admin, svc: Svc, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> Response:
    return render_json(await svc.webhooks.deliveries(endpoint_id, limit))


@router.post(
    "/v1/events/{event_id}/redeliver",
    status_code=202,
    response_model=RedeliveryList,
    responses=problem_responses(404, 422),
    summary="Queue an event again for its subscribers",
)
async def redeliver(event_id: str, who: Admin, svc: Svc, idem: Idem) -> Response:
    await svc.queries.event(event_id)

    async def queue(conn: "Connection") -> Reply:
        return json_reply(202, await svc.webhooks.redeliver(event_id, conn))

    return render(await svc.idempotency.transaction(idem, queue))
