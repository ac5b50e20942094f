"""Graph's times as whole seconds, and busy time that does not fall on whole minutes (no server)."""

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from availability.schedule import _item_spans, spans_from_view
from availability.slots import Busy, Participant, SlotQuery, find_slots, floor_seconds
from shared.graph import graph_seconds, graph_time, utc_seconds
from tests.support.days import DAY

NOON = datetime.combine(DAY, time(12), UTC)


def text(moment: datetime, fraction: str = ".0000000") -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + fraction


def test_utc_texts_become_the_same_seconds_a_datetime_gives():
    for moment in (NOON, NOON + timedelta(days=400, seconds=59), datetime(1970, 1, 1, tzinfo=UTC)):
        for fraction in ("", ".0000000", ".5"):
            value = {"dateTime": text(moment, fraction), "timeZone": "UTC"}
            assert graph_seconds(value) == floor_seconds(graph_time(value)) == floor_seconds(moment)


def test_an_end_with_a_fraction_rounds_up_a_start_rounds_down():
    value = {"dateTime": text(NOON, ".0000001"), "timeZone": "UTC"}
    assert graph_seconds(value) == floor_seconds(NOON)
    assert graph_seconds(value, end=True) == floor_seconds(NOON) + 1
    assert graph_seconds({"dateTime": text(NOON), "timeZone": "UTC"}, end=True) == floor_seconds(NOON)


def test_a_zone_other_than_utc_is_read_through_its_name():
    local = NOON.astimezone(ZoneInfo("America/New_York"))
    value = {"dateTime": text(local), "timeZone": "Eastern Standard Time"}
    assert graph_seconds(value) == floor_seconds(NOON)


@pytest.mark.parametrize("bad", ["", "2040-13-01T00:00:00", "2040-01-01 10:00:00", "2040-01-01T24:00:00",
                                 "2040-01-01T10:00:00Z", "+040-01-01T10:00:00", "2040-01-01T10:00"])
def test_what_is_not_a_graph_time_is_refused(bad):
    with pytest.raises(ValueError, match="not a Graph date-time"):
        utc_seconds(bad)
    assert graph_seconds({"dateTime": "", "timeZone": "UTC"}) is None
    assert graph_seconds(None) is None


def test_schedule_items_keep_only_busy_time_rounded_outwards():
    items = [{"status": "Busy", "start": {"dateTime": text(NOON, ".2500000"), "timeZone": "UTC"},
              "end": {"dateTime": text(NOON + timedelta(minutes=30), ".2500000"), "timeZone": "UTC"}},
             {"status": "free", "start": {"dateTime": text(NOON), "timeZone": "UTC"},
              "end": {"dateTime": text(NOON + timedelta(hours=1)), "timeZone": "UTC"}},
             {"status": "workingElsewhere", "start": {"dateTime": text(NOON), "timeZone": "UTC"},
              "end": {"dateTime": text(NOON + timedelta(hours=1)), "timeZone": "UTC"}},
             {"status": "tentative", "start": {"dateTime": text(NOON), "timeZone": "UTC"},
              "end": {"dateTime": text(NOON + timedelta(hours=1)), "timeZone": "UTC"}}]
    for _ in range(2):  # once parsed, once from the cache of texts
        assert _item_spans(items) == [
            (floor_seconds(NOON), floor_seconds(NOON) + 1801, "busy"),
            (floor_seconds(NOON), floor_seconds(NOON) + 3600, "tentative")]
    assert spans_from_view("0200", floor_seconds(NOON), 15) == [
        (floor_seconds(NOON) + 900, floor_seconds(NOON) + 1800, "busy")]


def test_busy_time_off_the_minute_still_rules_out_the_slots_it_touches():
    query = SlotQuery(start=NOON, end=NOON + timedelta(hours=2), duration=timedelta(minutes=30), step_minutes=30,
                      buffer=timedelta(0), max_slots=10, zone=ZoneInfo("UTC"), respect_working_hours=False)
    # Busy from 12:29:59.5 to 13:00:00.5: the 12:00, 12:30 and 13:00 slots each overlap it.
    busy = Busy(NOON + timedelta(minutes=29, seconds=59, microseconds=500000),
                NOON + timedelta(minutes=60, microseconds=500000))
    starts = [s.strftime("%H:%M") for s, _ in find_slots([Participant("a@x.example", [busy])], query).slots]
    assert starts == ["13:30"]
    # The same time as whole-second spans (start rounded down, end up) gives the same answer.
    spans = [(floor_seconds(busy.start), floor_seconds(busy.end) + 1, "busy")]
    same = find_slots([Participant("a@x.example", spans=spans)], query).slots
    assert [s.strftime("%H:%M") for s, _ in same] == ["13:30"]
    # Busy exactly until 12:30 leaves the 12:30 slot free (half-open intervals).
    edge = Busy(NOON, NOON + timedelta(minutes=30))
    starts = [s.strftime("%H:%M") for s, _ in find_slots([Participant("a@x.example", [edge])], query).slots]
    assert starts == ["12:30", "13:00", "13:30"]
