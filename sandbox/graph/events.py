"""Events: create, list, get, update, delete, cancel (under ``/users/{id|UPN}`` or ``/me``,
with or without ``/calendar``), and ``GET .../calendar``.

- Create (https://learn.microsoft.com/en-us/graph/api/user-post-events): 201 with the full event.
  ``singleValueExtendedProperties`` are kept, not echoed (read them with ``$expand``). A repeated
  ``transactionId`` (same app, same mailbox) within ``transactionIdWindowSeconds`` of the first
  create answers 201 with the existing event, creating nothing (the sandbox's choice: Microsoft
  documents neither a window nor a duplicate answer; see ``store``). Outside it, a new event.
- ``start``/``end`` (dateTimeTimeZone, https://learn.microsoft.com/en-us/graph/api/resources/datetimetimezone)
  may name different zones. A local time that occurs twice in its zone (the hour a fall-back
  repeats) is read as its first occurrence (zoneinfo ``fold=0``: before the change), on create and
  update alike; Exchange documents no reading, so a client must send an unambiguous time.
- ``GET .../calendar`` (https://learn.microsoft.com/en-us/graph/api/calendar-get; Calendars.Read
  or ReadWrite, and the application access policy, as the other reads): the default calendar,
  ``name`` "Calendar", ``owner`` the user's display name and mail (the primary SMTP address, not
  the UPN), ``isDefaultCalendar`` true, Teams the only online meeting provider; ``$select`` of
  calendar properties (an unknown one is 400 ``RequestBroker--ParseUri``), ``id`` always shown.
- Get / list (event-get, user-list-events): ``$select``, ``$expand``, ``$filter`` (see ``odata``);
  an unknown id is 404 ``ErrorItemNotFound`` "The specified object was not found in the store.";
  an id that is not one at all is 400 ``ErrorInvalidIdMalformed`` "Id is malformed.".
- Update (event-update): 200 with the updated event (what reaches the attendees, and when their
  answers are reset: ``store``). Every change gives the item a new ``changeKey``, ``@odata.etag``
  (``W/"<changeKey>"``) and ``lastModifiedDateTime``.
- ``If-Match`` on update and delete: the item's current ``@odata.etag`` exactly as Graph gave it
  (or ``*``), else 412 ``ErrorIrresolvableConflict`` "The send or update operation could not be
  performed because the change key passed in the request does not match the current change key
  for the item." and nothing changes (Exchange's response code and text, https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/responsecode;
  Microsoft does not document the HTTP status for events: 412 Precondition Failed is HTTP's own
  for a failed If-Match, RFC 9110 §13.1.1). A weak and a strong form of the same tag are not
  the same tag here (the harsher reading): send it back as received.
- Delete (event-delete): 204.
- Cancel (event-cancel): 202, organizer only; an attendee's copy is 400 "Your request can't be
  completed. You need to be an organizer to cancel a meeting." (the page gives the message, not
  the code: ``ErrorInvalidRequest`` is the sandbox's).
- Accept, tentatively accept, decline (https://learn.microsoft.com/en-us/graph/api/event-accept,
  /event-tentativelyaccept, /event-decline; Calendars.ReadWrite): ``POST .../events/{id}/accept``
  (``tentativelyAccept``, ``decline``) with an optional body ``{"comment": "...", "sendResponse":
  true}``: 202 Accepted with no body, on the attendee's own copy (what changes where: ``store``).
  Another parameter is 400 ``BadRequest``; ``proposedNewTime`` is not modelled (400
  ``ErrorInvalidRequest``). On the organizer's own item: 400 with Exchange's code
  ``ErrorCalendarIsOrganizerForAccept`` (``...ForTentative``, ``...ForDecline``; the response
  codes page); on a cancelled meeting 400 ``ErrorInvalidRequest`` (the sandbox's choice: Graph
  documents none); on a copy already declined (in Deleted Items) 404 ``ErrorItemNotFound``, since
  its REST id is gone and the sandbox does not bring it back.
Every route here takes ``/users/{id | userPrincipalName}`` only (see ``auth``).
An app reads events any app created: the service itself limits what it looks at.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import uuid
from typing import Any
from urllib.parse import unquote, urlencode

from ..web import HttpError, Request, Response
from .auth import READ, WRITE, GraphCall, mailbox_route
from .common import as_bool, bad_request, ci_get, fail, graph_json, json_object_body, metadata
from .model import ALLOWED_MEETING_PROVIDERS, EventInputError, StoredEvent, read_event_input, render_event
from .odata import EventQuery, QueryError, parse_query

DEFAULT_PAGE_SIZE = 10
NOT_FOUND = "The specified object was not found in the store."


def _query(call: GraphCall, *, collection: bool) -> EventQuery:
    try:
        return parse_query(call.req.query, collection=collection)
    except QueryError as exc:
        raise bad_request(call.req, exc.code, exc.message) from None


def _input_error(call: GraphCall, exc: EventInputError) -> HttpError:
    return bad_request(call.req, exc.code, exc.message)


def _entity_context(call: GraphCall, select: list[str] | None = None) -> str:
    selected = f"({','.join(select)})" if select else ""
    return metadata(call.req, f"users('{call.context_segment}')/events{selected}/$entity")


def _event_or_404(call: GraphCall) -> StoredEvent:
    assert call.req.match is not None  # noqa: S101
    item_id = unquote(call.req.match.group("eid"))
    try:
        raw = base64.urlsafe_b64decode(item_id + "=" * (-len(item_id) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) < 20:
        raise bad_request(call.req, "ErrorInvalidIdMalformed", "Id is malformed.")
    ev = call.store.get(call.mailbox, item_id)
    if ev is None:
        raise fail(call.req, 404, "ErrorItemNotFound", NOT_FOUND)
    return ev


def _render(call: GraphCall, ev: StoredEvent, query: EventQuery | None = None, *,
            context: str | None = None) -> dict[str, Any]:
    return render_event(ev, call.prefs, select=query.select if query else None,
                        expand_extended=query.expand if query else None, context=context)


@mailbox_route(WRITE)
def create_event(call: GraphCall) -> Response:
    body = json_object_body(call.req)
    try:
        given = read_event_input(body)
        with call.store.lock:
            ev, _created = call.store.create(call.mailbox, given, app_id=call.caller.app_id)
            answer = _render(call, ev, context=_entity_context(call))
    except EventInputError as exc:
        raise _input_error(call, exc) from None
    return graph_json(201, answer, call.prefs.applied_header())


@mailbox_route(READ)
def list_events(call: GraphCall) -> Response:
    query = _query(call, collection=True)
    with call.store.lock:
        items = call.mailbox.calendar()
        if query.predicate is not None:
            items = [ev for ev in items if query.predicate(ev)]
        for key, descending in reversed(query.orderby or []):
            items.sort(key=key, reverse=descending)
        page_size = query.top or DEFAULT_PAGE_SIZE
        page = items[query.skip:query.skip + page_size]
        value = [_render(call, ev, query) for ev in page]
    selected = f"({','.join(query.select)})" if query.select else ""
    answer: dict[str, Any] = {"@odata.context": metadata(call.req, f"users('{call.context_segment}')/events{selected}"),
                              "value": value}
    if query.skip + page_size < len(items):
        params = {k: v[0] for k, v in call.req.query.items() if k.lower() != "$skip"}
        params["$skip"] = str(query.skip + page_size)
        answer["@odata.nextLink"] = f"{call.req.base_url}{call.req.path}?{urlencode(params)}"
    return graph_json(200, answer, call.prefs.applied_header())


@mailbox_route(READ)
def get_event(call: GraphCall) -> Response:
    query = _query(call, collection=False)
    ev = _event_or_404(call)
    with call.store.lock:
        answer = _render(call, ev, query, context=_entity_context(call, query.select))
    return graph_json(200, answer, call.prefs.applied_header())


CHANGE_KEY_CONFLICT = ("The send or update operation could not be performed because the change key passed in the "
                       "request does not match the current change key for the item.")


def _check_if_match(call: GraphCall, ev: StoredEvent) -> None:
    """``If-Match``: the item's current etag as Graph gave it, or ``*``; else 412 (call under the lock)."""
    wanted = call.req.header("if-match")
    if wanted is None:
        return
    current = f'W/"{ev.props["changeKey"]}"'
    if wanted.strip() not in ("*", current):
        raise fail(call.req, 412, "ErrorIrresolvableConflict", CHANGE_KEY_CONFLICT)


@mailbox_route(WRITE)
def update_event(call: GraphCall) -> Response:
    body = json_object_body(call.req)
    ev = _event_or_404(call)
    try:
        given = read_event_input(body)
        with call.store.lock:
            _check_if_match(call, ev)
            call.store.update(call.mailbox, ev, given)
            answer = _render(call, ev, context=_entity_context(call))
    except EventInputError as exc:
        raise _input_error(call, exc) from None
    return graph_json(200, answer, call.prefs.applied_header())


@mailbox_route(WRITE)
def delete_event(call: GraphCall) -> Response:
    ev = _event_or_404(call)
    with call.store.lock:
        _check_if_match(call, ev)
        call.store.delete(call.mailbox, ev)
    return Response.empty(204)


@mailbox_route(WRITE)
def cancel_event(call: GraphCall) -> Response:
    body = json_object_body(call.req, required=False)
    comment = next((v for k, v in body.items() if k.lower() == "comment"), None)
    if comment is not None and not isinstance(comment, str):
        raise bad_request(call.req, "BadRequest", "Cannot convert the value of 'Comment' to the expected type "
                          "'Edm.String'.")
    ev = _event_or_404(call)
    if not ev.props.get("isOrganizer"):
        raise bad_request(call.req, "ErrorInvalidRequest", "Your request can't be completed. You need to be an "
                          "organizer to cancel a meeting.")
    call.store.cancel(call.mailbox, ev)
    return Response.empty(202)


# The answers, by the action's name (lower-cased), and Exchange's code for the organizer trying it.
RESPONSES = {"accept": ("accepted", "ErrorCalendarIsOrganizerForAccept",
                        "The user is the organizer of this meeting, and cannot, therefore, accept it."),
             "tentativelyaccept": ("tentativelyAccepted", "ErrorCalendarIsOrganizerForTentative",
                                   "The user is the organizer of this meeting, and therefore can't tentatively "
                                   "accept it."),
             "decline": ("declined", "ErrorCalendarIsOrganizerForDecline",
                         "The user is the organizer of this meeting, and cannot, therefore, decline it.")}
_ACTION_NAMES = {"accept": "accept", "tentativelyaccept": "tentativelyAccept", "decline": "decline"}


def check_response_allowed(req: Request, ev: StoredEvent, action: str) -> None:
    """The organizer cannot answer their own meeting, nor anyone a cancelled one (call under the lock)."""
    _, code, message = RESPONSES[action]
    if ev.props.get("isOrganizer"):
        raise bad_request(req, code, message)
    if not ev.in_calendar:
        raise fail(req, 404, "ErrorItemNotFound", NOT_FOUND)
    if ev.is_cancelled:
        raise bad_request(req, "ErrorInvalidRequest", "Your request can't be completed. The meeting has been "
                          "cancelled.")


@mailbox_route(WRITE)
def respond_to_event(call: GraphCall) -> Response:
    """``accept`` / ``tentativelyAccept`` / ``decline`` on the caller's own copy: 202."""
    assert call.req.match is not None  # noqa: S101
    action = call.req.match.group("action").lower()
    body = json_object_body(call.req, required=False)
    allowed = {"comment", "sendresponse"} | ({"proposednewtime"} if action != "accept" else set())
    for key in body:
        if key.lower() not in allowed:
            raise bad_request(call.req, "BadRequest", f"The parameter '{key}' in the request payload is not a valid "
                              f"parameter for the operation '{_ACTION_NAMES[action]}'.")
    comment = ci_get(body, "comment")
    if comment is not None and not isinstance(comment, str):
        raise bad_request(call.req, "BadRequest", "Cannot convert the value of 'Comment' to the expected type "
                          "'Edm.String'.")
    send_response = ci_get(body, "sendResponse", True)
    send = as_bool(send_response) if send_response is not None else True
    if send is None:
        raise bad_request(call.req, "BadRequest", "Cannot convert the value of 'SendResponse' to the expected type "
                          "'Edm.Boolean'.")
    if ci_get(body, "proposedNewTime") is not None:
        raise bad_request(call.req, "ErrorInvalidRequest", "The sandbox does not model proposedNewTime; answer "
                          "without one.")
    ev = _event_or_404(call)
    with call.store.lock:
        check_response_allowed(call.req, ev, action)
        call.store.respond(call.mailbox, ev, RESPONSES[action][0], send_response=send)
    return Response.empty(202)


# Every structural property of graph.calendar (and graph.entity), in the order Graph's example shows.
CALENDAR_PROPERTIES = ("id", "name", "color", "hexColor", "isDefaultCalendar", "changeKey", "canShare",
                       "canViewPrivateItems", "canEdit", "allowedOnlineMeetingProviders",
                       "defaultOnlineMeetingProvider", "isTallyingResponses", "isRemovable", "owner")
_CALENDAR_CANONICAL = {name.lower(): name for name in CALENDAR_PROPERTIES}


def _calendar_select(call: GraphCall) -> list[str] | None:
    text = next((values[0] for key, values in call.req.query.items() if key.lower() == "$select"), None)
    if text is None:
        return None
    names: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name = _CALENDAR_CANONICAL.get(part.lower())
        if name is None:
            raise bad_request(call.req, "RequestBroker--ParseUri",
                              f"Could not find a property named '{part}' on type 'microsoft.graph.calendar'.")
        if name not in names:
            names.append(name)
    return names


def calendar_resource(user: dict[str, Any]) -> dict[str, Any]:
    """The user's default calendar as ``GET .../calendar`` shows it (ids stable per user)."""
    raw_id = b"\x00\x03\x24\x00" + uuid.UUID(str(user["id"])).bytes + hashlib.sha256(
        f"calendar/{user['id']}".encode()).digest()[:26]
    change_key = base64.b64encode(hashlib.sha256(f"calendar-change/{user['id']}".encode()).digest()[:20])
    return {
        "id": base64.urlsafe_b64encode(raw_id).decode("ascii"), "name": "Calendar", "color": "auto", "hexColor": "",
        "isDefaultCalendar": True, "changeKey": change_key.decode("ascii"), "canShare": True,
        "canViewPrivateItems": True, "canEdit": True, "allowedOnlineMeetingProviders": list(ALLOWED_MEETING_PROVIDERS),
        "defaultOnlineMeetingProvider": ALLOWED_MEETING_PROVIDERS[0], "isTallyingResponses": True,
        "isRemovable": False,
        # The owner's address is the primary SMTP address (the mail), never the UPN.
        "owner": {"name": user.get("displayName") or user["mail"], "address": user["mail"]},
    }


@mailbox_route(READ)
def get_calendar(call: GraphCall) -> Response:
    """The default calendar (https://learn.microsoft.com/en-us/graph/api/calendar-get)."""
    select = _calendar_select(call)
    full = calendar_resource(call.user)
    selected = f"({','.join(select)})" if select else ""
    answer: dict[str, Any] = {
        "@odata.context": metadata(call.req, f"users('{call.context_segment}')/calendar{selected}/$entity"),
        "@odata.etag": f'W/"{full["changeKey"]}"',
    }
    if select is None:
        answer.update(full)
    else:
        answer["id"] = full["id"]
        answer.update({name: full[name] for name in select})
    return graph_json(200, answer)
