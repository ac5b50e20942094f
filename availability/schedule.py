"""Domain-wide free/busy: Graph `getSchedule` for the organizer and attendees, app-only.

Graph takes at most 20 schedules per call and a window shorter than 62 days, so a bigger
question is split into parts (groups of 20 x windows of at most 61 days) that run concurrently,
keeping about one round trip of latency. The path mailbox is the organizer's; when there are more
than 4 parts it rotates among the participants so no mailbox has more than 4 calls in flight
(Outlook's concurrency limit), falling back to the organizer's if a rotated one is refused.

Times come back in UTC (`Prefer: outlook.timezone="UTC"`). `scheduleItems` give exact times;
where they are absent, `availabilityView` (one digit per interval) is read instead. Working hours
come with a Windows time zone name, mapped to IANA through CLDR's table (tzlocal).

Graph is asked for `availabilityView` in cells that every slot boundary of the question falls on
(`view_minutes`: the greatest common divisor of step, duration, buffer and 15 minutes; the window
widened to whole cells). Then a slot is free exactly when every cell it covers, with its buffer,
is `0` in everyone's view (Graph writes the highest status of the items overlapping a cell:
calendar-getschedule, scheduleInformation), so the slot engine needs only the views. The answer
is read with a typed msgspec decoder that keeps each person's `scheduleItems` as raw JSON without
building an object per item: an answer for 20 people over two weeks holds thousands.

The items are still read where the view cannot say everything: when they name a status the
documented digits do not cover (`unknown`, which the engine counts as busy) or carry an escaped
text that could spell one, when a view is missing or not as long as its window, when the question's
grid does not fall on the cells, and for `Schedule.busy` (a booking's re-check). Busy time from
items is whole seconds since 1970 (`Schedule.spans`), read straight from Graph's texts
(shared.graph.graph_seconds: each distinct text parsed once per process).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta, timezone, tzinfo
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from availability.slots import EPOCH, Busy, Participant, WorkingHours, ceil_seconds, floor_seconds
from shared.errors import OutsideSecurityGroup
from shared.graph import GraphClient, GraphError, graph_seconds, instants_cache, zone_named
from shared.people import Mailbox

log = logging.getLogger(__name__)

MAX_SCHEDULES = 20
MAX_PART_WINDOW = timedelta(days=61)  # "less than 62 days"
PER_MAILBOX = 4
INTERVAL_MINUTES = 15
FREE = frozenset({"free", "workingelsewhere"})
VIEW_STATUS = {"0": "free", "1": "tentative", "2": "busy", "3": "oof", "4": "workingElsewhere"}


def _view_cannot_say(items: Any) -> bool:
    """True when an item's text may name a status the view's digits cannot show: `unknown` in any
    casing, or a backslash (a JSON escape could spell it). A subject that says "unknown" or holds a
    backslash only costs reading the items. (Byte searches: a regular expression took 15 ms over
    600 KB.)"""
    data = bytes(items)
    return data.find(b"\\") >= 0 or data.lower().find(b"unknown") >= 0


@dataclass
class Piece:
    """What one getSchedule part said of one person: its view from `origin` (seconds since 1970,
    `length` digits expected) and its scheduleItems as raw JSON."""

    origin: int
    length: int
    view: str | None
    items: Any  # the items' JSON text as Graph sent it (a msgspec.Raw or bytes; maybe `null`), or None

    def whole_view(self) -> bool:
        """True when the view alone says what the items say, cell by cell."""
        return (self.view is not None and len(self.view) == self.length and self.view.isascii()
                and self.view.isdigit() and (self.items is None or not _view_cannot_say(self.items)))

    def spans(self, cell_minutes: int) -> list[tuple[int, int, str]]:
        """Busy time from the items, or from the view where Graph sent no items (absent or null)."""
        if self.items is not None:
            import orjson

            items = orjson.loads(memoryview(self.items))
            if items is not None:
                return _item_spans(items)
        return spans_from_view(self.view or "", self.origin, cell_minutes)


@dataclass
class Schedule:
    """What Graph said of one person, merged over the parts that covered them."""

    email: str
    working_hours: WorkingHours | None = None
    reason: str | None = None  # set when Graph could not give the schedule
    pieces: list[Piece] = field(default_factory=list)
    cell_minutes: int = INTERVAL_MINUTES
    _spans: list[tuple[int, int, str]] | None = field(default=None, repr=False)

    @property
    def spans(self) -> list[tuple[int, int, str]]:
        """Busy time as (start, end, lower-case status), whole seconds since 1970, the end rounded
        up; read from the items on first use."""
        if self._spans is None:
            self._spans = [span for piece in self.pieces for span in piece.spans(self.cell_minutes)]
        return self._spans

    @property
    def busy(self) -> list[Busy]:
        return [Busy(datetime.fromtimestamp(s, UTC), datetime.fromtimestamp(e, UTC), status)
                for s, e, status in self.spans]

    def cells(self) -> tuple[tuple[int, str], ...]:
        """The views as (origin, digits) when they say all the items do; else ()."""
        if self.pieces and all(piece.whole_view() for piece in self.pieces):
            return tuple((piece.origin, piece.view or "") for piece in self.pieces)
        return ()

    def participant(self) -> Participant:
        return Participant(self.email, (), self.working_hours, _Deferred(self), cells=self.cells(),
                           cell=self.cell_minutes * 60)


class _Deferred(Sequence[tuple[int, int, str]]):
    """A schedule's spans, read from its items only if the slot engine asks for them."""

    def __init__(self, schedule: Schedule) -> None:
        self._schedule = schedule

    def __getitem__(self, index):  # type: ignore[no-untyped-def]
        return self._schedule.spans[index]

    def __len__(self) -> int:
        return len(self._schedule.spans)

    def __iter__(self) -> Iterator[tuple[int, int, str]]:
        return iter(self._schedule.spans)


def view_minutes(step_minutes: int, duration_minutes: int, buffer_minutes: int) -> int:
    """The view's cell: the largest that every slot boundary falls on in any time zone (UTC offsets
    are whole quarter hours), or the default when that is below Graph's 5 minutes (the engine then
    reads the items)."""
    cell = math.gcd(step_minutes, duration_minutes, buffer_minutes, 15)
    return cell if cell >= 5 else INTERVAL_MINUTES


@dataclass(frozen=True)
class Part:
    path_mailbox: str
    schedules: tuple[str, ...]
    start: datetime
    end: datetime


def plan(participants: Sequence[str], start: datetime, end: datetime) -> list[Part]:
    """Parts of at most 20 schedules and 61 days; paths rotate so each has at most 4 parts."""
    windows = []
    cursor = start
    while cursor < end:
        windows.append((cursor, min(end, cursor + MAX_PART_WINDOW)))
        cursor = windows[-1][1]
    groups = [tuple(participants[i:i + MAX_SCHEDULES]) for i in range(0, len(participants), MAX_SCHEDULES)]
    parts = []
    for index, (group, (part_start, part_end)) in enumerate((g, w) for g in groups for w in windows):
        path = participants[(index // PER_MAILBOX) % len(participants)]
        parts.append(Part(path, group, part_start, part_end))
    return parts


def windows_zone(name: str | None) -> tzinfo | None:
    """A Graph time zone name (Windows, or IANA, or UTC) as a tzinfo; None if unknown."""
    return zone_named(name)


def _time(value: str | None) -> time | None:
    try:
        return time.fromisoformat((value or "")[:8])
    except ValueError:
        return None


def working_hours(raw: dict[str, Any] | None) -> WorkingHours | None:
    if not raw:
        return None
    zone_raw = raw.get("timeZone") or {}
    zone = windows_zone(zone_raw.get("name"))
    if zone is None and isinstance(zone_raw.get("bias"), int):
        # A customTimeZone: its standard offset (bias is minutes west of UTC).
        zone = timezone(-timedelta(minutes=zone_raw["bias"]))
    start, end = _time(raw.get("startTime")), _time(raw.get("endTime"))
    days = frozenset(d.lower() for d in raw.get("daysOfWeek") or ())
    if zone is None or start is None or end is None or not days:
        return None
    return WorkingHours(days, start, end, zone)


def busy_from_view(view: str, start: datetime, interval: int) -> list[Busy]:
    return [Busy(datetime.fromtimestamp(s, UTC), datetime.fromtimestamp(e, UTC), status)
            for s, e, status in spans_from_view(view, floor_seconds(start), interval)]


def spans_from_view(view: str, start: int, interval: int) -> list[tuple[int, int, str]]:
    """Busy spans (seconds) of an availabilityView that begins at `start`, `interval` minutes a digit."""
    out = []
    step = interval * 60
    for index, digit in enumerate(view):
        if digit != "0":
            status = VIEW_STATUS.get(digit, "unknown")
            if status not in ("free", "workingElsewhere"):
                out.append((start + index * step, start + (index + 1) * step, status.lower()))
    return out


def reason_of(error: dict[str, Any]) -> str:
    code = str(error.get("responseCode") or "")
    message = str(error.get("message") or "")
    if code == "ErrorAccessDenied" or "OData is disabled" in message:
        return "outside_security_group"
    if code in ("5009", "5010", "ErrorMailRecipientNotFound", "ErrorInvalidUser") or "resolve" in message.lower():
        return "not_found"
    return "upstream_error"


@lru_cache(maxsize=1)
def _answer_decoder() -> Any:
    """A typed reader of getSchedule's answer (msgspec, imported on first use): the fields the
    service reads, each person's scheduleItems kept as raw JSON, everything else skipped."""
    import msgspec

    # scheduleItems stays raw JSON (msgspec takes no union with Raw: a null comes as "null").
    # Built with defstruct: this module's annotations are strings (PEP 563), which msgspec would
    # resolve in the module's namespace, where msgspec is not imported at start.
    info = msgspec.defstruct("ScheduleInformation", [
        ("scheduleId", str | None, None), ("availabilityView", str | None, None),
        ("scheduleItems", msgspec.Raw, None), ("workingHours", dict[str, Any] | None, None),
        ("error", dict[str, Any] | None, None)])
    answer = msgspec.defstruct("ScheduleAnswer", [("value", list[info] | None, None)])  # type: ignore[valid-type]
    return msgspec.json.Decoder(answer)


def _decode(content: bytes) -> Any:
    import msgspec

    try:
        return _answer_decoder().decode(content)
    except msgspec.ValidationError as error:
        # Valid JSON that is not a scheduleInformation collection: Graph's fault, said as one.
        raise GraphError(502, "invalidAnswer", f"getSchedule's answer does not have the documented shape: {error}") \
            from None


def _floor_to(value: datetime, step: int) -> datetime:
    return EPOCH + timedelta(seconds=floor_seconds(value) // step * step)


def _ceil_to(value: datetime, step: int) -> datetime:
    return EPOCH + timedelta(seconds=-(-ceil_seconds(value) // step) * step)


class ScheduleReader:
    def __init__(self, graph: GraphClient) -> None:
        self.graph = graph

    def read(self, tenant_id: str, organizer: Mailbox, participants: Sequence[str], start: datetime,
             end: datetime, *, token: str | None = None, cell_minutes: int = INTERVAL_MINUTES) -> dict[str, Schedule]:
        """Each participant's busy time and working hours in `[start, end)`, by SMTP address
        (the organizer's is `organizer.address`). Paths name the organizer as the caller did (object
        id or UPN: Graph paths take no other address). With a delegated `token` (the organizer's),
        Graph is asked as the organizer (`/me`). Views come in cells of `cell_minutes`, the window
        widened to whole cells of the clock."""
        step = cell_minutes * 60
        parts = plan(list(participants), _floor_to(start, step), _ceil_to(end, step))
        # The organizer's own parts (all of them with /me) go by the name its paths take.
        parts = [Part(organizer.path, p.schedules, p.start, p.end)
                 if token is not None or p.path_mailbox == organizer.address else p for p in parts]
        schedules = {email: Schedule(email, cell_minutes=cell_minutes) for email in participants}
        workers = min(len(parts), 16)
        if workers == 1:
            answers = [self._run(tenant_id, organizer.path, parts[0], token, cell_minutes)]
        else:
            from contextvars import copy_context

            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="getSchedule") as pool:
                futures = [pool.submit(copy_context().run, self._run, tenant_id, organizer.path, part, token,
                                       cell_minutes) for part in parts]
                answers = [future.result() for future in futures]
        for part, answer in zip(parts, answers, strict=True):
            self._merge(schedules, part, answer, cell_minutes)
        return schedules

    def _run(self, tenant_id: str, organizer: str, part: Part, token: str | None = None,
             cell_minutes: int = INTERVAL_MINUTES) -> Any:
        body = {"schedules": list(part.schedules),
                "startTime": {"dateTime": part.start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
                "endTime": {"dateTime": part.end.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
                "availabilityViewInterval": cell_minutes}
        # The planned path first, then the organizer, then anyone else in the part: a path
        # mailbox that Graph does not know (404) or that the access policy excludes (403) only
        # costs that path, not the part's answer.
        candidates = list(dict.fromkeys([part.path_mailbox, organizer, *part.schedules])) if token is None \
            else [organizer]
        failure: GraphError | None = None
        for path in candidates:
            url = "/me/calendar/getSchedule" if token else f"/users/{quote(path, safe='')}/calendar/getSchedule"
            try:
                return self.graph.post(url, tenant_id=tenant_id, mailbox=path, json=body, retry=True, token=token,
                                       prefer=['outlook.timezone="UTC"'], decode=_decode).body
            except GraphError as error:
                if error.status in (429, 503, 504, 0):
                    raise
                if error.outside_access_policy and path.lower() == organizer.lower():
                    raise OutsideSecurityGroup(
                        "The organizer's mailbox is outside the security group the tenant's admin allowed.",
                        target="organizer") from None
                if not (error.outside_access_policy or error.status == 404):
                    return error
                failure = error
        return failure or GraphError(0, "noPath", "no participant could be asked")

    def _merge(self, schedules: dict[str, Schedule], part: Part, answer: Any, cell_minutes: int) -> None:
        if isinstance(answer, GraphError) or answer is None:
            for email in part.schedules:
                schedules[email].reason = schedules[email].reason or "upstream_error"
            return
        by_id = {str(info.scheduleId or "").lower(): info for info in answer.value or ()}
        origin = floor_seconds(part.start)
        length = -(-(floor_seconds(part.end) - origin) // (cell_minutes * 60))
        for email in part.schedules:
            info = by_id.get(email)
            target = schedules[email]
            if info is None:
                target.reason = target.reason or "upstream_error"
            elif info.error:
                target.reason = target.reason or reason_of(info.error)
            else:
                target.pieces.append(Piece(origin, length, info.availabilityView, info.scheduleItems))
                target.working_hours = target.working_hours or working_hours(info.workingHours)


# Graph's status spellings (its casing varies: graph-facts.md), lower-cased once.
_STATUSES = {name: name.lower() for status in ("free", "tentative", "busy", "oof", "workingElsewhere", "unknown")
             for name in (status, status.lower(), status[0].upper() + status[1:])}


def _item_spans(items: list[dict[str, Any]]) -> list[tuple[int, int, str]]:
    """The busy spans of scheduleItems (free time is not kept: time no item covers is free anyway).
    The loop is the hot path of a big question: UTC texts are looked up in graph_seconds' cache
    directly, anything else goes through it."""
    out = []
    known = instants_cache()
    statuses = _STATUSES
    for item in items:
        status = item.get("status") or "busy"
        lowered = statuses.get(status) if isinstance(status, str) else None
        if lowered is None:
            lowered = str(status).lower()
        if lowered in FREE:
            continue
        start, end = item["start"], item["end"]
        if start.get("timeZone") == "UTC" and end.get("timeZone") == "UTC":
            began = known.get(start.get("dateTime"))
            ended = known.get(text := end.get("dateTime"))
            if began is not None and ended is not None and (len(text) == 19 or text.endswith(".0000000")):
                out.append((began, ended, lowered))
                continue
        out.append((graph_seconds(start), graph_seconds(end, end=True), lowered))
    return out
