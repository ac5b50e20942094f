"""``POST /me/findMeetingTimes`` (and ``/users/{id}/findMeetingTimes`` for the signed-in user):
delegated only (https://learn.microsoft.com/en-us/graph/api/user-findmeetingtimes: application
permissions "Not supported"; an app-only token gets 403 ``ErrorAccessDenied``).

Documented and followed: the body (attendees, timeConstraint {activityDomain, timeSlots — also
spelled "timeslots"}, meetingDuration ISO 8601 default PT30M, maxCandidates, isOrganizerOptional
default false, returnSuggestionReasons default false, minimumAttendeePercentage default 50);
``work`` (and ``unknown``, which "behaves the same as work") = the organizer's working hours and
days in the organizer's zone, ``personal`` = those hours on every day, ``unrestricted`` = any time;
per attendee free 100 %, unknown 49 %, busy 0 %; confidence = the average over the attendees;
suggestions with confidence >= minimumAttendeePercentage, ordered by confidence then time;
``meetingTimeSlot`` in the ``Prefer: outlook.timezone`` zone (UTC by default); the suggestion
reason text of Microsoft's example.

The sandbox's choices (Microsoft documents none):
- Candidates start on a 30-minute grid of the organizer's local time, inside a time slot, and
  for work/personal wholly inside one day's working hours. Without time slots: from now for 7 days.
- An attendee's availability over a candidate is its worst item: oof > busy > tentative >
  unknown > workingElsewhere > free; an address that is not an SMTP address (mail or proxy
  address) of a user of the tenant is ``unknown`` (object ids and UPNs are not addresses here).
  Scores: tentative 50 %, oof 0 %, workingElsewhere 100 %.
- The organizer is not scored (Microsoft's example suggests times where the organizer is
  tentative at confidence 100); unless ``isOrganizerOptional``, a candidate where the organizer is
  busy or oof is dropped. With no attendees the confidence is the organizer's own score.
- ``maxCandidates`` absent: at most 20 suggestions. ``locations`` is always [] (no rooms).
- ``emptySuggestionsReason``: "" with suggestions; ``organizerUnavailable`` when the organizer
  (not optional) is busy/oof at every candidate; otherwise ``attendeesUnavailableOrUnknown`` if an
  attendee is unknown, else ``attendeesUnavailable``; ``unknown`` when the constraints leave no
  candidate at all (slots shorter than the meeting, outside working hours).
- ``suggestionReason``: Microsoft's sentence at confidence 100, "...when most attendees are
  available." below; "" unless ``returnSuggestionReasons``.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta
from typing import Any

from ..web import Response
from .auth import FIND_TIMES, GraphCall, mailbox_route
from .common import as_bool, as_number, bad_request, ci_get, graph_json, json_object_body, metadata
from .timezones import BadDateTime, UnknownTimeZone, format_ts, parse_local, resolve_zone

GRID_SECONDS = 30 * 60
DEFAULT_WINDOW = timedelta(days=7)
DEFAULT_MAX_CANDIDATES = 20
ACTIVITY_DOMAINS = ("unknown", "work", "personal", "unrestricted")
SCORES = {"free": 100.0, "workingElsewhere": 100.0, "unknown": 49.0, "tentative": 50.0, "busy": 0.0, "oof": 0.0}
_RANK = {"free": 0, "workingElsewhere": 1, "unknown": 2, "tentative": 3, "busy": 4, "oof": 5}
_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DURATION_RE = re.compile(r"P(?:(\d+)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?",
                          re.IGNORECASE)
REASON_ALL = "Suggested because it is one of the nearest times when all attendees are available."
REASON_MOST = "Suggested because it is one of the nearest times when most attendees are available."


def parse_duration(text: Any) -> float | None:
    """ISO 8601 duration in seconds (PT1H, PT30M, PT1H30M, P1D...), None if not one."""
    if not isinstance(text, str):
        return None
    match = _DURATION_RE.fullmatch(text.strip())
    if match is None or not any(match.groups()) or text.strip().upper().endswith("T"):
        return None
    days, hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return days * 86400 + hours * 3600 + minutes * 60 + seconds


def _seconds(text: str) -> int:
    hh, mm, rest = ([*text.split(":"), "0", "0"])[:3]
    return int(hh) * 3600 + int(mm) * 60 + int(float(rest))


def _availability(store: Any, user: dict[str, Any] | None, start: float, end: float) -> str:
    if user is None:
        return "unknown"
    worst = "free"
    for ev in store.mailbox(user).overlapping(start, end):
        status = ev.props.get("showAs") or "busy"
        if _RANK.get(status, 4) > _RANK[worst]:
            worst = status
    return worst


def _slots(call: GraphCall, constraint: dict[str, Any]) -> list[tuple[float, float]]:
    raw = ci_get(constraint, "timeSlots")
    if raw is None:
        now = time.time()
        return [(now, now + DEFAULT_WINDOW.total_seconds())]
    if not isinstance(raw, list):
        raise bad_request(call.req, "BadRequest", "Cannot convert the value of 'timeSlots' to the expected type "
                          "'Collection(microsoft.graph.timeSlot)'.")
    slots = []
    for slot in raw:
        bounds = []
        for name in ("start", "end"):
            value = ci_get(slot, name) if isinstance(slot, dict) else None
            if not isinstance(value, dict):
                raise bad_request(call.req, "BadRequest", f"A timeSlot needs '{name}' as a dateTimeTimeZone.")
            zone_name = ci_get(value, "timeZone") or "UTC"
            try:
                bounds.append(parse_local(ci_get(value, "dateTime"), resolve_zone(zone_name)).timestamp())
            except UnknownTimeZone:
                raise bad_request(call.req, "TimeZoneNotSupportedException", "A valid TimeZone value must be "
                                  f"specified. The following TimeZone value is not supported: '{zone_name}'.") from None
            except BadDateTime:
                raise bad_request(call.req, "BadRequest", f"The value of timeSlot '{name}/dateTime' is not a valid "
                                  "date-time.") from None
        if bounds[1] > bounds[0]:
            slots.append((bounds[0], bounds[1]))
    return slots


def _in_hours(t: float, duration: float, zone: Any, days: set[str], day_start: int, day_end: int) -> bool:
    """Whether [t, t + duration) lies within one day's working hours on a working day."""
    start_local = datetime.fromtimestamp(t, zone)
    end_local = datetime.fromtimestamp(t + duration, zone)
    if _DAYS[start_local.weekday()] not in days or end_local.date() != start_local.date():
        return False
    begin = start_local.hour * 3600 + start_local.minute * 60 + start_local.second
    finish = end_local.hour * 3600 + end_local.minute * 60 + end_local.second
    return begin >= day_start and finish <= day_end


def _candidates(call: GraphCall, slots: list[tuple[float, float]], duration: float, domain: str) -> list[float]:
    """Candidate start instants: the grid, inside a slot, inside working hours (work/personal)."""
    user = call.user
    zone = resolve_zone(user.get("timeZone") or "UTC")
    hours = user.get("workingHours") or {}
    days = set(hours.get("daysOfWeek") or []) if domain in ("work", "unknown") else set(_DAYS)
    day_start = _seconds(hours.get("startTime") or "08:00:00")
    day_end = _seconds(hours.get("endTime") or "17:00:00")
    seen: set[float] = set()
    result = []
    for slot_start, slot_end in slots:
        local = datetime.fromtimestamp(slot_start, zone)
        past = (local.minute % 30) * 60 + local.second + local.microsecond / 1e6
        t = slot_start + (GRID_SECONDS - past if past else 0)
        while t + duration <= slot_end:
            if t not in seen and (domain == "unrestricted" or _in_hours(t, duration, zone, days, day_start, day_end)):
                seen.add(t)
                result.append(t)
            t += GRID_SECONDS
    return sorted(result)


@mailbox_route(FIND_TIMES)
def find_meeting_times(call: GraphCall) -> Response:
    req = call.req
    body = json_object_body(req, required=False)
    store = call.store
    attendees_raw = ci_get(body, "attendees") or []
    if not isinstance(attendees_raw, list):
        raise bad_request(req, "BadRequest", "Cannot convert the value of 'attendees' to the expected type "
                          "'Collection(microsoft.graph.attendeeBase)'.")
    constraint = ci_get(body, "timeConstraint") or {}
    if not isinstance(constraint, dict):
        raise bad_request(req, "BadRequest", "Cannot convert the value of 'timeConstraint' to the expected type "
                          "'microsoft.graph.timeConstraint'.")
    domain_raw = ci_get(constraint, "activityDomain") or "work"
    domain = next((d for d in ACTIVITY_DOMAINS if isinstance(domain_raw, str) and d == domain_raw.lower()), None)
    if domain is None:
        raise bad_request(req, "BadRequest", f"Requested value '{domain_raw}' was not found.")
    duration_raw = ci_get(body, "meetingDuration") or "PT30M"
    duration = parse_duration(duration_raw)
    if not duration or duration <= 0:
        raise bad_request(req, "BadRequest", f"Cannot convert the literal '{duration_raw}' to the expected type "
                          "'Edm.Duration'.")
    max_raw = ci_get(body, "maxCandidates")
    max_candidates = DEFAULT_MAX_CANDIDATES
    if max_raw is not None:
        number = as_number(max_raw)
        if number is None or number != int(number) or number < 1:
            raise bad_request(req, "BadRequest", "Cannot convert the value of 'maxCandidates' to the expected "
                              "type 'Edm.Int32' (a positive number).")
        max_candidates = int(number)
    flags = {}
    for name in ("isOrganizerOptional", "returnSuggestionReasons"):
        raw = ci_get(body, name)
        flags[name] = False if raw is None else as_bool(raw)
        if flags[name] is None:
            raise bad_request(req, "BadRequest", f"Cannot convert the value of '{name}' to the expected type "
                              "'Edm.Boolean'.")
    minimum_raw = ci_get(body, "minimumAttendeePercentage")
    minimum = 50.0 if minimum_raw is None else as_number(minimum_raw)
    if minimum is None or not 0 <= minimum <= 100:
        raise bad_request(req, "BadRequest", "minimumAttendeePercentage must be a number from 0 to 100.")

    attendees = []
    for item in attendees_raw:
        email = ci_get(item, "emailAddress") if isinstance(item, dict) else None
        address = ci_get(email, "address") if isinstance(email, dict) else None
        if not isinstance(address, str) or "@" not in address:
            raise bad_request(req, "ErrorInvalidRecipients", "At least one recipient isn't valid.")
        kind = ci_get(item, "type") or "required"
        kind = kind.lower() if isinstance(kind, str) and kind.lower() in ("required", "optional", "resource") \
            else "required"
        shown_email = {"address": address}
        if isinstance(ci_get(email, "name"), str):
            shown_email["name"] = ci_get(email, "name")
        attendees.append(({"type": kind, "emailAddress": shown_email},
                          store.smtp_user(call.caller.tenant_id, address)))

    prefs = call.prefs
    slots = _slots(call, constraint)
    suggestions = []
    organizer_blocked = 0
    with store.lock:
        candidates = _candidates(call, slots, duration, domain)
        for start in candidates:
            end = start + duration
            organizer = _availability(store, call.user, start, end)
            if not flags["isOrganizerOptional"] and organizer in ("busy", "oof"):
                organizer_blocked += 1
                continue
            availability = [(shown, _availability(store, user, start, end)) for shown, user in attendees]
            if availability:
                confidence = sum(SCORES[a] for _, a in availability) / len(availability)
            else:
                confidence = SCORES[organizer]
            if confidence < minimum:
                continue
            suggestions.append((confidence, start, end, organizer, availability))
    suggestions.sort(key=lambda s: (-s[0], s[1]))
    suggestions = suggestions[:max_candidates]
    result = []
    for order, (confidence, start, end, organizer, availability) in enumerate(suggestions, start=1):
        reason = (REASON_ALL if confidence >= 100 else REASON_MOST) if flags["returnSuggestionReasons"] else ""
        result.append({
            "confidence": round(confidence, 2) if confidence != int(confidence) else int(confidence),
            "order": order,
            "organizerAvailability": organizer,
            "suggestionReason": reason,
            "attendeeAvailability": [{"attendee": shown, "availability": status} for shown, status in availability],
            "locations": [],
            "meetingTimeSlot": {"start": {"dateTime": format_ts(start, prefs.zone), "timeZone": prefs.zone_name},
                                "end": {"dateTime": format_ts(end, prefs.zone), "timeZone": prefs.zone_name}},
        })
    if result:
        empty_reason = ""
    elif not candidates:
        empty_reason = "unknown"
    elif organizer_blocked == len(candidates):
        empty_reason = "organizerUnavailable"
    elif any(user is None for _, user in attendees):
        empty_reason = "attendeesUnavailableOrUnknown"
    else:
        empty_reason = "attendeesUnavailable"
    answer = {"@odata.context": metadata(req, "microsoft.graph.meetingTimeSuggestionsResult"),
              "emptySuggestionsReason": empty_reason, "meetingTimeSuggestions": result}
    return graph_json(200, answer, prefs.applied_header())

