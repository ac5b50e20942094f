"""HTTP routes of sync: the Graph notification route (public, for Microsoft Graph only) and the
changes feed. The notification route's validation answer imports nothing heavy: Graph allows 10 s
for it, also on a cold start (learn.microsoft.com/graph/change-notifications-delivery-webhooks,
"Notification endpoint validation")."""

from __future__ import annotations

import logging

import azure.functions as func

from shared.callers import Caller, tenant_route
from shared.http import MAX_BODY_BYTES, endpoint, json_response, tenant_id_of

log = logging.getLogger(__name__)

bp = func.Blueprint()


@bp.function_name("graph_notifications")
@bp.route(route="graph/notifications", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
async def graph_notifications(req: func.HttpRequest) -> func.HttpResponse:
    token = req.params.get("validationToken")
    if token is not None:
        # The token, URL-decoded, as text/plain and nothing else.
        return func.HttpResponse(token, status_code=200, mimetype="text/plain", charset="utf-8")
    from shared.errors import InvalidRequest, PayloadTooLarge, ServiceError
    from sync import inbox
    from sync.jobs import recogniser

    body = req.get_body() or b""
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge("The notification body is larger than 1 MB.")
    from shared.clients import job_queue

    try:
        await inbox.accept(body, recogniser(), job_queue())
    except ValueError:
        raise InvalidRequest("The body is not a changeNotificationCollection.") from None
    except inbox.QueueUnavailable:
        raise ServiceError("The notifications could not be queued; deliver them again.", status=503,
                           code="upstream_error", retry_after=5) from None
    return func.HttpResponse(status_code=202)


@bp.function_name("tenant_changes")
@bp.route(route="tenants/{tenantId}/changes", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@tenant_route
def tenant_changes(req: func.HttpRequest, caller: Caller) -> func.HttpResponse:
    from shared import validation as v
    from shared.clients import repositories
    from sync.changes import ChangeLog

    tenant_id = tenant_id_of(req)
    limit = v.query_int(req.params.get("limit"), "limit", default=100, minimum=1, maximum=500)
    cursor = req.params.get("after") or None
    repos = repositories()
    tenant = repos.require_tenant(tenant_id, organization_id=caller.organization_id)
    if not tenant.owned:  # a claim has no changes yet
        from sync.changes import decode_cursor

        if cursor:
            decode_cursor(cursor, tenant_id)
        return json_response({"changes": [], "next": None})
    return json_response(ChangeLog(repos).page(tenant_id, caller.organization_id, cursor, limit))
