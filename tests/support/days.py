"""The days the tests book and search on, computed from today (see tools/dates.py).

`DAY` is the first Tuesday at least two weeks ahead on which every zone of the tests keeps its
northern-winter offset (New York -05:00, London +00:00, Paris +01:00, Kolkata +05:30, ...) for
84 days, so expectations written with those offsets hold, and windows of up to twelve weeks from
`DAY` cross no clock change (tests/integration/test_availability.py asks for DAY+13 to DAY+81).
"""

from __future__ import annotations

from datetime import timedelta

from tools.dates import TUESDAY, quiet_day

DAY = quiet_day(weekday=TUESDAY, min_days_ahead=14, span_days=84)


def day(offset: int = 0) -> str:
    """DAY + `offset` days, as YYYY-MM-DD."""
    return (DAY + timedelta(days=offset)).isoformat()


def at(offset_days: int, clock_and_offset: str) -> str:
    """An RFC 3339 time on DAY + `offset_days`: at(0, "09:30:00-05:00")."""
    return f"{day(offset_days)}T{clock_and_offset}"
