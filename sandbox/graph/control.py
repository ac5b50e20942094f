"""``GET /_sandbox/users/{email}/events``: ``{"value": [Graph events as stored]}`` for a user of any
tenant (by mail or id): every item of the mailbox, Deleted Items included, by start time, with
REST ids (immutable ids under ``Prefer: IdType="ImmutableId"``), ``start``/``end`` in the zone
they were given in, and ``singleValueExtendedProperties`` when there are any."""

from __future__ import annotations

from urllib.parse import unquote

from ..web import Request, Response
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
