"""/v1/webhook-endpoints and manual redelivery (admin)."""

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from app.api.deps import Caller, Svc, problem_responses, render_json
from app.api.schemas import (
    DeliveryList,
    RedeliveryList,
    WebhookEndpointIn,
    WebhookEndpointList,
    WebhookEndpointOut,
)

router = APIRouter(tags=["webhooks"])


@router.post(
    "/v1/webhook-endpoints", status_code=201, response_model=WebhookEndpointOut,
    responses=problem_responses(400, 413, 422), summary="Subscribe; the secret is shown once",
)
async def create_endpoint(body: WebhookEndpointIn, who: Caller, svc: Svc) -> Response:
    who.require("admin")
    created = await svc.webhooks.create(
        body.url, list(body.event_types or []) or None, body.description
    )
    return render_json(created, 201)


@router.get(
    "/v1/webhook-endpoints", response_model=WebhookEndpointList, responses=problem_responses()
)
async def list_endpoints(who: Caller, svc: Svc) -> Response:
    who.require("admin")
    return render_json(await svc.webhooks.list())


@router.get(
    "/v1/webhook-endpoints/{endpoint_id}",
    response_model=WebhookEndpointOut,
    responses=problem_responses(404),
)
async def get_endpoint(endpoint_id: str, who: Caller, svc: Svc) -> Response:
    who.require("admin")
    return render_json(await svc.webhooks.get(endpoint_id))


@router.delete(
    "/v1/webhook-endpoints/{endpoint_id}", status_code=204, responses=problem_responses(404)
)
async def delete_endpoint(endpoint_id: str, who: Caller, svc: Svc) -> Response:
    who.require("admin")
    await svc.webhooks.delete(endpoint_id)
    return Response(status_code=204)


@router.get(
    "/v1/webhook-endpoints/{endpoint_id}/deliveries",
    response_model=DeliveryList,
    responses=problem_responses(404, 422),
    summary="Delivery log with every attempt",
)
async def deliveries(
    endpoint_id: str, who: Caller, svc: Svc, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> Response:
    who.require("admin")
    return render_json(await svc.webhooks.deliveries(endpoint_id, limit))


@router.post(
    "/v1/events/{event_id}/redeliver",
    status_code=202,
    response_model=RedeliveryList,
    responses=problem_responses(404),
    summary="Queue an event again for its subscribers",
)
async def redeliver(event_id: str, who: Caller, svc: Svc) -> Response:
    who.require("admin")
    await svc.queries.event(event_id)
    return render_json(await svc.webhooks.redeliver(event_id), 202)
