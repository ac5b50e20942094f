"""A week of calendars as instants, for the page to draw in any zone.

The page places everything by instant (UTC), converting to the chosen zone with the browser's
Intl API; the zone arithmetic it cannot do well (a wall-clock time in some zone to an instant:
working hours, the week's local midnights) is done here with zoneinfo.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from devhost.console.config import ConsoleError

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
BOOKING_TAG = "Name TenKCBookingId"  # the service's extended property on the events it books


def zone(name: str) -> ZoneInfo:
    """An IANA zone, or the IANA zone of a Windows name (Graph's answers carry Windows names)."""
    from tzlocal.windows_tz import win_tz

    text = (name or "").strip()
    if text.upper() in ("UTC", "ETC/UTC", "GMT", "Z", "COORDINATED UNIVERSAL TIME"):
        return ZoneInfo("UTC")
    iana = win_tz.get(text) or next((v for k, v in win_tz.items() if k.lower() == text.lower()), None) or text
    try:
        return ZoneInfo(iana)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConsoleError(f"unknown time zone {name!r}") from None


def utc_text(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def window(start_day: date, zone_name: str, days: int = 7) -> dict[str, Any]:
    """The `days` local days from `start_day` in the zone: the availability window (RFC 3339 with
    the zone's offsets) and each day's local midnight to midnight as instants."""
    tz = zone(zone_name)
    bounds = [datetime.combine(start_day + timedelta(days=n), time(0), tz) for n in range(days + 1)]
    return {"zone": zone_name, "start": bounds[0].isoformat(), "end": bounds[-1].isoformat(),
            "days": [{"date": (start_day + timedelta(days=n)).isoformat(), "start": utc_text(bounds[n]),
                      "end": utc_text(bounds[n + 1])} for n in range(days)]}


def _merge(intervals: Iterable[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    merged: list[tuple[datetime, datetime]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def working_hours(user: Mapping[str, Any], start: datetime, end: datetime) -> list[dict[str, str]]:
    """The user's working periods in [start, end), as instants: each listed day from `startTime` to
    `endTime` in the user's own zone (into the next day when `endTime <= startTime`), back-to-back
    periods merged, as the service reads working hours."""
    hours = user.get("workingHours") or {}
    days = {str(d).lower() for d in hours.get("daysOfWeek", [])}
    if not days or not hours.get("startTime") or not hours.get("endTime"):
        return []
    tz = zone(user.get("timeZone") or "UTC")
    begin, finish = time.fromisoformat(hours["startTime"]), time.fromisoformat(hours["endTime"])
    periods = []
    local = start.astimezone(tz).date() - timedelta(days=1)
    while local <= end.astimezone(tz).date():
        if WEEKDAYS[local.weekday()] in days:
            period_end = local + timedelta(days=1) if finish <= begin else local
            periods.append((datetime.combine(local, begin, tz).astimezone(UTC),
                            datetime.combine(period_end, finish, tz).astimezone(UTC)))
        local += timedelta(days=1)
    clipped = [(max(s, start), min(e, end)) for s, e in _merge(periods) if e > start and s < end]
    return [{"start": utc_text(s), "end": utc_text(e)} for s, e in clipped]


def _instant(value: Mapping[str, Any]) -> datetime:
    local = datetime.fromisoformat(str(value["dateTime"]).rstrip("Z"))
    return local.replace(tzinfo=zone(str(value.get("timeZone") or "UTC"))).astimezone(UTC)


def event_view(event: Mapping[str, Any]) -> dict[str, Any]:
    """What the page draws of one of the sandbox's stored events."""
    tag = next((p.get("value") for p in event.get("singleValueExtendedProperties") or []
                if str(p.get("id", "")).endswith(BOOKING_TAG)), None)
    return {
        "id": event.get("id"),
        "iCalUId": event.get("iCalUId"),
        "subject": event.get("subject") or "",
        "showAs": event.get("showAs") or "busy",
        "start": utc_text(_instant(event["start"])),
        "end": utc_text(_instant(event["end"])),
        "isCancelled": bool(event.get("isCancelled")),
        "isOrganizer": bool(event.get("isOrganizer")),
        "response": (event.get("responseStatus") or {}).get("response") or "none",
        "organizer": ((event.get("organizer") or {}).get("emailAddress") or {}).get("address"),
        "attendees": [{"email": (a.get("emailAddress") or {}).get("address"),
                       "response": (a.get("status") or {}).get("response") or "none"}
                      for a in event.get("attendees") or []],
        "bookingId": tag,
    }


def calendar(events: Iterable[Mapping[str, Any]], start: datetime, end: datetime) -> list[dict[str, Any]]:
    """The events overlapping [start, end), as the page draws them."""
    shown = [event_view(e) for e in events]
    return [e for e in shown if e["start"] < utc_text(end) and e["end"] > utc_text(start)]


def link_copies(people: list[dict[str, Any]]) -> None:
    """Give attendees' copies the booking id of the organizer's event with the same iCalUId (the
    service tags only the event it creates; Exchange's copies share its iCalUId)."""
    tagged = {e["iCalUId"]: e["bookingId"] for p in people for e in p["events"] if e["bookingId"] and e["iCalUId"]}
    for person in people:
        for event in person["events"]:
            if not event["bookingId"] and event["iCalUId"] in tagged:
                event["bookingId"] = tagged[event["iCalUId"]]


def next_monday(today: date | None = None) -> date:
    """Monday of next week: the demo calendars (sandbox/demo.py) are next week's."""
    today = today or datetime.now(UTC).date()
    return today - timedelta(days=today.weekday()) + timedelta(days=7)
