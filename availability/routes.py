"""HTTP route of availability: parse, call the service, answer."""

from __future__ import annotations

from functools import lru_cache

import azure.functions as func

from shared.callers import Caller, tenant_route
from shared.http import json_body, json_response, tenant_id_of

bp = func.Blueprint()


@lru_cache(maxsize=1)
def availability_service():
    from availability.service import AvailabilityService
    from shared.clients import graph_client, member_tokens, people

    return AvailabilityService(graph_client(), member_tokens(), people())


@bp.function_name("availability")
@bp.route(route="tenants/{tenantId}/availability", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@tenant_route  # the caller's token and organization, checked by the service (no function key)
def availability(req: func.HttpRequest, caller: Caller) -> func.HttpResponse:
    tenant_id = tenant_id_of(req)
    body = json_body(req)
    from shared.clients import repositories
    from shared.storage import TENANT_MAX_AGE

    # The tenant row may be up to TENANT_MAX_AGE old (README, "Availability"); free/busy never is.
    tenant = repositories().require_tenant(tenant_id, organization_id=caller.organization_id,
                                           max_age=TENANT_MAX_AGE)
    return json_response(availability_service().answer(tenant, body))
