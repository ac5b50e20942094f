"""HTTP route of availability: parse, call the service, answer."""

from __future__ import annotations

from functools import lru_cache

import azure.functions as func

from shared.http import endpoint, json_body, json_response, tenant_id_of

bp = func.Blueprint()


@lru_cache(maxsize=1)
def availability_service():
    from availability.service import AvailabilityService
    from shared.clients import graph_client, member_tokens, people

    return AvailabilityService(graph_client(), member_tokens(), people())


@bp.function_name("availability")
@bp.route(route="tenants/{tenantId}/availability", methods=["POST"])
@endpoint
def availability(req: func.HttpRequest) -> func.HttpResponse:
    tenant_id = tenant_id_of(req)
    body = json_body(req)
    from shared.clients import repositories

    return json_response(availability_service().answer(repositories().require_tenant(tenant_id), body))
