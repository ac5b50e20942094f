"""What people do in Outlook, by the owner of the calendar (control routes; SANDBOX.md "Control").

Each goes through the calendar store exactly as the Graph call that does the same would, so it
changes the same items and fires the same change notifications (``store``, ``subscriptions``).
``{email}`` is any name of the user (mail, proxy address, UPN or id; unknown: 404
``ErrorInvalidUser``); ``{eventId}`` is the item's id in that user's own mailbox, REST or
immutable, as ``GET /_sandbox/users/{email}/events`` shows it (unknown: 404 ``ErrorItemNotFound``).
Each answers the acted-on item as ``GET /_sandbox/users/{email}/events`` shows it, or 204.

- ``POST /_sandbox/users/{email}/events/{eventId}/respond`` with ``{"response": "accepted" |
  "tentativelyAccepted" | "declined"}``: the attendee answers on their own copy, and the answer is
  sent to the organizer (Outlook's default; Graph's ``sendResponse: true``). The same refusals as
  Graph's ``accept`` / ``tentativelyAccept`` / ``decline`` (the organizer's own item, a cancelled
  meeting, a copy already declined). 200.
- ``PATCH /_sandbox/users/{email}/events/{eventId}`` with Graph's ``start`` and/or ``end``
  (``dateTimeTimeZone``), and optionally ``location``: the organizer moves the meeting; the
  attendees' copies follow and every answer is reset (``store``). Only the organizer's item
  (an attendee's copy: 400 ``ErrorInvalidRequest``, as Outlook lets only the organizer move a
  meeting); other properties: 400. 200.
- ``DELETE /_sandbox/users/{email}/events/{eventId}``: deleted in Outlook. An organizer's delete
  cancels the attendees' copies (``isCancelled: true``) as Graph's delete does; an attendee's
  delete removes only their copy and tells the organizer nothing (the harsher reading: Outlook
  may offer to decline first, but a plain delete sends no answer). 204.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from ..web import HttpError, Request, Response, graph_error
from .common import control_mailbox, fail, graph_json
from .events import NOT_FOUND, RESPONSES, check_response_allowed
from .model import EventInputError, StoredEvent, read_event_input, stored_event
from .store import Mailbox

ANSWERS = {answer: action for action, (answer, _, _) in RESPONSES.items()}
MOVE_KEYS = {"start", "end", "location"}


def _target(req: Request) -> tuple[Mailbox, StoredEvent]:
    store = req.sandbox.calendars
    mailbox = control_mailbox(req)
    assert req.match is not None  # noqa: S101
    ev = store.get(mailbox, unquote(req.match.group("eid")))
    if ev is None:
        raise fail(req, 404, "ErrorItemNotFound", NOT_FOUND)
    return mailbox, ev


def _body(req: Request) -> Any:
    return req.json(lambda message: graph_error(req, 400, "BadRequest", message))


def respond(req: Request) -> Response:
    body = _body(req)
    answer = body.get("response") if isinstance(body, dict) else None
    if not isinstance(body, dict) or set(body) != {"response"} or answer not in ANSWERS:
        raise HttpError(graph_error(req, 400, "BadRequest", 'The body must be {"response": "accepted" | '
                                    '"tentativelyAccepted" | "declined"}.'))
    mailbox, ev = _target(req)
    store = req.sandbox.calendars
    with store.lock:
        check_response_allowed(req, ev, ANSWERS[answer])
        store.respond(mailbox, ev, answer, send_response=True)
        shown = stored_event(ev)
    return graph_json(200, shown)


def move(req: Request) -> Response:
    body = _body(req)
    if not isinstance(body, dict) or not body or set(body) - MOVE_KEYS or not ({"start", "end"} & set(body)):
        raise HttpError(graph_error(req, 400, "BadRequest", 'The body must have Graph\'s "start" and/or "end" '
                                    '(dateTimeTimeZone), and may have "location"; nothing else.'))
    mailbox, ev = _target(req)
    store = req.sandbox.calendars
    try:
        given = read_event_input(body)
        with store.lock:
            if not ev.props.get("isOrganizer") or not ev.in_calendar:
                raise HttpError(graph_error(req, 400, "ErrorInvalidRequest", "Only the organizer can move a "
                                            "meeting, in their own calendar."))
            store.update(mailbox, ev, given)
            shown = stored_event(ev)
    except EventInputError as exc:
        raise HttpError(graph_error(req, 400, exc.code, exc.message)) from None
    return graph_json(200, shown)


def delete(req: Request) -> Response:
    mailbox, ev = _target(req)
    req.sandbox.calendars.delete(mailbox, ev)
    return Response.empty(204)
