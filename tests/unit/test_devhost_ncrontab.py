"""devhost without servers: NCRONTAB schedules, `%SETTING%` expressions, host.json and local settings."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from devhost.config import (
    HostConfig,
    QueueOptions,
    apply_settings,
    load_local_settings,
    local_http_port,
    parse_timespan,
    resolve_setting_expressions,
    storage_connection_string,
)
from devhost.ncrontab import CronSchedule
from devhost.queues import decode_body, poison_queue_name


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


# ----- NCRONTAB -----
# Literal dates on purpose: pure calendar arithmetic on fixed instants handed to the schedule (the
# next occurrence after a given moment), never compared with today, so they cannot expire.


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("0 */5 * * * *", at(2024, 5, 1, 12, 3, 10), at(2024, 5, 1, 12, 5, 0)),
        ("*/15 * * * * *", at(2024, 5, 1, 12, 3, 10), at(2024, 5, 1, 12, 3, 15)),
        ("* * * * * *", at(2024, 5, 1, 23, 59, 59), at(2024, 5, 2, 0, 0, 0)),
        # strictly after: a moment that is itself on the schedule gives the next one
        ("0 0 * * * *", at(2024, 5, 1, 12, 0, 0), at(2024, 5, 1, 13, 0, 0)),
        # weekdays only, from a Friday evening to Monday morning (2024-05-03 is a Friday)
        ("0 30 9 * * 1-5", at(2024, 5, 3, 10, 0, 0), at(2024, 5, 6, 9, 30, 0)),
        # Sunday = 0
        ("0 0 8 * * 0", at(2024, 5, 1), at(2024, 5, 5, 8, 0, 0)),
        # day names and month names, any case
        ("0 0 12 * * MON,wed", at(2024, 5, 1, 12, 0, 1), at(2024, 5, 6, 12, 0, 0)),
        ("0 0 0 1 JAN,jul *", at(2024, 5, 1), at(2024, 7, 1)),
        ("0 0 0 1 * * ", at(2024, 12, 15), at(2025, 1, 1)),
        # lists, ranges and steps together; `a/n` runs from a to the maximum
        ("0 5/20 1-2,22 * * *", at(2024, 5, 1, 2, 50), at(2024, 5, 1, 22, 5)),
        ("0 10-30/10 * * * *", at(2024, 5, 1, 3, 15), at(2024, 5, 1, 3, 20)),
        # 29 February: the next leap year
        ("0 0 0 29 2 *", at(2024, 3, 1), at(2028, 2, 29)),
        # both day of month and day of week must match (NCrontab), here Friday the 13th
        ("0 0 0 13 * 5", at(2024, 1, 1), at(2024, 9, 13)),
        # five fields: no seconds, second 0
        ("*/10 * * * *", at(2024, 5, 1, 12, 3, 10), at(2024, 5, 1, 12, 10, 0)),
        ("30 4 * * SUN", at(2024, 5, 1), at(2024, 5, 5, 4, 30)),
    ],
)
def test_next_occurrence(expression: str, after: datetime, expected: datetime) -> None:
    assert CronSchedule.parse(expression).next_occurrence(after) == expected


def test_next_occurrence_is_utc_whatever_the_input() -> None:
    schedule = CronSchedule.parse("0 0 * * * *")
    naive = datetime(2024, 5, 1, 12, 30)  # noqa: DTZ001 (naive on purpose: it means UTC)
    assert schedule.next_occurrence(naive) == at(2024, 5, 1, 13, 0)
    plus_two = datetime(2024, 5, 1, 12, 30, tzinfo=timezone(timedelta(hours=2)))
    assert schedule.next_occurrence(plus_two) == at(2024, 5, 1, 11, 0)
    assert schedule.next_occurrence(at(2024, 5, 1, 12, 59, 59, 999999)) == at(2024, 5, 1, 13, 0)


def test_occurrences() -> None:
    assert CronSchedule.parse("0 0 0 * * *").occurrences(at(2024, 2, 28, 1), 3) == [
        at(2024, 2, 29), at(2024, 3, 1), at(2024, 3, 2)]


def test_parsed_fields() -> None:
    schedule = CronSchedule.parse("0 0/20 9-17 * * mon-fri")
    assert schedule.minutes == {0, 20, 40}
    assert schedule.hours == set(range(9, 18))
    assert schedule.days_of_week == {1, 2, 3, 4, 5}
    assert schedule.seconds == {0}


@pytest.mark.parametrize(
    "expression",
    [
        "* * * *",  # too few fields
        "* * * * * * *",  # too many
        "60 * * * * *",  # second out of range
        "0 0 24 * * *",
        "0 0 0 0 * *",  # day 0
        "0 0 0 * 13 *",
        "0 0 0 * * 7",  # day of week is 0-6
        "0 0 0 * * XYZ",
        "*/0 * * * * *",  # step 0
        "0 30-10 * * * *",  # backwards range
        "0 , * * * *",
        "0 a * * * *",
    ],
)
def test_invalid_expressions(expression: str) -> None:
    with pytest.raises(ValueError, match="NCRONTAB"):
        CronSchedule.parse(expression)


def test_a_schedule_that_never_occurs() -> None:
    with pytest.raises(ValueError, match="never occurs"):
        CronSchedule.parse("0 0 0 31 2 *").next_occurrence(at(2024, 1, 1))


# ----- app settings -----


def test_setting_expressions() -> None:
    environ = {"SCHEDULE": "0 */5 * * * *", "PREFIX": "jobs", "ENV": "dev"}
    assert resolve_setting_expressions("%SCHEDULE%", environ) == "0 */5 * * * *"
    assert resolve_setting_expressions("%PREFIX%-%ENV%-queue", environ) == "jobs-dev-queue"
    assert resolve_setting_expressions("plain-name", environ) == "plain-name"
    with pytest.raises(ValueError, match="MISSING"):
        resolve_setting_expressions("%MISSING%", environ)


def test_environment_wins_over_local_settings() -> None:
    environ = {"KEEP": "from-environment"}
    added = apply_settings({"KEEP": "from-file", "NEW": "from-file"}, environ)
    assert environ == {"KEEP": "from-environment", "NEW": "from-file"}
    assert added == ["NEW"]


def test_load_local_settings(tmp_path) -> None:
    path = tmp_path / "local.settings.json"
    path.write_text(json.dumps({"IsEncrypted": False, "Values": {"A": "1", "FLAG": True},
                                "Host": {"LocalHttpPort": 7080}}))
    assert load_local_settings(path) == {"A": "1", "FLAG": "true"}
    assert local_http_port(path) == 7080
    assert load_local_settings(tmp_path / "missing.json") == {}
    path.write_text(json.dumps({"IsEncrypted": True, "Values": {}}))
    with pytest.raises(ValueError, match="encrypted"):
        load_local_settings(path)


def test_storage_connection_names() -> None:
    environ = {"AzureWebJobsStorage": "default", "Mine": "mine", "AzureWebJobsOther": "other"}
    assert storage_connection_string(None, environ) == "default"
    assert storage_connection_string("", environ) == "default"
    assert storage_connection_string("Mine", environ) == "mine"
    assert storage_connection_string("Other", environ) == "other"  # AzureWebJobs<name>, as the host
    with pytest.raises(ValueError, match="Nope"):
        storage_connection_string("Nope", environ)


# ----- host.json -----


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("00:00:02", 2.0), ("00:01:00", 60.0), ("01:00", 3600.0), ("1.02:03:04", 93784.0),
     ("00:00:00.5", 0.5), ("00:00:00", 0.0), ("2", 172800.0), (30, 30.0)],
)
def test_timespans(text: str | int, seconds: float) -> None:
    assert parse_timespan(text) == seconds


@pytest.mark.parametrize("text", ["2s", "00:61:00", "1:2:3:4", ""])
def test_invalid_timespans(text: str) -> None:
    with pytest.raises(ValueError, match="TimeSpan"):
        parse_timespan(text)


def test_host_json_defaults() -> None:
    assert HostConfig.from_json(None) == HostConfig(route_prefix="api", queues=QueueOptions())
    defaults = HostConfig.from_json({"version": "2.0"}).queues
    assert (defaults.batch_size, defaults.new_batch_threshold, defaults.max_polling_interval,
            defaults.visibility_timeout, defaults.max_dequeue_count, defaults.message_encoding) == (
        16, 8, 60.0, 0.0, 5, "base64")


def test_host_json_options() -> None:
    config = HostConfig.from_json({
        "version": "2.0",
        "extensions": {
            "http": {"routePrefix": ""},
            "queues": {"batchSize": 4, "maxPollingInterval": "00:00:02", "visibilityTimeout": "00:00:10",
                       "maxDequeueCount": 3, "messageEncoding": "none"},
        },
    })
    assert config.route_prefix == ""
    assert config.queues == QueueOptions(batch_size=4, new_batch_threshold=2, max_polling_interval=2.0,
                                         visibility_timeout=10.0, max_dequeue_count=3, message_encoding="none")
    # keys are case-insensitive in the host's configuration
    assert HostConfig.from_json({"Extensions": {"HTTP": {"RoutePrefix": "/v1/"},
                                                "Queues": {"NewBatchThreshold": 0}}}) == HostConfig(
        route_prefix="v1", queues=QueueOptions(new_batch_threshold=0))


def test_host_json_rejects_bad_queue_options() -> None:
    with pytest.raises(ValueError, match="batchSize"):
        HostConfig.from_json({"extensions": {"queues": {"batchSize": 64}}})
    with pytest.raises(ValueError, match="messageEncoding"):
        HostConfig.from_json({"extensions": {"queues": {"messageEncoding": "utf8"}}})


# ----- queue message helpers -----


def test_queue_message_decoding() -> None:
    assert decode_body("aGVsbG8=", "base64") == b"hello"
    assert decode_body("not base64!", "none") == b"not base64!"
    with pytest.raises(ValueError, match=r"\w"):
        decode_body("not base64!", "base64")


def test_poison_queue_names() -> None:
    assert poison_queue_name("work") == "work-poison"
    assert poison_queue_name("work-poison") is None
    assert poison_queue_name("q" * 60) is None
