"""``POST /users/{id|UPN}/calendar/getSchedule`` and ``POST /me/calendar/getSchedule``.

Request (https://learn.microsoft.com/en-us/graph/api/calendar-getschedule; parameter names
case-insensitive, as Graph's own example sends "Schedules"/"StartTime"):
``schedules`` (at most 20, https://learn.microsoft.com/en-us/graph/outlook-get-free-busy-schedule),
``startTime``/``endTime`` (dateTimeTimeZone: Windows, IANA or UTC), ``availabilityViewInterval``
(5-1440 minutes, default 30).

Errors, as Exchange answers them where observed:
- more than 20 schedules: 400 ``ErrorMailboxDataArrayTooBig`` "There are too many target users
  in the EmailAddress array. The allowed size = 20; the actual size = N."
  (github.com/microsoftgraph/microsoft-graph-docs/issues/7047, where the limit then was 100);
- a window of 62 days or more: 400 ``ErrorTimeIntervalTooBig`` "The requested time duration
  specified for FreeBusyViewOptions.TimeWindow is too long. The allowed limit = 62 days; the
  actual limit = N days." (github.com/microsoftgraph/microsoft-graph-docs/pull/19703);
- end not after start: 400 ``ErrorInvalidTimeInterval`` "The time duration specified for
  FreeBusyViewOptions.TimeWindow is invalid." (github.com/microsoftgraph/msgraph-sdk-dotnet/issues/2349);
- an interval outside 5-1440 or longer than the window: 400
  ``ErrorInvalidMergedFreeBusyInterval`` (github.com/microsoftgraph/microsoft-graph-docs/issues/6450);
- ``"availabilityViewInterval": null``: 500, as Graph answered it
  (github.com/microsoftgraph/microsoft-graph-docs/issues/4494) — reproduced so that a client
  sending null finds out here; the error code is the sandbox's choice.

Answer: ``value`` in request order. ``availabilityView``: one digit per interval, the highest of
the overlapping items: 0 free (also workingElsewhere, as documented, and unknown: the sandbox's
choice, the digit set has nothing else), 1 tentative, 2 busy, 3 oof; the last interval may be
partial. ``scheduleItems``: the items overlapping the window (straddling ones included), by start,
with ``isPrivate``/``subject``/``location`` only for normal or personal sensitivity. ``scheduleId``
echoes the address as sent. A schedule is resolved by any of the user's SMTP addresses (mail or
proxy addresses: calendar-getschedule documents ``schedules`` as "A collection of SMTP addresses of
users, distribution lists, or resources"), not by object id nor by a UPN that is not also an SMTP
address (the harsher reading; Microsoft documents no other form). An address that is not an SMTP
address of a user of the tenant gets only ``scheduleId`` and ``error`` (responseCode "5009",
graph-facts.md §1); for an app-only caller, a user outside the application access policy gets
``error`` {"message": "Access to OData is disabled.", "responseCode": "ErrorAccessDenied"} (the
sandbox's choice: Microsoft documents none).
Distribution lists are not expanded (5009 too).
"""

from __future__ import annotations

import math
from typing import Any

from ..web import Response
from .auth import SCHEDULE, GraphCall, mailbox_route, policy_allows
from .common import bad_request, ci_get, ci_has, dumps, fail, graph_json_text, json_object_body, metadata
from .timezones import BadDateTime, UnknownTimeZone, parse_local, resolve_zone, time_of_day, windows_name

MAX_SCHEDULES = 20
MAX_WINDOW_DAYS = 62
DEFAULT_INTERVAL = 30
_DIGITS = b"0123"


def _window_bound(call: GraphCall, value: Any, name: str) -> float:
    if not isinstance(value, dict):
        raise bad_request(call.req, "ErrorInvalidRequest", f"The parameter '{name}' is missing or is not a "
                          "dateTimeTimeZone.")
    zone_name = ci_get(value, "timeZone") or "UTC"
    try:
        zone = resolve_zone(zone_name)
    except UnknownTimeZone:
        raise bad_request(call.req, "TimeZoneNotSupportedException", "A valid TimeZone value must be specified. "
                          f"The following TimeZone value is not supported: '{zone_name}'.") from None
    try:
        return parse_local(ci_get(value, "dateTime"), zone).timestamp()
    except BadDateTime:
        raise bad_request(call.req, "ErrorInvalidRequest", f"The value of '{name}/dateTime' is not a valid "
                          "date-time.") from None


def _interval(call: GraphCall, body: dict[str, Any], window_minutes: float) -> int:
    message = ("The specified merged free/busy interval is not valid. Specify an interval that is less than the "
               "free/busy time window and  between 5 and 1440 minutes.")
    if not ci_has(body, "availabilityViewInterval"):
        interval: Any = DEFAULT_INTERVAL
    else:
        interval = ci_get(body, "availabilityViewInterval")
        if interval is None:
            raise fail(call.req, 500, "ErrorInternalServerError", "An internal server error occurred. The "
                       "operation failed.")
        if isinstance(interval, str) and interval.strip().isdigit():
            interval = int(interval.strip())  # Graph's concept page sends "15"
    if isinstance(interval, bool) or not isinstance(interval, int) or not 5 <= interval <= 1440 \
            or interval > window_minutes:
        raise bad_request(call.req, "ErrorInvalidMergedFreeBusyInterval", message)
    return interval


def working_hours(user: dict[str, Any]) -> dict[str, Any]:
    hours = user.get("workingHours") or {}
    return {"daysOfWeek": list(hours.get("daysOfWeek") or []),
            "startTime": time_of_day(hours.get("startTime") or "08:00:00"),
            "endTime": time_of_day(hours.get("endTime") or "17:00:00"),
            "timeZone": {"name": windows_name(user.get("timeZone") or "UTC")}}


@mailbox_route(SCHEDULE)
def get_schedule(call: GraphCall) -> Response:
    req = call.req
    body = json_object_body(req)
    schedules = ci_get(body, "schedules")
    if not isinstance(schedules, list) or not all(isinstance(s, str) for s in schedules):
        raise bad_request(req, "ErrorInvalidRequest", "The parameter 'Schedules' must be a list of SMTP addresses.")
    if not schedules:
        raise bad_request(req, "ErrorMailboxDataArrayEmpty", "The MailboxData array must contain at least one "
                          "entry.")
    if len(schedules) > MAX_SCHEDULES:
        raise bad_request(req, "ErrorMailboxDataArrayTooBig", "There are too many target users in the EmailAddress "
                          f"array. The allowed size = {MAX_SCHEDULES}; the actual size = {len(schedules)}.")
    start_ts = _window_bound(call, ci_get(body, "startTime"), "startTime")
    end_ts = _window_bound(call, ci_get(body, "endTime"), "endTime")
    if end_ts <= start_ts:
        raise bad_request(req, "ErrorInvalidTimeInterval", "The time duration specified for "
                          "FreeBusyViewOptions.TimeWindow is invalid.")
    days = (end_ts - start_ts) / 86400
    if days >= MAX_WINDOW_DAYS:
        raise bad_request(req, "ErrorTimeIntervalTooBig", "The requested time duration specified for "
                          f"FreeBusyViewOptions.TimeWindow is too long. The allowed limit = {MAX_WINDOW_DAYS} days; "
                          f"the actual limit = {math.ceil(days)} days.")
    interval = _interval(call, body, (end_ts - start_ts) / 60)
    step = interval * 60
    slots = math.ceil((end_ts - start_ts) / step)
    prefs = call.prefs
    zone_name, zone = prefs.zone_name, prefs.zone
    store = call.store
    parts = []
    with store.lock:
        for schedule_id in schedules:
            user = store.smtp_user(call.caller.tenant_id, schedule_id)
            if user is None:
                parts.append(dumps({"scheduleId": schedule_id, "error": {
                    "message": f"Unable to resolve e-mail address {schedule_id} to an Active Directory object.",
                    "responseCode": "5009"}}))
                continue
            if not policy_allows(req, call.caller, user):
                parts.append(dumps({"scheduleId": schedule_id, "error": {
                    "message": "Access to OData is disabled.", "responseCode": "ErrorAccessDenied"}}))
                continue
            items = store.mailbox(user).overlapping(start_ts, end_ts)
            view = bytearray(b"0" * slots)
            # The highest digit of the overlapping items wins: write them in ascending order.
            marks = []
            for ev in items:
                digit = ev.schedule_view()[1]
                if digit:
                    first = max(0, int((ev.start_ts - start_ts) // step))
                    last = min(slots, math.ceil((ev.end_ts - start_ts) / step))
                    if last > first:
                        marks.append((digit, first, last))
            marks.sort()
            for digit, first, last in marks:
                view[first:last] = _DIGITS[digit:digit + 1] * (last - first)
            hours_key = ("workingHours", str(user["id"]))
            hours = store.derived.get(hours_key)
            if hours is None:
                hours = store.derived[hours_key] = dumps(working_hours(user))
            parts.append(f'{{"scheduleId":{dumps(schedule_id)},"availabilityView":"{view.decode("ascii")}",'
                         f'"scheduleItems":[{",".join(ev.schedule_item_json(zone_name, zone) for ev in items)}],'
                         f'"workingHours":{hours},"error":null}}')
    context = dumps(metadata(req, "Collection(microsoft.graph.scheduleInformation)"))
    return graph_json_text(200, f'{{"@odata.context":{context},"value":[{",".join(parts)}]}}',
                           prefs.applied_header())
