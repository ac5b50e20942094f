"""The event as the sandbox keeps it, what a create/update body may say, and the Graph ``event``
it renders (https://learn.microsoft.com/en-us/graph/api/resources/event; property names, types
and enum members from Graph's v1.0 CSDL, tests/support/graph-calendar-types.json).

Choices where Microsoft documents nothing:
- Ids are opaque URL-safe base64 (like Graph's "AAMkA...AAA=" REST ids and "AAkALg..." immutable
  ids), case-sensitive. Each item has a REST id and an immutable id; answers show the REST id,
  or the immutable id under ``Prefer: IdType="ImmutableId"``. Either is accepted in a path.
- ``start``/``end`` are kept in the zone the client gave (``originalStartTimeZone``) and rendered
  in the ``Prefer: outlook.timezone`` zone, UTC by default, as Graph does. Each names its own
  zone (start and end may differ). A local time that occurs twice in a Windows or IANA zone (the
  hour repeated when clocks fall back) is read as its FIRST occurrence, the offset before the
  change (zoneinfo ``fold=0``), on create and update: Exchange documents no reading
  (https://learn.microsoft.com/en-us/graph/api/resources/datetimetimezone says nothing of it),
  so a client that means the second one must send UTC or an offset. A local time that does not
  exist (skipped when clocks spring forward) is read with the offset before the change too.
- A body that turns on ``isOnlineMeeting`` gets a Teams join block appended to ``body`` (Graph
  writes the join blob into the body, https://learn.microsoft.com/en-us/graph/outlook-calendar-online-meetings);
  ``onlineMeeting`` carries ``joinUrl``. The sandbox calendar allows only ``teamsForBusiness``.
- Recurring events are not modelled: a ``recurrence`` other than null is a 400.
"""

from __future__ import annotations

import base64
import html
import json
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any
from urllib.parse import quote

from .common import as_bool, as_number
from .timezones import BadDateTime, Preferences, UnknownTimeZone, format_local, format_utc_z, parse_local, resolve_zone

FREE_BUSY = ("unknown", "free", "tentative", "busy", "oof", "workingElsewhere")
SENSITIVITY = ("normal", "personal", "private", "confidential")
IMPORTANCE = ("low", "normal", "high")
ATTENDEE_TYPES = ("required", "optional", "resource")
BODY_TYPES = ("text", "html")
MEETING_PROVIDERS = ("unknown", "skypeForBusiness", "skypeForConsumer", "teamsForBusiness")
ALLOWED_MEETING_PROVIDERS = ("teamsForBusiness",)
LOCATION_TYPES = ("default", "conferenceRoom", "homeAddress", "businessAddress", "geoCoordinates",
                  "streetAddress", "hotel", "restaurant", "localBusiness", "postalAddress")
NO_RESPONSE_TIME = "0001-01-01T00:00:00Z"

# Every structural property of graph.event (and its bases), in the order Graph's examples show.
EVENT_PROPERTIES = (
    "id", "createdDateTime", "lastModifiedDateTime", "changeKey", "categories", "transactionId",
    "originalStartTimeZone", "originalEndTimeZone", "iCalUId", "reminderMinutesBeforeStart", "isReminderOn",
    "hasAttachments", "subject", "bodyPreview", "importance", "sensitivity", "isAllDay", "isCancelled",
    "isOrganizer", "responseRequested", "seriesMasterId", "showAs", "type", "webLink", "onlineMeetingUrl",
    "isOnlineMeeting", "onlineMeetingProvider", "allowNewTimeProposals", "isDraft", "hideAttendees",
    "cancelledOccurrences", "originalStart", "responseStatus", "body", "start", "end", "location", "locations",
    "recurrence", "attendees", "organizer", "onlineMeeting",
)
EVENT_NAVIGATION = ("attachments", "calendar", "exceptionOccurrences", "extensions", "instances",
                    "multiValueExtendedProperties", "singleValueExtendedProperties")
_CANONICAL = {name.lower(): name for name in (*EVENT_PROPERTIES, *EVENT_NAVIGATION)}
# What a client may set (create and update). Other known properties are read-only: ignored.
WRITABLE = {"subject", "body", "start", "end", "location", "locations", "attendees", "isOnlineMeeting",
            "onlineMeetingProvider", "allowNewTimeProposals", "transactionId", "showAs", "sensitivity",
            "importance", "isAllDay", "categories", "isReminderOn", "reminderMinutesBeforeStart",
            "responseRequested", "hideAttendees", "recurrence", "singleValueExtendedProperties",
            "multiValueExtendedProperties"}


def canonical_property(name: str) -> str | None:
    """The event property (or navigation property) ``name`` names, case-insensitively."""
    return _CANONICAL.get(name.lower())


class EventInputError(ValueError):
    """A create/update body Graph would refuse: answered as 400 with ``code`` and ``message``."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def _unknown_property(name: str) -> EventInputError:
    return EventInputError("BadRequest", f"The property '{name}' does not exist on type 'microsoft.graph.event'. "
                           "Make sure to only use property names that are defined by the type or mark the type as "
                           "open type.")


def _enum(value: Any, members: tuple[str, ...], what: str) -> str:
    if isinstance(value, str):
        for member in members:
            if member.lower() == value.strip().lower():
                return member
    raise EventInputError("BadRequest", f"Requested value '{value}' was not found.")


def _string(value: Any, what: str, *, allow_none: bool = True) -> str | None:
    if value is None and allow_none:
        return None
    if not isinstance(value, str):
        raise EventInputError("BadRequest", f"Cannot convert the value of '{what}' to the expected type 'Edm.String'.")
    return value


def _boolean(value: Any, what: str) -> bool:
    result = as_bool(value)
    if result is None:
        raise EventInputError("BadRequest", f"Cannot convert the value of '{what}' to the expected type 'Edm.Boolean'.")
    return result


# -- ids ------------------------------------------------------------------------------------------

_REST_PREFIX = b"\x00\x03\x24\x00"  # base64 "AAMkA..." like Outlook REST ids
_IMMUTABLE_PREFIX = b"\x00\x09\x00\x2e\x00"  # base64 "AAkALgA..." like immutable ids


def _opaque_id(prefix: bytes, mailbox_id: str) -> str:
    raw = prefix + uuid.UUID(mailbox_id).bytes + secrets.token_bytes(104 - len(prefix) - 16)
    return base64.urlsafe_b64encode(raw).decode("ascii")  # 104 bytes: one "=" of padding, as Graph's


def new_rest_id(mailbox_id: str) -> str:
    return _opaque_id(_REST_PREFIX, mailbox_id)


def new_immutable_id(mailbox_id: str) -> str:
    return _opaque_id(_IMMUTABLE_PREFIX, mailbox_id)


def new_change_key() -> str:
    return base64.b64encode(secrets.token_bytes(20)).decode("ascii")


def new_ical_uid() -> str:
    return ("040000008200E00074C5B7101A82E00800000000" + secrets.token_hex(8).upper() + "0" * 16 + "10000000"
            + secrets.token_hex(16).upper())


def new_join_url(tenant_id: str, organizer_id: str) -> str:
    thread = base64.urlsafe_b64encode(secrets.token_bytes(36)).decode("ascii").rstrip("=")
    context = quote(f'{{"Tid":"{tenant_id}","Oid":"{organizer_id}"}}', safe="")
    return f"https://teams.microsoft.com/l/meetup-join/19%3ameeting_{thread}%40thread.v2/0?context={context}"


# -- the stored event -------------------------------------------------------------------------

class StoredEvent:
    """One calendar item in one mailbox. ``props`` holds Graph property values as stored (times in
    the zone the client gave); ``start_ts``/``end_ts`` are the UTC instants as epoch seconds."""

    __slots__ = (
        "_fmt",
        "_items",
        "_sched",
        "app_id",
        "end_ts",
        "ext",
        "folder",
        "immutable_id",
        "mailbox_id",
        "props",
        "rest_id",
        "start_ts",
        "tenant_id",
    )

    def __init__(self, *, mailbox_id: str, tenant_id: str, props: dict[str, Any], start_ts: float, end_ts: float,
                 app_id: str | None, ext: dict[str, tuple[str, str]] | None = None):
        self.mailbox_id, self.tenant_id = mailbox_id, tenant_id
        self.rest_id, self.immutable_id = new_rest_id(mailbox_id), new_immutable_id(mailbox_id)
        self.props = props
        self.start_ts, self.end_ts = start_ts, end_ts
        self.app_id = app_id
        self.ext: dict[str, tuple[str, str]] = dict(ext or {})  # lower-cased id -> (id as given, value)
        self.folder = "calendar"
        self._sched: tuple[Any, ...] | None = None
        self._fmt: dict[str, tuple[str, str]] = {}
        self._items: dict[str, str] = {}

    @property
    def in_calendar(self) -> bool:
        return self.folder == "calendar"

    @property
    def is_cancelled(self) -> bool:
        return bool(self.props.get("isCancelled"))

    def touch(self) -> None:
        """Record a modification: new change key and lastModifiedDateTime; drop cached views."""
        self.props["changeKey"] = new_change_key()
        self.props["lastModifiedDateTime"] = format_utc_z(datetime.now(UTC))
        self._sched = None
        self._fmt = {}
        self._items = {}

    def times_in(self, zone_name: str, zone: tzinfo) -> tuple[str, str]:
        """(start, end) as Graph ``dateTime`` strings in ``zone``, computed once per zone and change."""
        cached = self._fmt.get(zone_name)
        if cached is None:
            cached = (format_local(datetime.fromtimestamp(self.start_ts, UTC), zone),
                      format_local(datetime.fromtimestamp(self.end_ts, UTC), zone))
            self._fmt[zone_name] = cached
        return cached

    def schedule_item_json(self, zone_name: str, zone: tzinfo) -> str:
        """This item's getSchedule ``scheduleItem`` as JSON text in ``zone``, computed once per zone
        and change (getSchedule answers are mostly these; see schedule.py)."""
        cached = self._items.get(zone_name)
        if cached is None:
            status, _, private, subject, location = self.schedule_view()
            start, end = self.times_in(zone_name, zone)
            item: dict[str, Any] = {"status": status}
            if not private:
                item.update(isPrivate=False, subject=subject, location=location)
            item["start"] = {"dateTime": start, "timeZone": zone_name}
            item["end"] = {"dateTime": end, "timeZone": zone_name}
            cached = json.dumps(item, ensure_ascii=False, separators=(",", ":"))
            self._items[zone_name] = cached
        return cached

    def schedule_view(self) -> tuple[Any, ...]:
        """(status, digit, isPrivate, subject, location) for getSchedule, computed once per change."""
        if self._sched is None:
            status = self.props.get("showAs") or "busy"
            digit = {"tentative": 1, "busy": 2, "oof": 3}.get(status, 0)
            private = self.props.get("sensitivity") in ("private", "confidential")
            location = (self.props.get("location") or {}).get("displayName") or ""
            self._sched = (status, digit, private, self.props.get("subject") or "", location)
        return self._sched


# -- reading a create/update body ----------------------------------------------------------------

def _date_time_time_zone(value: Any, what: str) -> tuple[datetime, str]:
    if not isinstance(value, dict):
        raise EventInputError("BadRequest", f"Cannot convert the value of '{what}' to the expected type "
                              "'microsoft.graph.dateTimeTimeZone'.")
    lowered = {k.lower(): v for k, v in value.items()}
    zone_name = lowered.get("timezone") or "UTC"
    try:
        zone = resolve_zone(zone_name)
    except UnknownTimeZone:
        raise EventInputError("TimeZoneNotSupportedException", "A valid TimeZone value must be specified. "
                              f"The following TimeZone value is not supported: '{zone_name}'.") from None
    try:
        instant = parse_local(lowered.get("datetime"), zone)
    except BadDateTime:
        raise EventInputError("BadRequest", f"The value '{lowered.get('datetime')}' of '{what}/dateTime' is not a "
                              "valid date-time.") from None
    return instant, zone_name


def _attendees(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise EventInputError("BadRequest", "Cannot convert the value of 'attendees' to the expected type "
                              "'Collection(microsoft.graph.attendee)'.")
    result, seen = [], set()
    for item in value:
        if not isinstance(item, dict):
            raise EventInputError("BadRequest", "An attendee must be an object.")
        lowered = {k.lower(): v for k, v in item.items()}
        email = lowered.get("emailaddress") or {}
        address = email.get("address") if isinstance(email, dict) else None
        if not isinstance(address, str) or "@" not in address:
            raise EventInputError("ErrorInvalidRecipients", "At least one recipient isn't valid., A message can't be "
                                  "sent because it contains no recipients.")
        if address.lower() in seen:
            continue
        seen.add(address.lower())
        kind = _enum(lowered.get("type", "required"), ATTENDEE_TYPES, "type")
        name = email.get("name") if isinstance(email.get("name"), str) else address
        result.append({"type": kind, "status": {"response": "none", "time": NO_RESPONSE_TIME},
                       "emailAddress": {"name": name, "address": address}})
    return result


def _location(value: Any) -> dict[str, Any]:
    if value is None:
        return empty_location()
    if not isinstance(value, dict):
        raise EventInputError("BadRequest", "Cannot convert the value of 'location' to the expected type "
                              "'microsoft.graph.location'.")
    lowered = {k.lower(): v for k, v in value.items()}
    display = _string(lowered.get("displayname", ""), "location/displayName") or ""
    location: dict[str, Any] = {"displayName": display,
                                "locationType": _enum(lowered.get("locationtype", "default"), LOCATION_TYPES,
                                                      "locationType")}
    if isinstance(lowered.get("locationemailaddress"), str):
        location["locationEmailAddress"] = lowered["locationemailaddress"]
    if isinstance(lowered.get("locationuri"), str):
        location["locationUri"] = lowered["locationuri"]
    if display:
        location["uniqueId"] = display
        location["uniqueIdType"] = "private"
    else:
        location["uniqueIdType"] = "unknown"
    for key, canonical in (("address", "address"), ("coordinates", "coordinates")):
        if isinstance(lowered.get(key), dict):
            location[canonical] = dict(lowered[key])
    return location


def empty_location() -> dict[str, Any]:
    return {"displayName": "", "locationType": "default", "uniqueIdType": "unknown", "address": {}, "coordinates": {}}


def _body(value: Any) -> dict[str, str]:
    if value is None:
        return {"contentType": "html", "content": ""}
    if not isinstance(value, dict):
        raise EventInputError("BadRequest", "Cannot convert the value of 'body' to the expected type "
                              "'microsoft.graph.itemBody'.")
    lowered = {k.lower(): v for k, v in value.items()}
    kind = _enum(lowered.get("contenttype", "text"), BODY_TYPES, "contentType")
    content = _string(lowered.get("content", ""), "body/content") or ""
    return {"contentType": kind, "content": content}


def _extended(value: Any) -> list[tuple[str, str]]:
    if not isinstance(value, list):
        raise EventInputError("BadRequest", "Cannot convert the value of 'singleValueExtendedProperties' to the "
                              "expected type 'Collection(microsoft.graph.singleValueLegacyExtendedProperty)'.")
    result = []
    for item in value:
        lowered = {k.lower(): v for k, v in item.items()} if isinstance(item, dict) else {}
        prop_id, prop_value = lowered.get("id"), lowered.get("value")
        if not isinstance(prop_id, str) or not prop_id.strip() or not isinstance(prop_value, str):
            raise EventInputError("BadRequest", "A singleValueExtendedProperty needs a string 'id' and 'value'.")
        result.append((prop_id.strip(), prop_value))
    return result


@dataclass
class EventInput:
    """What a create/update body says: property changes, extended properties, and the instants."""

    changes: dict[str, Any]
    extended: list[tuple[str, str]] | None
    start: datetime | None
    end: datetime | None


def read_event_input(raw: Any, *, lenient: bool = False) -> EventInput:
    """Check and normalise a create/update body. ``lenient`` (seeded events) skips unknown names."""
    if not isinstance(raw, dict):
        raise EventInputError("BadRequest", "The request body must be a JSON object (an event).")
    changes: dict[str, Any] = {}
    extended = None
    start = end = None
    for key, value in raw.items():
        if key.startswith("@"):
            continue
        name = canonical_property(key)
        if name is None:
            if lenient:
                continue
            raise _unknown_property(key)
        if name not in WRITABLE:
            continue  # read-only (id, createdDateTime, iCalUId...): ignored as Graph does
        if name == "subject":
            changes["subject"] = _string(value, "subject") or ""
        elif name == "body":
            changes["body"] = _body(value)
        elif name in ("start", "end"):
            instant, zone_name = _date_time_time_zone(value, name)
            changes[name] = {"dateTime": format_local(instant, resolve_zone(zone_name)), "timeZone": zone_name}
            changes["originalStartTimeZone" if name == "start" else "originalEndTimeZone"] = zone_name
            if name == "start":
                start = instant
            else:
                end = instant
        elif name == "location":
            changes["location"] = _location(value)
        elif name == "locations":
            if value is not None and not isinstance(value, list):
                raise EventInputError("BadRequest", "Cannot convert the value of 'locations' to the expected type "
                                      "'Collection(microsoft.graph.location)'.")
            changes["locations"] = [_location(item) for item in value or []]
        elif name == "attendees":
            changes["attendees"] = _attendees(value)
        elif name in ("isOnlineMeeting", "allowNewTimeProposals", "isAllDay", "isReminderOn", "responseRequested",
                      "hideAttendees"):
            changes[name] = _boolean(value, name)
        elif name == "onlineMeetingProvider":
            changes[name] = _enum(value, MEETING_PROVIDERS, name)
        elif name == "transactionId":
            changes[name] = _string(value, name)
        elif name == "showAs":
            changes[name] = _enum(value, FREE_BUSY, name)
        elif name == "sensitivity":
            changes[name] = _enum(value, SENSITIVITY, name)
        elif name == "importance":
            changes[name] = _enum(value, IMPORTANCE, name)
        elif name == "categories":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise EventInputError("BadRequest", "Cannot convert the value of 'categories' to the expected type "
                                      "'Collection(Edm.String)'.")
            changes[name] = list(value)
        elif name == "reminderMinutesBeforeStart":
            number = as_number(value)
            if number is None or number != int(number):
                raise EventInputError("BadRequest", "Cannot convert the value of 'reminderMinutesBeforeStart' to "
                                      "the expected type 'Edm.Int32'.")
            changes[name] = int(number)
        elif name == "recurrence":
            if value is not None:
                raise EventInputError("ErrorInvalidRequest", "The sandbox does not model recurring events; "
                                      "create single instances.")
        elif name == "singleValueExtendedProperties":
            extended = _extended(value)
    if "location" in changes and "locations" not in changes:
        display = changes["location"].get("displayName")
        changes["locations"] = [dict(changes["location"])] if display else []
    return EventInput(changes=changes, extended=extended, start=start, end=end)


def check_online_provider(changes: dict[str, Any]) -> None:
    provider = changes.get("onlineMeetingProvider")
    if changes.get("isOnlineMeeting") and provider not in (None, "unknown", *ALLOWED_MEETING_PROVIDERS):
        # The provider must be one of the calendar's allowedOnlineMeetingProviders
        # (https://learn.microsoft.com/en-us/graph/outlook-calendar-online-meetings); what Graph
        # answers otherwise is not documented: the sandbox refuses.
        raise EventInputError("ErrorInvalidRequest", f"The online meeting provider '{provider}' is not allowed for "
                              "this calendar (allowedOnlineMeetingProviders: teamsForBusiness).")


# -- body helpers ---------------------------------------------------------------------------------

_TAG_RE = re.compile(r"<[^>]+>")
_SPACE_RE = re.compile(r"\s+")


def html_of(body: dict[str, str]) -> str:
    content = body.get("content") or ""
    if body.get("contentType") == "html":
        if "<html" in content.lower():
            return content
        return f"<html>\r\n<head>\r\n</head>\r\n<body>\r\n{content}\r\n</body>\r\n</html>\r\n"
    escaped = html.escape(content).replace("\n", "<br>\r\n")
    return f"<html>\r\n<head>\r\n</head>\r\n<body>\r\n{escaped}\r\n</body>\r\n</html>\r\n"


def text_of(body: dict[str, str]) -> str:
    content = body.get("content") or ""
    if body.get("contentType") == "html":
        content = html.unescape(_TAG_RE.sub(" ", re.sub(r"(?is)<head>.*?</head>", " ", content)))
    return _SPACE_RE.sub(" ", content).strip()


def teams_block(join_url: str) -> str:
    return ("<div style=\"width:100%\"><span style=\"white-space:nowrap\">________________________________________"
            "________________________________________</span></div><div><b>Microsoft Teams meeting</b></div>"
            f"<div><a href=\"{html.escape(join_url, quote=True)}\">Join the meeting now</a></div>"
            "<div><span style=\"white-space:nowrap\">________________________________________________________"
            "________________________</span></div>")


def add_teams_block(body: dict[str, str], join_url: str) -> dict[str, str]:
    page = html_of(body)
    block = teams_block(join_url)
    if "</body>" in page:
        page = page.replace("</body>", block + "\r\n</body>", 1)
    else:
        page += block
    return {"contentType": "html", "content": page}


# -- rendering --------------------------------------------------------------------------------

def web_link(item_id: str) -> str:
    return f"https://outlook.office365.com/owa/?itemid={quote(item_id, safe='')}&exvsurl=1&path=/calendar/item"


def render_event(ev: StoredEvent, prefs: Preferences, *, select: list[str] | None = None,
                 expand_extended: tuple[bool, set[str] | None] | None = None,
                 context: str | None = None) -> dict[str, Any]:
    """The Graph ``event`` for ``ev`` as the caller's preferences ask for it.

    ``select``: canonical property names ($select), or None for all. ``expand_extended``:
    (True, None) expands every single-value extended property, (True, {ids}) only those ids.
    """
    p = ev.props
    item_id = ev.immutable_id if prefs.immutable_ids else ev.rest_id
    body = p.get("body") or {"contentType": "html", "content": ""}
    if prefs.body_type == "text":
        shown_body = {"contentType": "text", "content": text_of(body)}
    else:
        shown_body = {"contentType": "html", "content": html_of(body)}
    start, end = ev.times_in(prefs.zone_name, prefs.zone)
    full: dict[str, Any] = {
        "id": item_id,
        "createdDateTime": p["createdDateTime"],
        "lastModifiedDateTime": p["lastModifiedDateTime"],
        "changeKey": p["changeKey"],
        "categories": list(p.get("categories") or []),
        "transactionId": p.get("transactionId"),
        "originalStartTimeZone": p.get("originalStartTimeZone") or "UTC",
        "originalEndTimeZone": p.get("originalEndTimeZone") or "UTC",
        "iCalUId": p["iCalUId"],
        "reminderMinutesBeforeStart": p.get("reminderMinutesBeforeStart", 15),
        "isReminderOn": p.get("isReminderOn", True),
        "hasAttachments": False,
        "subject": p.get("subject") or "",
        "bodyPreview": text_of(body)[:255],
        "importance": p.get("importance") or "normal",
        "sensitivity": p.get("sensitivity") or "normal",
        "isAllDay": p.get("isAllDay", False),
        "isCancelled": bool(p.get("isCancelled")),
        "isOrganizer": bool(p.get("isOrganizer")),
        "responseRequested": p.get("responseRequested", True),
        "seriesMasterId": None,
        "showAs": p.get("showAs") or "busy",
        "type": "singleInstance",
        "webLink": web_link(item_id),
        "onlineMeetingUrl": None,
        "isOnlineMeeting": bool(p.get("isOnlineMeeting")),
        "onlineMeetingProvider": p.get("onlineMeetingProvider") or "unknown",
        "allowNewTimeProposals": p.get("allowNewTimeProposals", True),
        "isDraft": False,
        "hideAttendees": p.get("hideAttendees", False),
        "cancelledOccurrences": [],
        "responseStatus": dict(p.get("responseStatus") or {"response": "organizer", "time": NO_RESPONSE_TIME}),
        "body": shown_body,
        "start": {"dateTime": start, "timeZone": prefs.zone_name},
        "end": {"dateTime": end, "timeZone": prefs.zone_name},
        "location": dict(p.get("location") or empty_location()),
        "locations": [dict(loc) for loc in p.get("locations") or []],
        "recurrence": None,
        "attendees": [{"type": a["type"], "status": dict(a["status"]), "emailAddress": dict(a["emailAddress"])}
                      for a in p.get("attendees") or []],
        "organizer": {"emailAddress": dict(p["organizer"]["emailAddress"])},
        "onlineMeeting": dict(p["onlineMeeting"]) if p.get("onlineMeeting") else None,
    }
    if not p.get("transactionId"):
        del full["transactionId"]  # "returned in responses only if the app set it" (event resource page)
    out: dict[str, Any] = {}
    if context:
        out["@odata.context"] = context
    out["@odata.etag"] = f'W/"{p["changeKey"]}"'
    if select is None:
        out.update(full)
    else:
        out["id"] = item_id
        for name in select:  # a selected but unset property (transactionId, originalStart) is null
            out[name] = full.get(name)
    if expand_extended is not None and expand_extended[0]:
        wanted = expand_extended[1]
        props = [{"id": given, "value": value} for key, (given, value) in ev.ext.items()
                 if wanted is None or key in wanted]
        out["singleValueExtendedProperties"] = props
    return out


def stored_event(ev: StoredEvent) -> dict[str, Any]:
    """The event as stored (control endpoint): REST id, times in the zone given, extended properties."""
    rendered = render_event(ev, Preferences(), expand_extended=(True, None))
    rendered["start"] = dict(ev.props["start"])
    rendered["end"] = dict(ev.props["end"])
    if not rendered["singleValueExtendedProperties"]:
        del rendered["singleValueExtendedProperties"]
    return rendered
