"""Microsoft Graph calendars under ``/v1.0/`` (paths case-insensitive, as Graph's are), and the
control endpoints ``GET /_sandbox/users/{email}/events`` and ``GET|PATCH /_sandbox/graph``.

Modules: ``auth`` (token, mailbox, permissions, application access policy, concurrency),
``store`` (events per mailbox; ``Sandbox.calendars``), ``model`` (the event), ``schedule``
(getSchedule), ``findtimes`` (findMeetingTimes), ``events`` (create/list/get/update/delete/cancel,
accept/tentativelyAccept/decline), ``odata`` ($select/$filter/$expand), ``batch`` ($batch),
``timezones``, ``outlook`` (what people do in Outlook), ``control``.
"""

from __future__ import annotations

from ..web import Route
from . import batch, control, events, findtimes, outlook, schedule
from .store import CalendarStore

_MAILBOX = r"(?i)/v1\.0/(?:(?P<me>me)|users/(?P<user>[^/]+))"
_EVENTS = _MAILBOX + r"(?:/calendar)?/events"
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
    ("GET", r"/_sandbox/users/(?P<email>[^/]+)/events", control.user_events),
    ("POST", _SANDBOX_EVENT + r"/respond", outlook.respond),
    ("PATCH", _SANDBOX_EVENT, outlook.move),
    ("DELETE", _SANDBOX_EVENT, outlook.delete),
    ("GET", r"/_sandbox/graph", control.graph_settings),
    ("PATCH", r"/_sandbox/graph", control.patch_graph_settings),
]

__all__ = ["ROUTES", "CalendarStore"]
