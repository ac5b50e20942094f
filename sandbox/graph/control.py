"""``GET /_sandbox/users/{email}/events``: ``{"value": [Graph events as stored]}`` for a user of any
tenant (by mail or id): every item of the mailbox, Deleted Items included, by start time, with
REST ids (immutable ids under ``Prefer: IdType="ImmutableId"``), ``start``/``end`` in the zone
they were given in, and ``singleValueExtendedProperties`` when there are any. ``{email}`` is
any name of the user: mail, proxy address, UPN or object id (case-insensitive); unknown: 404.

``GET /_sandbox/graph`` and ``PATCH /_sandbox/graph`` with any of Graph's settings
(``seed.GRAPH_SETTINGS``): ``transactionIdWindowSeconds`` (seconds >= 0, default 120; 0 turns the
dedupe off), ``subscriptionValidationTimeoutSeconds`` (> 0, at most 10, the default),
``notificationTimeoutSeconds`` (> 0, at most 3, the default), ``notificationRetries`` (0-10,
default 4), ``notificationRetryBaseSeconds`` (> 0, at most 60, default 1): answered (200) as they
are after the change. A body that is not such an object (no names, unknown names, a value out of
its range, boolean or non-numeric) is 400 ``BadRequest`` and changes nothing. A reset sets them
again from its body's ``graph`` object, or back to the defaults without one (``sandbox.state``).

Change notifications (``subscriptions``, ``notifications``):
- ``GET /_sandbox/subscriptions``: ``{"value": [...]}``, every tenant's live subscriptions as Graph
  shows them plus ``tenantId``, ``mailboxId``, ``delegatedUserId``, ``immutableIds``, ``paused``.
- ``PATCH /_sandbox/subscriptions/{id}`` with ``{"expirationDateTime": "<date-time with offset>"}``:
  set as given, no limit; a time not in the future removes the subscription at once, as expiry
  does (204); else 200 with the subscription. Unknown id: 404.
- ``POST /_sandbox/subscriptions/{id}/lifecycle`` with ``{"lifecycleEvent": "missed" |
  "subscriptionRemoved" | "reauthorizationRequired"}``: sends that lifecycle notification to the
  subscription's ``lifecycleNotificationUrl``, if it has one (Graph sends none without);
  ``subscriptionRemoved`` also removes it. 202 ``{"sent": true | false}``.
- ``GET /_sandbox/notifications[?since=<index>]``: ``{"value": [log entries], "nextIndex"}``
  (``notifications``: each POST tried, each notification a fault dropped, each validation
  request); ``DELETE`` empties it.
- ``POST /_sandbox/notifications/faults`` with any of ``{"drop": n, "duplicate": n, "delayMs": ms,
  "delayed": n}`` (whole numbers >= 0; ``delayMs`` at most 600000; ``delayed`` defaults to 1 when
  ``delayMs`` is given): the next ``drop`` change notifications are lost, the next ``duplicate``
  sent twice, the next ``delayed`` held ``delayMs``. Counts add to those left; answers 200 with
  what is left now. ``GET`` shows it, ``DELETE`` clears it. A reset clears subscriptions, pending
  deliveries, faults and the log."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import unquote

from ..seed import GRAPH_KEYS, check_graph_setting, graph_setting_rule
from ..web import HttpError, Request, Response, graph_error
from .common import control_mailbox, graph_json
from .model import render_event, stored_event
from .subscriptions import LIFECYCLE_EVENTS, Subscription
from .timezones import Preferences, parse_prefer


def user_events(req: Request) -> Response:
    store = req.sandbox.calendars
    mailbox = control_mailbox(req)
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
    usage = ("The body must be an object of Graph's settings: "
             + ", ".join(f"{name} ({graph_setting_rule(name)})" for name in sorted(GRAPH_KEYS)) + ".")
    if not isinstance(body, dict) or not body or set(body) - GRAPH_KEYS:
        raise HttpError(graph_error(req, 400, "BadRequest", usage))
    for name, value in body.items():
        if check_graph_setting(name, value) is None:
            raise HttpError(graph_error(req, 400, "BadRequest", usage))
    state = req.sandbox.state
    with state.lock:
        state.graph_settings = {**state.graph_settings, **body}
        return Response.json(200, dict(state.graph_settings))


# -- change notifications -----------------------------------------------------------------------

def _bad(req: Request, message: str) -> HttpError:
    return HttpError(graph_error(req, 400, "BadRequest", message))


def _control_subscription(req: Request) -> Subscription:
    assert req.match is not None  # noqa: S101
    sid = unquote(req.match.group("sid"))
    sub = req.sandbox.subscriptions.find(sid)
    if sub is None:
        raise HttpError(graph_error(req, 404, "ResourceNotFound", f"No live subscription '{sid}'."))
    return sub


def list_subscriptions(req: Request) -> Response:
    return Response.json(200, {"value": [sub.describe() for sub in req.sandbox.subscriptions.all()]})


def patch_subscription(req: Request) -> Response:
    sub = _control_subscription(req)
    body = req.json(lambda message: graph_error(req, 400, "BadRequest", message))
    usage = 'The body must be {"expirationDateTime": "<date-time with an offset>"}.'
    if not isinstance(body, dict) or set(body) != {"expirationDateTime"} or not isinstance(
            body["expirationDateTime"], str):
        raise _bad(req, usage)
    try:
        expiration = datetime.fromisoformat(body["expirationDateTime"].strip().replace("Z", "+00:00"))
    except ValueError:
        raise _bad(req, usage) from None
    if expiration.tzinfo is None:
        raise _bad(req, usage)
    store = req.sandbox.subscriptions
    with store.lock:
        sub.expiration = expiration.astimezone(UTC)
        if store.find(sub.id) is None:
            return Response.empty(204)
    return Response.json(200, sub.describe())


def send_lifecycle(req: Request) -> Response:
    sub = _control_subscription(req)
    body = req.json(lambda message: graph_error(req, 400, "BadRequest", message))
    event = body.get("lifecycleEvent") if isinstance(body, dict) else None
    if not isinstance(body, dict) or set(body) != {"lifecycleEvent"} or event not in LIFECYCLE_EVENTS:
        raise _bad(req, 'The body must be {"lifecycleEvent": "' + '" | "'.join(LIFECYCLE_EVENTS) + '"}.')
    return Response.json(202, {"sent": req.sandbox.subscriptions.lifecycle(sub, event)})


def notification_log(req: Request) -> Response:
    since_text = req.arg("since", "0") or "0"
    try:
        since = int(since_text)
    except ValueError:
        raise _bad(req, f"since must be an integer, not {since_text!r}") from None
    entries, next_index = req.sandbox.subscriptions.deliveries.log(since)
    return Response.json(200, {"value": entries, "nextIndex": next_index})


def clear_notification_log(req: Request) -> Response:
    req.sandbox.subscriptions.deliveries.clear_log()
    return Response.empty(204)


FAULT_KEYS = {"drop", "duplicate", "delayMs", "delayed"}


def add_notification_faults(req: Request) -> Response:
    body = req.json(lambda message: graph_error(req, 400, "BadRequest", message))
    usage = ('The body must be an object with any of "drop", "duplicate", "delayed" (whole numbers >= 0) and '
             '"delayMs" (0-600000).')
    if not isinstance(body, dict) or not body or set(body) - FAULT_KEYS:
        raise _bad(req, usage)
    for name, value in body.items():
        if type(value) is not int or value < 0 or (name == "delayMs" and value > 600_000):
            raise _bad(req, usage)
    delayed = body.get("delayed", 1 if "delayMs" in body else 0)
    left = req.sandbox.subscriptions.deliveries.add_faults(drop=body.get("drop", 0),
                                                           duplicate=body.get("duplicate", 0), delayed=delayed,
                                                           delay_ms=body.get("delayMs"))
    return Response.json(200, left)


def list_notification_faults(req: Request) -> Response:
    return Response.json(200, req.sandbox.subscriptions.deliveries.describe_faults())


def clear_notification_faults(req: Request) -> Response:
    req.sandbox.subscriptions.deliveries.clear_faults()
    return Response.empty(204)
