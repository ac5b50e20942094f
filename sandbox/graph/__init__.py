"""Microsoft Graph calendars under ``/v1.0/`` (paths case-insensitive, as Graph's are), change
notifications (``/v1.0/subscriptions``), and the control endpoints under ``/_sandbox/``.

Modules: ``auth`` (token, mailbox, permissions, application access policy, concurrency),
``store`` (events per mailbox; ``Sandbox.calendars``), ``model`` (the event), ``schedule``
(getSchedule), ``findtimes`` (findMeetingTimes), ``events`` (create/list/get/update/delete/cancel,
accept/tentativelyAccept/decline), ``odata`` ($select/$filter/$expand), ``batch`` ($batch),
``timezones``, ``subscriptions`` (subscriptions and what they send; ``Sandbox.subscriptions``),
``notifications`` (delivery to webhooks), ``outlook`` (what people do in Outlook), ``control``.
"""

from __future__ import annotations

from ..web import Route
from . import batch, control, events, findtimes, outlook, schedule, subscriptions
from .store import CalendarStore
from .subscriptions import SubscriptionStore

_MAILBOX = r"(?i)/v1\.0/(?:(?P<me>me)|users/(?P<user>[^/]+))"
_EVENTS = _MAILBOX + r"(?:/calendar)?/events"
_SUBSCRIPTIONS = r"(?i)/v1\.0/subscriptions"
_SANDBOX_EVENT = r"/_sandbox/users/(?P<email>[^/]+)/events/(?P<eid>[^/]+)"

ROUTES: list[Route] = [
    ("POST", r"(?i)/v1\.0/\$batch", batch.batch),
    ("POST", _MAILBOX + r"/calendar/getSchedule", schedule.get_schedule),
    ("POST", _MAILBOX + r"/findMeetingTimes", findtimes.find_meeting_times),
    ("GET", _MAILBOX + r"/calendar", events.get_calendar),
    ("POST", _EVENTS, events.create_event),
    ("GET", _EVENTS, events.list_events),
    ("GET", _EVENTS + r"/(?P<eid>[^/]+)", events.get_event),
    ("PATCH", _EVENTS + r"/(?P<eid>[^/]+)", events.update_event),
    ("DELETE", _EVENTS + r"/(?P<eid>[^/]+)", events.delete_event),
    ("POST", _EVENTS + r"/(?P<eid>[^/]+)/cancel", events.cancel_event),
    ("POST", _EVENTS + r"/(?P<eid>[^/]+)/(?P<action>accept|tentativelyAccept|decline)", events.respond_to_event),
    ("POST", _SUBSCRIPTIONS, subscriptions.create_subscription),
    ("GET", _SUBSCRIPTIONS, subscriptions.list_subscriptions),
    ("GET", _SUBSCRIPTIONS + r"/(?P<sid>[^/]+)", subscriptions.get_subscription),
    ("PATCH", _SUBSCRIPTIONS + r"/(?P<sid>[^/]+)", subscriptions.update_subscription),
    ("DELETE", _SUBSCRIPTIONS + r"/(?P<sid>[^/]+)", subscriptions.delete_subscription),
    ("POST", _SUBSCRIPTIONS + r"/(?P<sid>[^/]+)/reauthorize", subscriptions.reauthorize_subscription),
    ("GET", r"/_sandbox/users/(?P<email>[^/]+)/events", control.user_events),
    ("POST", _SANDBOX_EVENT + r"/respond", outlook.respond),
    ("PATCH", _SANDBOX_EVENT, outlook.move),
    ("DELETE", _SANDBOX_EVENT, outlook.delete),
    ("GET", r"/_sandbox/graph", control.graph_settings),
    ("PATCH", r"/_sandbox/graph", control.patch_graph_settings),
    ("GET", r"/_sandbox/subscriptions", control.list_subscriptions),
    ("PATCH", r"/_sandbox/subscriptions/(?P<sid>[^/]+)", control.patch_subscription),
    ("POST", r"/_sandbox/subscriptions/(?P<sid>[^/]+)/lifecycle", control.send_lifecycle),
    ("GET", r"/_sandbox/notifications", control.notification_log),
    ("DELETE", r"/_sandbox/notifications", control.clear_notification_log),
    ("POST", r"/_sandbox/notifications/faults", control.add_notification_faults),
    ("GET", r"/_sandbox/notifications/faults", control.list_notification_faults),
    ("DELETE", r"/_sandbox/notifications/faults", control.clear_notification_faults),
]

__all__ = ["ROUTES", "CalendarStore", "SubscriptionStore"]
