"""Delegated free time: Graph `findMeetingTimes` with the organizer's own token.

The request is fixed by the contract: every attendee required, `minimumAttendeePercentage` 100,
`isOrganizerOptional` false, `activityDomain` `work` with working hours (else `unrestricted`),
`maxCandidates` at least `maxSlots`. Microsoft ranks suggestions by confidence and may return
some where not everyone is free: those are dropped, the rest kept only where they start on the
request's wall-clock grid (a suggestion is exactly the meeting's length, so moving its start would
leave free time unchecked), then sorted by start.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from availability.request import AvailabilityRequest
from shared.graph import GraphClient, graph_time

# Microsoft's emptySuggestionsReason (compared case-insensitively) as the contract's emptyReason.
EMPTY_REASONS = {
    "attendeesunavailableorunknown": "participant_unavailable",
    "attendeesunavailable": "no_common_time",
    "organizerunavailable": "no_common_time",
    "locationsunavailable": "no_common_time",
    "unknown": "no_common_time",
}
MAX_CANDIDATES = 1000


def on_grid(start: datetime, request: AvailabilityRequest) -> bool:
    local = start.astimezone(request.zone)
    return local.second == 0 and (local.hour * 60 + local.minute) % request.step_minutes == 0


def body_for(request: AvailabilityRequest) -> dict[str, Any]:
    def moment(value: datetime) -> dict[str, str]:
        return {"dateTime": value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"}

    minutes = int(request.duration.total_seconds() // 60)
    return {
        "attendees": [{"type": "required", "emailAddress": {"address": email}} for email in request.attendees],
        "timeConstraint": {"activityDomain": "work" if request.respect_working_hours else "unrestricted",
                           "timeSlots": [{"start": moment(request.start), "end": moment(request.end)}]},
        "meetingDuration": f"PT{minutes // 60}H{minutes % 60}M",
        "maxCandidates": min(MAX_CANDIDATES, max(request.max_slots * 4, request.max_slots)),
        "isOrganizerOptional": False,
        "returnSuggestionReasons": False,
        "minimumAttendeePercentage": 100,
    }


def find(graph: GraphClient, tenant_id: str, token: str, request: AvailabilityRequest,
         *, now: datetime) -> tuple[list[tuple[datetime, datetime]], str | None]:
    answer = graph.post("/me/findMeetingTimes", tenant_id=tenant_id, mailbox=request.organizer, token=token,
                        json=body_for(request), retry=True, prefer=['outlook.timezone="UTC"']).body or {}
    free_statuses = {"free"} if request.tentative_as_busy else {"free", "tentative"}
    slots = []
    for suggestion in answer.get("meetingTimeSuggestions") or ():
        availability = [str(a.get("availability", "")).lower() for a in suggestion.get("attendeeAvailability") or ()]
        organizer = str(suggestion.get("organizerAvailability") or "free").lower()
        if organizer not in free_statuses or any(a not in free_statuses for a in availability):
            continue
        slot = suggestion.get("meetingTimeSlot") or {}
        start, end = graph_time(slot.get("start")), graph_time(slot.get("end"))
        if start is None or end is None:
            continue
        if end - start < request.duration or not on_grid(start, request):
            continue
        if start < max(request.start, now) or start + request.duration > request.end:
            continue
        slots.append(start)
    starts = sorted(set(slots))[: request.max_slots]
    result = [(s.astimezone(request.zone), (s + request.duration).astimezone(request.zone)) for s in starts]
    reason = None
    if not result:
        given = str(answer.get("emptySuggestionsReason") or "").lower()
        reason = EMPTY_REASONS.get(given, "no_common_time")
    return result, reason
