"""HTTP routes of bookings: parse, call the service, answer."""

from __future__ import annotations

import re
from functools import lru_cache

import azure.functions as func

from shared.callers import Caller, tenant_route
from shared.errors import BookingNotFound, InvalidRequest
from shared.http import json_body, json_response, tenant_id_of

bp = func.Blueprint()
_BOOKING_ID = re.compile(r"^[A-Za-z0-9_.@+-]{1,128}$")
_ETAG = re.compile(r'^"[0-9]{1,9}"$')


@lru_cache(maxsize=1)
def booking_service():
    from datetime import timedelta

    from booking.service import BookingService
    from shared.clients import graph_client, member_tokens, people, repositories
    from shared.settings import get_settings
    from sync.jobs import mailbox_changed

    settings = get_settings()
    service = BookingService(repositories(), graph_client(), member_tokens(), people=people(),
                             timeout=settings.http_timeout_seconds,
                             write_margin=timedelta(seconds=settings.graph_write_margin_seconds))
    service.after_change = mailbox_changed
    return service


def _tenant(tenant_id: str, caller: Caller):
    """The caller's organization's tenant (another organization's answers 404 as an unknown one)."""
    from shared.clients import repositories
    from shared.storage import TENANT_MAX_AGE

    # The tenant row may be up to TENANT_MAX_AGE old (README, "Bookings").
    return repositories().require_tenant(tenant_id, organization_id=caller.organization_id,
                                         max_age=TENANT_MAX_AGE)


@bp.function_name("bookings")
@bp.route(route="tenants/{tenantId}/bookings", methods=["POST", "GET"], auth_level=func.AuthLevel.ANONYMOUS)
@tenant_route  # the caller's token and organization, checked by the service (no function key)
def bookings(req: func.HttpRequest, caller: Caller) -> func.HttpResponse:
    tenant_id = tenant_id_of(req)
    if req.method == "GET":
        return json_response(list_bookings(req, tenant_id, caller))
    from booking.request import idempotency_key

    key = idempotency_key(req.headers.get("Idempotency-Key"))
    body = json_body(req)
    view, status = booking_service().create(_tenant(tenant_id, caller), key, body)
    return json_response(view, status)


@bp.function_name("booking")
@bp.route(route="tenants/{tenantId}/bookings/{bookingId}", methods=["GET", "DELETE", "PATCH"],
          auth_level=func.AuthLevel.ANONYMOUS)
@tenant_route
def booking(req: func.HttpRequest, caller: Caller) -> func.HttpResponse:
    tenant_id = tenant_id_of(req)
    booking_id = req.route_params.get("bookingId", "")
    if not _BOOKING_ID.match(booking_id):
        # Not an id this service hands out (a raw Graph event id, say): there is no such booking.
        raise BookingNotFound("No booking with this id exists in this tenant.", target="bookingId")
    tenant = _tenant(tenant_id, caller)
    if req.method == "DELETE":
        return json_response(booking_service().cancel(tenant, booking_id))
    if req.method == "PATCH":
        from booking.request import idempotency_key

        key = idempotency_key(req.headers.get("Idempotency-Key"))
        if_match = req.headers.get("If-Match")
        if if_match is not None and not _ETAG.match(if_match):
            raise InvalidRequest('If-Match must be a booking\'s etag, such as "3".', target="If-Match")
        body = json_body(req)
        return json_response(booking_service().reschedule(tenant, booking_id, key, body, if_match))
    return json_response(booking_service().read(tenant, booking_id))


def list_bookings(req: func.HttpRequest, tenant_id: str, caller: Caller) -> dict:
    """The tenant's bookings as the service last knew them (no Graph call), in pages."""
    from booking import listing
    from shared import validation as v
    from shared.clients import repositories

    params = req.params
    known = {"organizer", "attendee", "from", "to", "status", "limit", "cursor"}
    for name in params:
        if name not in known:
            raise InvalidRequest(f"Unknown query parameter {name}.", target=name)
    organizer = v.email(params["organizer"], "organizer").lower() if params.get("organizer") else None
    attendee = v.email(params["attendee"], "attendee").lower() if params.get("attendee") else None
    start = v.instant(params["from"], "from") if params.get("from") else None
    end = v.instant(params["to"], "to") if params.get("to") else None
    if start is not None and end is not None and end <= start:
        raise InvalidRequest("to must be after from.", target="to")
    status = params.get("status") or None
    if status is not None and status not in listing.STATUSES:
        raise InvalidRequest("status must be confirmed or cancelled.", target="status")
    limit = v.query_int(params.get("limit"), "limit", default=50, minimum=1, maximum=200)
    repos = repositories()
    tenant = _tenant(tenant_id, caller)
    query = listing.Query(organizer=organizer, attendee=attendee, start=start, end=end, status=status)
    if not tenant.owned:  # a claim has no bookings
        if params.get("cursor"):
            listing.decode_cursor(params["cursor"], query)
        return {"bookings": [], "next": None}
    return listing.page(repos, tenant_id, caller.organization_id, query, limit=limit,
                        cursor=params.get("cursor") or None)
