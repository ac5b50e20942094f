"""HTTP routes of tenants, members and consent: parse, call the service, answer."""

from __future__ import annotations

import logging
from functools import lru_cache

import azure.functions as func

from consent import pages
from shared import validation as v
from shared.callers import Caller, tenant_route
from shared.errors import InvalidRequest
from shared.http import Handler, json_body, json_response, tenant_id_of, wrap

log = logging.getLogger(__name__)

bp = func.Blueprint()


@lru_cache(maxsize=1)
def tenant_service():
    from consent.tenants import TenantService
    from shared.clients import member_tokens, repositories

    return TenantService(repositories(), member_tokens())


@lru_cache(maxsize=1)
def consent_service():
    from consent.flows import ConsentService
    from shared.clients import member_tokens, repositories, token_provider
    from shared.settings import get_settings

    return ConsentService(get_settings(), repositories(), token_provider(), member_tokens())


def _failure_page(error) -> func.HttpResponse:
    return pages.page(error.status if error.status >= 500 else 502, "Something went wrong",
                      "10KC could not complete this step; nothing was changed. Please try again from 10KC "
                      "in a few minutes.")


def page_endpoint(handler: Handler) -> Handler:
    """`wrap` for the browser routes: a failure is an HTML page, not JSON."""
    return wrap(handler, _failure_page)


# Routes under tenants/{tenantId} are server to server: the service checks the caller's Entra ID
# token itself (shared.callers), so they are anonymous to the Functions host (no function keys).
@bp.function_name("tenant")
@bp.route(route="tenants/{tenantId}", methods=["GET", "PUT", "DELETE"], auth_level=func.AuthLevel.ANONYMOUS)
@tenant_route
def tenant(req: func.HttpRequest, caller: Caller) -> func.HttpResponse:
    tenant_id = tenant_id_of(req)
    service = tenant_service()
    if req.method == "PUT":
        body = json_body(req)
        view, created = service.register(tenant_id, caller.organization_id, body)
        return json_response(view, 201 if created else 200)
    if req.method == "DELETE":
        service.disconnect(tenant_id, caller.organization_id)
        return func.HttpResponse(status_code=204)
    return json_response(service.view(tenant_id, caller.organization_id))


@bp.function_name("tenant_member")
@bp.route(route="tenants/{tenantId}/users/{userId}", methods=["GET", "DELETE"],
          auth_level=func.AuthLevel.ANONYMOUS)
@tenant_route
def tenant_member(req: func.HttpRequest, caller: Caller) -> func.HttpResponse:
    tenant_id = tenant_id_of(req)
    user_id = req.route_params.get("userId", "")
    user_id = v.plain_id(user_id, "userId")  # the contract's id rule, before any storage call
    if "@" in user_id:
        user_id = v.email(user_id, "userId")
    if req.method == "DELETE":
        erase = req.params.get("erase")
        if erase not in (None, "true", "false"):
            raise InvalidRequest("erase must be true or false.", target="erase")
        tenant_service().disconnect_member(tenant_id, caller.organization_id, user_id, erase=erase == "true")
        return func.HttpResponse(status_code=204)
    return json_response(tenant_service().member(tenant_id, caller.organization_id, user_id))


@bp.function_name("consent_request")
@bp.route(route="tenants/{tenantId}/consent", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@tenant_route
def consent_request(req: func.HttpRequest, caller: Caller) -> func.HttpResponse:
    tenant_id = tenant_id_of(req)
    body = json_body(req)
    tenant = tenant_service().require(tenant_id, caller.organization_id)
    return json_response(consent_service().create_request(tenant, caller.organization_id, body), 201)


@bp.function_name("consent_request_status")
@bp.route(route="tenants/{tenantId}/consent/{consentRequestId}", methods=["GET"],
          auth_level=func.AuthLevel.ANONYMOUS)
@tenant_route
def consent_request_status(req: func.HttpRequest, caller: Caller) -> func.HttpResponse:
    tenant_id = tenant_id_of(req)
    request_id = v.plain_id(req.route_params.get("consentRequestId", ""), "consentRequestId")
    tenant = tenant_service().require(tenant_id, caller.organization_id)
    return json_response(consent_service().request_status(tenant, caller.organization_id, request_id))


@bp.function_name("tenant_members")
@bp.route(route="tenants/{tenantId}/users", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@tenant_route
def tenant_members(req: func.HttpRequest, caller: Caller) -> func.HttpResponse:
    from consent.tenants import MEMBER_STATUSES

    tenant_id = tenant_id_of(req)
    status = req.params.get("status")
    if status is not None and status not in MEMBER_STATUSES:
        raise InvalidRequest(f"status must be one of {', '.join(MEMBER_STATUSES)}.", target="status")
    limit = v.query_int(req.params.get("limit"), "limit", default=100, minimum=1, maximum=500)
    cursor = req.params.get("cursor") or None
    page = tenant_service().members_page(tenant_id, caller.organization_id, status=status, limit=limit,
                                         cursor=cursor)
    return json_response(page)


@bp.function_name("consent_redirect")
@bp.route(route="consent/redirect", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@page_endpoint
def consent_redirect(req: func.HttpRequest) -> func.HttpResponse:
    return consent_service().redirect(req.params.get("request"))


@bp.function_name("consent_callback")
@bp.route(route="consent/callback", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@page_endpoint
def consent_callback(req: func.HttpRequest) -> func.HttpResponse:
    return consent_service().callback(dict(req.params), req.headers.get("cookie"))
