"""The CSDL validator the Graph sandbox tests rely on (tests/support/graph_schema.py) is strict
enough to catch drift: a misspelled property, a wrong enum member or primitive type, a missing
non-nullable property, an ``@odata.type`` that is not a derived type."""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime

import pytest

from tests.support.graph_schema import SchemaError, graph_schema

# Microsoft's documented getSchedule answer (learn.microsoft.com/graph/outlook-get-free-busy-schedule),
# with the status casing of the CSDL enum. Its 2018-08-06 times are literal on purpose: Microsoft's
# example, only checked for shape by the CSDL validator, never sent to the sandbox nor compared with now.
DOCUMENTED_SCHEDULE = {
    "scheduleId": "AlexW@contoso.com",
    "availabilityView": "111111002222222200000000000000000000",
    "scheduleItems": [{"status": "tentative",
                       "start": {"dateTime": "2018-08-06T09:00:00.0000000", "timeZone": "Pacific Standard Time"},
                       "end": {"dateTime": "2018-08-06T10:30:00.0000000", "timeZone": "Pacific Standard Time"}}],
    "workingHours": {"daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"],
                     "startTime": "08:00:00.0000000", "endTime": "17:00:00.0000000",
                     "timeZone": {"@odata.type": "#microsoft.graph.customTimeZone", "bias": 480,
                                  "name": "Customized Time Zone",
                                  "standardOffset": {"time": "02:00:00.0000000", "dayOccurrence": 1,
                                                     "dayOfWeek": "sunday", "month": 11, "year": 0},
                                  "daylightOffset": {"daylightBias": -60, "time": "02:00:00.0000000",
                                                     "dayOccurrence": 2, "dayOfWeek": "sunday", "month": 3,
                                                     "year": 0}}},
}


def test_documented_example_validates() -> None:
    graph_schema().check(DOCUMENTED_SCHEDULE, "graph.scheduleInformation")


@pytest.mark.parametrize(("mutate", "expected"), [
    (lambda v: v.update(availabiltyView="0"), "has no property 'availabiltyView'"),
    (lambda v: v["scheduleItems"][0].update(status="Busy"), "not a member of graph.freeBusyStatus"),
    (lambda v: v["scheduleItems"][0].update(isPrivate="false"), "not a valid Edm.Boolean"),
    (lambda v: v["scheduleItems"][0]["start"].pop("dateTime"), "missing graph.dateTimeTimeZone.dateTime"),
    (lambda v: v["workingHours"].update(startTime="8am"), "not a valid Edm.TimeOfDay"),
    (lambda v: v["workingHours"]["daysOfWeek"].append("Monday"), "not a member of graph.dayOfWeek"),
    (lambda v: v["workingHours"]["timeZone"].update({"@odata.type": "#microsoft.graph.event"}),
     "does not derive from graph.timeZoneBase"),
    (lambda v: v["workingHours"]["timeZone"].update({"@odata.type": "#microsoft.graph.timeZoneBase"}),
     "has no property 'bias'"),
    (lambda v: v.update(scheduleItems={"status": "busy"}), "expected an array"),
    (lambda v: v.update({"@odata.bogus": 1}), "unknown instance annotation"),
])
def test_drift_is_caught(mutate, expected: str) -> None:
    value = copy.deepcopy(DOCUMENTED_SCHEDULE)
    mutate(value)
    with pytest.raises(SchemaError, match=re.escape(expected)):
        graph_schema().check(value, "graph.scheduleInformation")


def test_selected_entities_and_collections() -> None:
    schema = graph_schema()
    schema.check({"@odata.etag": 'W/"x"', "id": "AAMk=", "subject": "s"}, "graph.event", selected=True)
    with pytest.raises(SchemaError, match=r"missing graph\.event\.cancelledOccurrences"):
        schema.check({"id": "AAMk=", "subject": "s"}, "graph.event")
    with pytest.raises(SchemaError, match=r"graph\.event has no property 'subjet'"):
        schema.check_collection({"value": [{"id": "x", "subjet": "s"}]}, "graph.event", selected=True)
    with pytest.raises(SchemaError, match="not allowed beside 'value'"):
        schema.check_collection({"value": [], "count": 1}, "graph.event")
    schema.check({"confidence": 49.66, "order": 1, "organizerAvailability": "free",
                  "attendeeAvailability": [{"attendee": {"type": "required", "emailAddress": {"address": "a@b.c"}},
                                            "availability": "unknown"}],
                  "locations": [], "suggestionReason": ""}, "graph.meetingTimeSuggestion")
    with pytest.raises(SchemaError, match=r"not a valid Edm\.Int32"):
        schema.check({"order": 1.5}, "graph.meetingTimeSuggestion")


def test_error_bodies() -> None:
    schema = graph_schema()
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")  # Graph dates its errors when they happen
    schema.check_error({"error": {"code": "ErrorItemNotFound", "message": "m",
                                  "innerError": {"date": now, "request-id": "r"}}})
    with pytest.raises(SchemaError):
        schema.check_error({"error": {"code": 404, "message": "m"}})
    with pytest.raises(SchemaError):
        schema.check_error({"error": {"code": "x", "message": "m"}, "extra": 1})
