"""NCRONTAB schedules, the timer-trigger format of Azure Functions.

Six fields `{second} {minute} {hour} {day} {month} {day-of-week}` (five fields: no seconds, the
second is 0). Each field is `*`, a value, a range `a-b`, a step `*/n`, `a-b/n` or `a/n` (from `a` to
the field's maximum), or a comma-separated list of those. Months and days of the week also take
English names (`JAN`, `January`, `MON`, ...); day of week is 0-6 with Sunday = 0. As in NCrontab,
a date must match both the day-of-month and the day-of-week fields. Times are UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september",
           "october", "november", "december")
_DAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")

# (name, lowest, highest, names for lowest.. or None)
_FIELDS = (
    ("second", 0, 59, None),
    ("minute", 0, 59, None),
    ("hour", 0, 23, None),
    ("day", 1, 31, None),
    ("month", 1, 12, _MONTHS),
    ("day-of-week", 0, 6, _DAYS),
)


def _value(text: str, field: tuple) -> int:
    name, low, high, names = field
    if text.isdigit():
        number = int(text)
    elif names and len(text) >= 3 and any(n.startswith(text.lower()) for n in names):
        number = low + next(i for i, n in enumerate(names) if n.startswith(text.lower()))
    else:
        raise ValueError(f"{text!r} is not a valid {name} value")
    if not low <= number <= high:
        raise ValueError(f"{name} value {number} is outside {low}-{high}")
    return number


def _parse_field(text: str, field: tuple) -> frozenset[int]:
    _, low, high, _ = field
    values: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValueError(f"invalid step in {part!r}")
            step = int(step_text)
        if base == "*":
            first, last = low, high
        elif "-" in base:
            first_text, _, last_text = base.partition("-")
            first, last = _value(first_text, field), _value(last_text, field)
            if first > last:
                raise ValueError(f"range {base!r} runs backwards")
        else:
            first = _value(base, field)
            last = high if step_text else first
        values.update(range(first, last + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class CronSchedule:
    """A parsed NCRONTAB expression; `next_occurrence` gives the next time strictly after a moment."""

    expression: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]

    @classmethod
    def parse(cls, expression: str) -> CronSchedule:
        parts = expression.split()
        if len(parts) == 5:
            parts = ["0", *parts]
        if len(parts) != 6:
            raise ValueError(
                f"{expression!r} is not an NCRONTAB expression: expected 6 fields "
                "'{second} {minute} {hour} {day} {month} {day-of-week}' (or 5 without seconds)"
            )
        try:
            fields = [_parse_field(part, field) for part, field in zip(parts, _FIELDS, strict=True)]
        except ValueError as error:
            raise ValueError(f"invalid NCRONTAB expression {expression!r}: {error}") from None
        return cls(expression, *fields)

    def next_occurrence(self, after: datetime) -> datetime:
        """The first scheduled time strictly after `after` (naive means UTC); an aware UTC datetime."""
        after = after.replace(tzinfo=UTC) if after.tzinfo is None else after.astimezone(UTC)
        moment = after.replace(microsecond=0) + timedelta(seconds=1)
        limit = moment.year + 30  # long enough for any 29 February schedule on a given weekday
        while moment.year <= limit:
            if moment.month not in self.months:
                year, month = divmod(moment.month, 12)  # first day of the next month
                moment = moment.replace(year=moment.year + year, month=month + 1, day=1, hour=0,
                                        minute=0, second=0)
            elif moment.day not in self.days or (moment.weekday() + 1) % 7 not in self.days_of_week:
                moment = moment.replace(hour=0, minute=0, second=0) + timedelta(days=1)
            elif moment.hour not in self.hours:
                moment = moment.replace(minute=0, second=0) + timedelta(hours=1)
            elif moment.minute not in self.minutes:
                moment = moment.replace(second=0) + timedelta(minutes=1)
            elif moment.second not in self.seconds:
                moment += timedelta(seconds=1)
            else:
                return moment
        raise ValueError(f"NCRONTAB expression {self.expression!r} never occurs")

    def occurrences(self, after: datetime, count: int) -> list[datetime]:
        """The next `count` occurrences after `after` (for the startup log, like the real host)."""
        found: list[datetime] = []
        for _ in range(count):
            after = self.next_occurrence(after)
            found.append(after)
        return found
