"""HTTP route of availability: parse, call the service, answer."""

from __future__ import annotations

from functools import lru_cache

import azure.functions as func

from shared import validation as v
from shared.errors import TenantNotFound
from shared.http import endpoint, json_body, json_response

bp = func.Blueprint()


@lru_cache(maxsize=1)
def availability_service():
    from availability.service import AvailabilityService
    from shared.clients import graph_client, member_tokens

    return AvailabilityService(graph_client(), member_tokens())


@bp.function_name("availability")
@bp.route(route="tenants/{tenantId}/availability", methods=["POST"])
@endpoint
def availability(req: func.HttpRequest) -> func.HttpResponse:
    tenant_id = v.guid(req.route_params.get("tenantId", ""), "tenantId")
    body = json_body(req)
    from shared.clients import repositories

    tenant = repositories().tenant(tenant_id)
    if tenant is None:
        raise TenantNotFound("No tenant with this id is registered.", target="tenantId")
    return json_response(availability_service().answer(tenant, body))
