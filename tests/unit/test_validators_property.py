"""Property tests of the request validators: for any JSON body, a request either parses into one
that keeps every limit of the contract, or is refused with InvalidRequest naming a field; no
other exception ever escapes (which would be a 500)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from availability.request import parse as parse_availability
from booking.request import idempotency_key
from booking.request import parse as parse_booking
from shared.errors import InvalidRequest
from tests.support.days import DAY, at

# The clock handed to the parsers (injected, so every example is deterministic): noon UTC a week
# before the tests' day, which is itself computed from today.
NOW = datetime.combine(DAY - timedelta(days=7), time(12), UTC)
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12)
EMAILS = st.sampled_from(["ada@contoso.com", "GRACE@contoso.com", "x", "", "a@b", "alan@contoso.com"]) | st.text()
# After NOW: the day's working hours, a naive time, one 26 weeks on (past the 90-day window) and one
# with microseconds; literal on purpose: a time long past whatever today is, and the two ends of
# datetime's range (they overflow it once converted to UTC).
TIMES = st.sampled_from([at(0, "09:00:00-05:00"), at(0, "17:00:00-05:00"), at(0, "09:00:00"),
                         at(182, "00:00:00Z"), "2020-01-01T00:00:00Z", "9999-12-31T23:59:59-14:00",
                         "0001-01-01T00:00:00+14:00", at(0, "10:00:00.123456+05:30")]) | st.text(max_size=30)
ZONES = st.sampled_from(["America/New_York", "UTC", "Europe/London", "Mars/Base", "Eastern Standard Time", ""])
NUMBERS = st.integers(-10, 3000) | st.booleans() | st.floats(allow_nan=False) | st.text(max_size=4) | st.none()


def bodies(extra: dict) -> st.SearchStrategy:
    fields = {"organizer": EMAILS, "attendees": st.lists(EMAILS, max_size=4) | JSON, "start": TIMES, "end": TIMES,
              "timeZone": ZONES, **extra}
    return st.fixed_dictionaries({}, optional=fields) | st.dictionaries(st.text(max_size=10), JSON, max_size=5)


def outcome(parse, body):
    """The parsed request, or None when refused (and then refused naming a field)."""
    try:
        return parse(body, default_time_zone="UTC", now=NOW)
    except InvalidRequest as refused:
        target = refused.target
    assert target is not None
    return None


AVAILABILITY = bodies({"durationMinutes": NUMBERS, "slotStepMinutes": NUMBERS, "bufferMinutes": NUMBERS,
                       "maxSlots": NUMBERS, "respectWorkingHours": JSON, "tentativeAsBusy": JSON})
BOOKING = bodies({"subject": st.text(max_size=300) | JSON, "body": st.text(max_size=10) | JSON,
                  "onlineMeeting": JSON, "checkAvailability": JSON})


@settings(max_examples=400, deadline=None)
@given(AVAILABILITY)
def test_availability_requests_parse_within_limits_or_are_refused(body):
    request = outcome(parse_availability, body)
    if request is None:
        return
    assert 5 <= request.duration.total_seconds() / 60 <= 1440
    assert request.duration <= request.end - request.start <= timedelta(days=90)
    assert request.end > NOW
    assert request.start.tzinfo is not None and request.end.tzinfo is not None
    assert request.organizer == request.organizer.lower() and request.organizer not in request.attendees
    assert len(request.attendees) <= 99 and len(set(request.attendees)) == len(request.attendees)
    assert 5 <= request.step_minutes <= 1440 and 1 <= request.max_slots <= 500
    assert 0 <= request.buffer.total_seconds() <= 240 * 60


@settings(max_examples=400, deadline=None)
@given(BOOKING)
def test_booking_requests_parse_within_limits_or_are_refused(body):
    request = outcome(parse_booking, body)
    if request is None:
        return
    assert 1 <= len(request.attendees) <= 99
    assert request.end > NOW and request.start < request.end <= request.start + timedelta(hours=24)
    assert 1 <= len(request.subject) <= 255
    request.subject.encode("utf-8")  # storable and sendable
    assert isinstance(request.online_meeting, bool) and isinstance(request.check_availability, bool)
    assert len(request.fingerprint()) == 64


@given(st.text(max_size=220) | st.none())
def test_idempotency_keys_are_printable_ascii_up_to_200(value):
    try:
        key = idempotency_key(value)
    except InvalidRequest as refused:
        target = refused.target
    else:
        assert 1 <= len(key) <= 200 and all(" " <= c <= "~" for c in key)
        return
    assert target == "Idempotency-Key"
