"""``GET /_sandbox/users/{email}/events``: ``{"value": [Graph events as stored]}`` for a user of any
tenant (by mail or id): every item of the mailbox, Deleted Items included, by start time, with
REST ids (immutable ids under ``Prefer: IdType="ImmutableId"``), ``start``/``end`` in the zone
they were given in, and ``singleValueExtendedProperties`` when there are any. ``{email}`` is
any name of the user: mail, proxy address, UPN or object id (case-insensitive); unknown: 404.

``GET /_sandbox/graph`` and ``PATCH /_sandbox/graph`` with ``{"transactionIdWindowSeconds": n}``
(n a number of seconds >= 0; 0 turns the dedupe off): Graph's settings, answered (200) as they
are after the change. A body that is not such an object (unknown names, a negative, boolean or
non-numeric value) is 400 ``BadRequest`` and changes nothing. A reset sets them again from its
body's ``graph`` object, or back to the defaults without one (``sandbox.state``)."""

from __future__ import annotations

from urllib.parse import unquote

from ..seed import GRAPH_KEYS, check_transaction_id_window
from ..web import HttpError, Request, Response, graph_error
from .common import fail, graph_json
from .model import render_event, stored_event
from .timezones import Preferences, parse_prefer


def user_events(req: Request) -> Response:
    assert req.match is not None  # noqa: S101
    email = unquote(req.match.group("email"))
    store = req.sandbox.calendars
    mailbox = store.mailbox_by_mail(email)
    if mailbox is None:
        raise fail(req, 404, "ErrorInvalidUser", f"The requested user '{email}' is invalid.")
    immutable = parse_prefer(req.header("prefer")).immutable_ids
    with store.lock:
        items = sorted(mailbox.items.values(), key=lambda e: (e.start_ts, e.props["createdDateTime"]))
        value = []
        for ev in items:
            shown = stored_event(ev)
            if immutable:
                shown["id"] = render_event(ev, Preferences(immutable_ids=True))["id"]
            value.append(shown)
    return graph_json(200, {"value": value})


def graph_settings(req: Request) -> Response:
    state = req.sandbox.state
    with state.lock:
        return Response.json(200, dict(state.graph_settings))


def patch_graph_settings(req: Request) -> Response:
    body = req.json(lambda message: graph_error(req, 400, "BadRequest", message))
    usage = 'The body must be {"transactionIdWindowSeconds": <seconds, a number >= 0>}.'
    if not isinstance(body, dict) or not body or set(body) - GRAPH_KEYS:
        raise HttpError(graph_error(req, 400, "BadRequest", usage))
    window = body["transactionIdWindowSeconds"]
    if check_transaction_id_window(window) is None:
        raise HttpError(graph_error(req, 400, "BadRequest", usage))
    state = req.sandbox.state
    with state.lock:
        state.graph_settings = {**state.graph_settings, "transactionIdWindowSeconds": window}
        return Response.json(200, dict(state.graph_settings))
