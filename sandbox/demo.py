"""The demo seed: `sandbox/seed.json` (apps, vault, the demo tenant and its people) plus calendars
for next week, made from today whenever the sandbox starts on it, so the demo never expires.

Each event is written as wall-clock times in its owner's own zone on a weekday of next week
(counted from that week's Tuesday), so Ada's 10:00 is 10:00 in New York whatever the season.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

SEED = Path(__file__).with_name("seed.json")

# (mail, days after next week's Tuesday, start, end, subject, showAs)
EVENTS = [
    ("ada@contoso.example", 0, "10:00", "11:00", "1:1 with Grace", "busy"),
    ("ada@contoso.example", 1, "13:00", "14:30", "Analytical Engine review", "busy"),
    ("ada@contoso.example", 2, "08:00", "09:30", "Dentist", "oof"),
    ("grace@contoso.example", 0, "15:00", "16:00", "1:1 with Ada", "busy"),
    ("grace@contoso.example", 1, "09:30", "11:00", "COBOL standards call", "tentative"),
    ("alan@contoso.example", 0, "14:00", "15:00", "Bombe maintenance", "busy"),
    ("alan@contoso.example", 2, "09:00", "17:00", "Working from the lab", "workingElsewhere"),
    ("katherine@contoso.example", 0, "09:00", "10:30", "Trajectory review", "busy"),
    ("katherine@contoso.example", 1, "11:00", "12:00", "Flight planning", "tentative"),
]


def demo_day(today: date | None = None) -> date:
    """The Tuesday of next week: the demo calendars' first busy day, ahead of today whatever today is."""
    today = today or datetime.now(UTC).date()
    return today - timedelta(days=today.weekday()) + timedelta(days=7 + 1)


def demo_seed(today: date | None = None) -> dict[str, Any]:
    seed = json.loads(SEED.read_text(encoding="utf-8"))
    first = demo_day(today)
    users = {user["mail"]: user for tenant in seed["tenants"] for user in tenant.get("users", [])}
    for mail, offset, start, end, subject, show_as in EVENTS:
        user = users[mail]
        zone, day = ZoneInfo(user["timeZone"]), first + timedelta(days=offset)
        user.setdefault("events", []).append({
            "subject": subject, "showAs": show_as,
            "start": datetime.combine(day, time.fromisoformat(start), zone).isoformat(),
            "end": datetime.combine(day, time.fromisoformat(end), zone).isoformat()})
    return seed


def write_demo_seed(path: Path, today: date | None = None) -> date:
    """Write the demo seed to `path`; answers the demo day (the Tuesday its calendars start)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(demo_seed(today), indent=1), encoding="utf-8")
    return demo_day(today)
