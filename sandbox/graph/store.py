"""The calendar store: every mailbox's events, indexed by start time, and what happens across
mailboxes when an organizer creates, updates, deletes or cancels a meeting.

The store is built from the state's tenants (each user's seeded ``events``) and rebuilt, lazily,
whenever a reset has replaced the tenants (``SandboxState._apply_tenants`` assigns a new list;
``sync`` notices). Everything happens under ``lock``; handlers render under it too.

Cross-mailbox behaviour (Exchange's, as far as documented; the rest is the sandbox's choice):
- Creating an event with attendees who are users of the same tenant puts a copy in each one's
  calendar: same ``iCalUId``, own ids, ``isOrganizer: false``, ``responseStatus.response:
  "notResponded"``, ``showAs: "tentative"`` (graph-facts.md §3; Exchange's Calendar Attendant). The
  copy carries neither the organizer's ``transactionId`` nor its extended properties.
- An organizer's update of time, subject, body, location, online meeting or attendees reaches the
  copies; a new internal attendee gets a copy, a removed one's copy is cancelled. A change of
  ``start``, ``end``, ``location`` or ``locations`` asks everyone again: each attendee's
  ``status`` on the organizer's item goes back to ``none`` and each copy's ``responseStatus`` to
  ``notResponded`` (``showAs: "tentative"``). Exchange calls a time change a "full update" that
  attendees re-answer and documents nothing for the place: resetting on both is the harsher
  reading. Other changes keep the answers given (also when ``attendees`` is sent again).
- Attendees answer on their own copy (``respond``; https://learn.microsoft.com/en-us/graph/api/event-accept,
  /event-tentativelyaccept, /event-decline): the copy's ``responseStatus`` becomes the answer
  with its time, ``showAs`` busy (the organizer's) or tentative; with ``sendResponse`` (default
  true) the organizer's item records the answer and time on that attendee's entry and gets a new
  change key. A declined copy leaves the attendee's calendar for Deleted Items, as Outlook
  removes a declined meeting (an event read back after a decline comes back empty:
  github.com/microsoftgraph/microsoft-graph-docs-contrib/issues/7924): a new REST id, the
  immutable id still reads it.
- Delete (organizer) and cancel cancel the copies: ``isCancelled: true``, ``showAs: "free"``; they
  stay in the attendees' calendars. Cancel moves the organizer's item to Deleted Items: it gets a
  new REST id (the old one is then 404) and keeps its immutable id (readable, ``isCancelled:
  true``). Delete removes the item (both ids 404). Items in Deleted Items are neither listed nor
  counted by getSchedule / findMeetingTimes; cancelled items are not counted either.
- Every operation hands its ``Change`` list to ``listeners`` (``sandbox.graph.subscriptions``):
  ``created`` for new items (copies included), ``updated`` for each item touched (an organizer's
  item when an attendee answers, each copy an organizer's change reaches), ``deleted`` for an
  item removed or moved out of the calendar (delete, cancel, decline), with the REST id it had.
- ``transactionId`` (https://learn.microsoft.com/en-us/graph/api/resources/event: a client-chosen
  id "to avoid redundant POST operations in case of client retries"; Microsoft documents no
  window, no scope and no answer for a repeat): a repeat by the same app for the same mailbox
  within ``transactionIdWindowSeconds`` (``SandboxState.graph_settings``, default 120, 0 turns
  it off) of the first create, while the first event exists (cancelled or not), creates nothing
  and answers the existing event. Outside the window, or when the first event was deleted, the
  repeat creates a new event, which then starts its own window. The window is read at the time
  of the repeat (a ``PATCH /_sandbox/graph`` applies to events already created) and measured on
  the monotonic clock. A short window is the harsher reading: a client that retries late must
  not count on the dedupe and has to reconcile by its own tag.

People (https://learn.microsoft.com/en-us/graph/api/user-get: ``/users/{id | userPrincipalName}``):
``path_user`` resolves a ``/users/{x}`` path segment by object id or UPN only; ``smtp_user``
resolves an SMTP address (getSchedule's ``schedules``, attendees' ``emailAddress.address``,
findMeetingTimes' attendees) by the user's mail or proxy addresses only: not by object id, and
not by UPN unless it is also one of those (the harsher reading: these are documented as SMTP
addresses). All lookups ignore case. An attendee invited by a proxy address gets a copy like
one invited by the mail; the organizer's attendee list keeps the address as sent.
"""

from __future__ import annotations

import bisect
import copy
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..seed import DEFAULT_TRANSACTION_ID_WINDOW_SECONDS, smtp_addresses, user_principal_name
from .model import (
    NO_RESPONSE_TIME,
    EventInput,
    EventInputError,
    StoredEvent,
    add_teams_block,
    check_online_provider,
    new_change_key,
    new_ical_uid,
    new_join_url,
    new_rest_id,
    read_event_input,
)
from .timezones import format_local, format_utc_z, resolve_zone, windows_name

if TYPE_CHECKING:
    from ..state import SandboxState

MAILBOX_CONCURRENCY = 4
# Properties of the organizer's item that its attendees' copies follow.
PROPAGATED = ("subject", "body", "start", "end", "originalStartTimeZone", "originalEndTimeZone", "location",
              "locations", "isOnlineMeeting", "onlineMeetingProvider", "onlineMeeting", "sensitivity", "importance",
              "isAllDay", "attendees", "hideAttendees", "allowNewTimeProposals")


@dataclass(frozen=True)
class Change:
    """One item's change, as a change notification tells it: what happened, in which mailbox,
    the item's ids then (the REST id it had, for an item that moved or went) and its etag."""

    change_type: str  # created | updated | deleted
    tenant_id: str
    mailbox_id: str
    rest_id: str
    immutable_id: str
    etag: str

    @classmethod
    def of(cls, ev: StoredEvent, change_type: str, *, rest_id: str | None = None) -> Change:
        return cls(change_type=change_type, tenant_id=ev.tenant_id, mailbox_id=ev.mailbox_id,
                   rest_id=rest_id or ev.rest_id, immutable_id=ev.immutable_id, etag=f'W/"{ev.props["changeKey"]}"')


class ConcurrencyLimiter:
    """Requests in flight per key (tenant, app, mailbox): at most ``limit`` at once."""

    def __init__(self, limit: int = MAILBOX_CONCURRENCY):
        self.limit = limit
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, ...], int] = {}

    def try_acquire(self, key: tuple[str, ...]) -> bool:
        with self._lock:
            count = self._counts.get(key, 0)
            if count >= self.limit:
                return False
            self._counts[key] = count + 1
            return True

    def release(self, key: tuple[str, ...]) -> None:
        with self._lock:
            count = self._counts.get(key, 0) - 1
            if count > 0:
                self._counts[key] = count
            else:
                self._counts.pop(key, None)

    def in_flight(self, key: tuple[str, ...]) -> int:
        with self._lock:
            return self._counts.get(key, 0)


class Mailbox:
    """One user's calendar: items by id (REST and immutable), and a start-time index."""

    def __init__(self, user: dict[str, Any], tenant_id: str):
        self.user = user
        self.tenant_id = tenant_id
        self.items: dict[str, StoredEvent] = {}  # immutable id -> item (every folder)
        self.by_id: dict[str, StoredEvent] = {}  # REST id and immutable id -> item
        self._starts: list[float] = []
        self._sorted: list[StoredEvent] = []
        self._max_length = 0.0
        self._dirty = False

    @property
    def id(self) -> str:
        return str(self.user["id"])

    def add(self, ev: StoredEvent) -> None:
        self.items[ev.immutable_id] = ev
        self.by_id[ev.immutable_id] = ev
        self.by_id[ev.rest_id] = ev
        self._dirty = True

    def remove(self, ev: StoredEvent) -> None:
        self.items.pop(ev.immutable_id, None)
        self.by_id.pop(ev.immutable_id, None)
        self.by_id.pop(ev.rest_id, None)
        self._dirty = True

    def changed(self) -> None:
        self._dirty = True

    def _index(self) -> None:
        if self._dirty:
            live = sorted((ev for ev in self.items.values() if ev.in_calendar),
                          key=lambda e: (e.start_ts, e.end_ts, e.props["createdDateTime"]))
            self._sorted = live
            self._starts = [ev.start_ts for ev in live]
            self._max_length = max((ev.end_ts - ev.start_ts for ev in live), default=0.0)
            self._dirty = False

    def calendar(self) -> list[StoredEvent]:
        """The items in the calendar folder, by start time."""
        self._index()
        return list(self._sorted)

    def overlapping(self, start_ts: float, end_ts: float) -> list[StoredEvent]:
        """Items in the calendar, not cancelled, overlapping [start_ts, end_ts), by start time."""
        self._index()
        lo = bisect.bisect_left(self._starts, start_ts - self._max_length)
        hi = bisect.bisect_left(self._starts, end_ts)
        return [ev for ev in self._sorted[lo:hi] if ev.end_ts > start_ts and not ev.props.get("isCancelled")]


def _now() -> str:
    return format_utc_z(datetime.now(UTC))


class CalendarStore:
    def __init__(self, state: SandboxState):
        self.state = state
        self.lock = threading.RLock()
        self.limiter = ConcurrencyLimiter()
        self.verified_tokens: dict[str, dict[str, Any]] = {}  # bearer token -> claims (auth.py)
        self._source: list[dict[str, Any]] | None = None
        self.mailboxes: dict[str, Mailbox] = {}
        # Per tenant: users by id and UPN (paths), and by SMTP address (mail, proxy addresses).
        self._paths: dict[str, dict[str, dict[str, Any]]] = {}
        self._smtp: dict[str, dict[str, dict[str, Any]]] = {}
        # (mailbox id, app id, transactionId) -> (the event, monotonic time of its create)
        self._transactions: dict[tuple[str, str, str], tuple[StoredEvent, float]] = {}
        self.clock = time.monotonic
        self._by_ical: dict[str, list[StoredEvent]] = {}
        self.derived: dict[Any, Any] = {}  # caches of values computed from the seed; emptied on rebuild
        # Called, under the lock, with the changes of each operation (the subscriptions listen).
        self.listeners: list[Callable[[list[Change]], None]] = []
        self.sync()

    # -- building ------------------------------------------------------------------------------

    def sync(self) -> None:
        """Rebuild from the state's tenants if a reset replaced them since the last build."""
        with self.lock:
            tenants = self.state.tenants
            if tenants is self._source:
                return
            self._source = tenants
            self.mailboxes, self._transactions, self._by_ical = {}, {}, {}
            self._paths, self._smtp = {}, {}
            self.derived = {}
            for tenant in tenants:
                paths: dict[str, dict[str, Any]] = {}
                smtp: dict[str, dict[str, Any]] = {}
                for user in tenant.get("users", []):
                    paths[str(user["id"]).lower()] = user
                    paths[user_principal_name(user)] = user
                    for address in smtp_addresses(user):
                        smtp[address] = user
                    self.mailboxes[str(user["id"])] = Mailbox(user, tenant["tenantId"])
                self._paths[tenant["tenantId"]] = paths
                self._smtp[tenant["tenantId"]] = smtp
            for tenant in tenants:
                for user in tenant.get("users", []):
                    for raw in user.get("events", []):
                        self._seed_event(self.mailboxes[str(user["id"])], raw)

    def _seed_event(self, mailbox: Mailbox, raw: dict[str, Any]) -> None:
        """A seeded event ({subject, start, end (ISO with offset), showAs, ...more Graph properties})."""
        zone_name = windows_name(mailbox.user.get("timeZone") or "UTC")
        zone = resolve_zone(zone_name) if zone_name else UTC
        body = dict(raw)
        instants = {}
        for key in ("start", "end"):
            instants[key] = datetime.fromisoformat(str(raw[key]).replace("Z", "+00:00"))
            body[key] = {"dateTime": format_local(instants[key], zone), "timeZone": zone_name}
        try:
            given = read_event_input(body, lenient=True)
        except EventInputError:
            given = read_event_input({k: body[k] for k in ("subject", "start", "end", "showAs") if k in body},
                                     lenient=True)
        # The seed gives exact instants (with offsets): keep them, even where the local time shown
        # is the second occurrence of a repeated (fall-back) hour, which reading it back would miss.
        given.start, given.end = instants["start"], instants["end"]
        self._insert(mailbox, given, app_id=None)

    # -- lookups -------------------------------------------------------------------------------

    def path_user(self, tenant_id: str, key: str) -> dict[str, Any] | None:
        """A user of the tenant as a ``/users/{x}`` path names one: object id or UPN (any case)."""
        with self.lock:
            self.sync()
            return self._paths.get(tenant_id, {}).get(key.strip().lower())

    def smtp_user(self, tenant_id: str, address: str) -> dict[str, Any] | None:
        """A user of the tenant by one of its SMTP addresses: mail or proxy address (any case)."""
        with self.lock:
            self.sync()
            return self._smtp.get(tenant_id, {}).get(address.strip().lower())

    def mailbox(self, user: dict[str, Any]) -> Mailbox:
        with self.lock:
            self.sync()
            return self.mailboxes[str(user["id"])]

    def mailbox_by_mail(self, mail: str) -> Mailbox | None:
        """Any tenant's mailbox by any name of its user: SMTP address, UPN or id (control routes)."""
        with self.lock:
            self.sync()
            key = mail.strip().lower()
            for directory in (*self._smtp.values(), *self._paths.values()):
                if key in directory:
                    return self.mailboxes[str(directory[key]["id"])]
            return None

    def transaction_window(self) -> float:
        """``transactionIdWindowSeconds`` as the state holds it now."""
        settings = getattr(self.state, "graph_settings", None) or {}
        return float(settings.get("transactionIdWindowSeconds", DEFAULT_TRANSACTION_ID_WINDOW_SECONDS))

    def get(self, mailbox: Mailbox, item_id: str) -> StoredEvent | None:
        with self.lock:
            self.sync()
            current = self.mailboxes.get(mailbox.id)
            return current.by_id.get(item_id) if current is mailbox else None

    # -- changes -----------------------------------------------------------------------------

    def _emit(self, changes: list[Change]) -> None:
        """Hand the changes of one operation to the listeners (the subscriptions), under the lock."""
        if changes:
            for listener in self.listeners:
                listener(changes)

    def _insert(self, mailbox: Mailbox, given: EventInput, *, app_id: str | None) -> StoredEvent:
        now = _now()
        user = mailbox.user
        props: dict[str, Any] = {
            "subject": "", "body": {"contentType": "html", "content": ""}, "showAs": "busy",
            "sensitivity": "normal", "importance": "normal", "attendees": [], "locations": [],
            **given.changes,
            "createdDateTime": now, "lastModifiedDateTime": now, "changeKey": new_change_key(),
            "iCalUId": new_ical_uid(), "isOrganizer": True, "isCancelled": False,
            "responseStatus": {"response": "organizer", "time": NO_RESPONSE_TIME},
            "organizer": {"emailAddress": {"name": user.get("displayName") or user["mail"], "address": user["mail"]}},
        }
        if given.start is None or given.end is None:
            raise EventInputError("ErrorInvalidRequest", "An event needs both 'start' and 'end'.")
        if given.end < given.start:
            raise EventInputError("ErrorCalendarEndDateIsEarlierThanStartDate", "The end date occurs before the "
                                  "start date.")
        self._apply_online(props, mailbox)
        ev = StoredEvent(mailbox_id=mailbox.id, tenant_id=mailbox.tenant_id, props=props,
                         start_ts=given.start.timestamp(), end_ts=given.end.timestamp(), app_id=app_id,
                         ext={pid.lower(): (pid, value) for pid, value in given.extended or []})
        mailbox.add(ev)
        self._by_ical.setdefault(props["iCalUId"], []).append(ev)
        return ev

    def _apply_online(self, props: dict[str, Any], mailbox: Mailbox) -> None:
        check_online_provider(props)
        if props.get("isOnlineMeeting"):
            props["onlineMeetingProvider"] = "teamsForBusiness"
            if not props.get("onlineMeeting"):
                join_url = new_join_url(mailbox.tenant_id, mailbox.id)
                props["onlineMeeting"] = {"joinUrl": join_url}
                props["body"] = add_teams_block(props.get("body") or {}, join_url)
        else:
            props["isOnlineMeeting"] = False
            props["onlineMeetingProvider"] = "unknown"
            props["onlineMeeting"] = None

    def create(self, mailbox: Mailbox, given: EventInput, *, app_id: str) -> tuple[StoredEvent, bool]:
        """Create in ``mailbox`` (the organizer's) plus attendees' copies; (event, created)."""
        with self.lock:
            self.sync()
            transaction_id = given.changes.get("transactionId")
            now = self.clock()
            if transaction_id:
                known = self._transactions.get((mailbox.id, app_id, transaction_id))
                if known is not None:
                    existing, created_at = known
                    if now - created_at < self.transaction_window() \
                            and mailbox.items.get(existing.immutable_id) is existing:
                        return existing, False
            ev = self._insert(mailbox, given, app_id=app_id)
            if transaction_id:
                self._transactions[(mailbox.id, app_id, transaction_id)] = (ev, now)
            changes = [Change.of(ev, "created")]
            for attendee in ev.props["attendees"]:
                self._copy_for(ev, attendee["emailAddress"]["address"], changes)
            self._emit(changes)
            return ev, True

    def _copy_for(self, organizer_item: StoredEvent, address: str, changes: list[Change]) -> StoredEvent | None:
        user = self._smtp.get(organizer_item.tenant_id, {}).get(address.strip().lower())
        if user is None or str(user["id"]) == organizer_item.mailbox_id:
            return None
        target = self.mailboxes[str(user["id"])]
        for existing in self._by_ical.get(organizer_item.props["iCalUId"], []):
            if existing.mailbox_id == target.id and target.items.get(existing.immutable_id) is existing \
                    and existing.in_calendar:
                return existing
        now = _now()
        props = copy.deepcopy(organizer_item.props)
        props.pop("transactionId", None)
        props.update({"isOrganizer": False, "showAs": "tentative", "isCancelled": False,
                      "responseStatus": {"response": "notResponded", "time": NO_RESPONSE_TIME},
                      "createdDateTime": now, "lastModifiedDateTime": now, "changeKey": new_change_key()})
        copy_item = StoredEvent(mailbox_id=target.id, tenant_id=target.tenant_id, props=props,
                                start_ts=organizer_item.start_ts, end_ts=organizer_item.end_ts, app_id=None)
        target.add(copy_item)
        self._by_ical.setdefault(props["iCalUId"], []).append(copy_item)
        changes.append(Change.of(copy_item, "created"))
        return copy_item

    def _copies(self, organizer_item: StoredEvent) -> list[StoredEvent]:
        """The attendees' copies still in their calendars (a declined one went to Deleted Items)."""
        result = []
        for item in self._by_ical.get(organizer_item.props["iCalUId"], []):
            if item is organizer_item or item.props.get("isOrganizer") or not item.in_calendar:
                continue
            box = self.mailboxes.get(item.mailbox_id)
            if box is not None and box.items.get(item.immutable_id) is item:
                result.append(item)
        return result

    def organizer_item(self, copy_item: StoredEvent) -> StoredEvent | None:
        """The organizer's item an attendee's copy belongs to, if it still exists."""
        for item in self._by_ical.get(copy_item.props["iCalUId"], []):
            box = self.mailboxes.get(item.mailbox_id)
            if item.props.get("isOrganizer") and box is not None and box.items.get(item.immutable_id) is item:
                return item
        return None

    def _cancel_copy(self, item: StoredEvent, changes: list[Change]) -> None:
        if not item.props.get("isCancelled"):
            item.props["isCancelled"] = True
            item.props["showAs"] = "free"
            item.touch()
            self.mailboxes[item.mailbox_id].changed()
            changes.append(Change.of(item, "updated"))

    def _move_to_deleted_items(self, mailbox: Mailbox, ev: StoredEvent) -> str:
        """Move an item out of the calendar; answers the REST id it had (a move changes the REST
        id, not the immutable one, https://learn.microsoft.com/en-us/graph/outlook-immutable-id)."""
        old_rest_id = ev.rest_id
        if ev.in_calendar:
            mailbox.by_id.pop(ev.rest_id, None)
            ev.rest_id = new_rest_id(mailbox.id)
            mailbox.by_id[ev.rest_id] = ev
            ev.folder = "deleteditems"
        return old_rest_id

    def update(self, mailbox: Mailbox, ev: StoredEvent, given: EventInput) -> None:
        with self.lock:
            changes = dict(given.changes)
            if "transactionId" in changes and changes["transactionId"] != ev.props.get("transactionId"):
                raise EventInputError("ErrorInvalidRequest", "The transactionId of an event cannot be changed "
                                      "after it is created.")
            start_ts = given.start.timestamp() if given.start else ev.start_ts
            end_ts = given.end.timestamp() if given.end else ev.end_ts
            if end_ts < start_ts:
                raise EventInputError("ErrorCalendarEndDateIsEarlierThanStartDate", "The end date occurs before "
                                      "the start date.")
            if ev.props.get("isOnlineMeeting"):
                # Once on, isOnlineMeeting cannot be turned off nor the provider changed (graph-facts.md §3).
                changes.pop("isOnlineMeeting", None)
                changes.pop("onlineMeetingProvider", None)
            check_online_provider({**ev.props, **changes})
            time_changed = (start_ts, end_ts) != (ev.start_ts, ev.end_ts)
            old_location = (copy.deepcopy(ev.props.get("location")), copy.deepcopy(ev.props.get("locations")))
            old_statuses = {a["emailAddress"]["address"].lower(): a["status"] for a in ev.props.get("attendees") or []}
            if not ev.props.get("isOrganizer"):
                # An attendee's own copy: only its own settings change, nothing propagates.
                changes = {k: v for k, v in changes.items() if k in ("showAs", "categories", "isReminderOn",
                                                                     "reminderMinutesBeforeStart", "sensitivity")}
                time_changed = False
            ev.props.update(changes)
            emitted: list[Change] = []
            if ev.props.get("isOrganizer"):
                self._apply_online(ev.props, mailbox)
                ev.start_ts, ev.end_ts = start_ts, end_ts
                moved = time_changed or (ev.props.get("location"), ev.props.get("locations")) != old_location
                # A time or place change asks every attendee again (the sandbox's harsher reading of
                # Exchange's "full update"); otherwise the responses already given stay.
                for attendee in ev.props.get("attendees") or []:
                    kept = old_statuses.get(attendee["emailAddress"]["address"].lower())
                    attendee["status"] = ({"response": "none", "time": NO_RESPONSE_TIME} if moved or kept is None
                                          else dict(kept))
            else:
                moved = False
            for pid, value in given.extended or []:
                ev.ext[pid.lower()] = (pid, value)
            ev.touch()
            mailbox.changed()
            emitted.append(Change.of(ev, "updated"))
            if not ev.props.get("isOrganizer") or ev.is_cancelled:
                self._emit(emitted)
                return
            new_attendees = {a["emailAddress"]["address"].lower() for a in ev.props.get("attendees") or []}
            for item in self._copies(ev):
                owner = self.mailboxes[item.mailbox_id].user
                if new_attendees.isdisjoint(smtp_addresses(owner)):
                    self._cancel_copy(item, emitted)
                    continue
                for name in PROPAGATED:
                    if name in ev.props and name != "attendees":
                        item.props[name] = copy.deepcopy(ev.props[name])
                item.props["attendees"] = copy.deepcopy(ev.props.get("attendees") or [])
                item.start_ts, item.end_ts = ev.start_ts, ev.end_ts
                if moved:
                    item.props["responseStatus"] = {"response": "notResponded", "time": NO_RESPONSE_TIME}
                    item.props["showAs"] = "tentative"
                item.touch()
                self.mailboxes[item.mailbox_id].changed()
                emitted.append(Change.of(item, "updated"))
            for address in sorted(new_attendees - set(old_statuses)):
                self._copy_for(ev, address, emitted)
            self._emit(emitted)

    def delete(self, mailbox: Mailbox, ev: StoredEvent) -> None:
        with self.lock:
            changes: list[Change] = []
            if ev.props.get("isOrganizer"):
                for item in self._copies(ev):
                    self._cancel_copy(item, changes)
                self._transactions = {k: v for k, v in self._transactions.items() if v[0] is not ev}
            mailbox.remove(ev)
            changes.insert(0, Change.of(ev, "deleted"))
            self._emit(changes)

    def cancel(self, mailbox: Mailbox, ev: StoredEvent) -> None:
        """The organizer cancels: copies cancelled, the item moves to Deleted Items."""
        with self.lock:
            changes: list[Change] = []
            for item in self._copies(ev):
                self._cancel_copy(item, changes)
            was_in_calendar = ev.in_calendar
            old_rest_id = self._move_to_deleted_items(mailbox, ev)
            ev.props["isCancelled"] = True
            ev.touch()
            mailbox.changed()
            # Leaving the calendar is a "deleted" for the events a subscription watches.
            changes.insert(0, Change.of(ev, "deleted" if was_in_calendar else "updated", rest_id=old_rest_id))
            self._emit(changes)

    def respond(self, mailbox: Mailbox, ev: StoredEvent, response: str, *, send_response: bool = True) -> None:
        """An attendee answers on their own copy (accepted, tentativelyAccepted, declined).

        The copy's ``responseStatus`` and ``showAs`` follow (busy, tentative); a declined copy
        leaves the calendar for Deleted Items, as Outlook removes a declined meeting (its REST
        id changes, its immutable id still reads it). With ``send_response`` (Graph's
        ``sendResponse``, default true) the organizer's item records the answer and time on the
        attendee's entry; without it the organizer learns nothing, since no response is sent.
        """
        with self.lock:
            now = _now()
            changes: list[Change] = []
            ev.props["responseStatus"] = {"response": response, "time": now}
            organizer_item = self.organizer_item(ev)
            if response == "declined":
                ev.props["showAs"] = "free"
                old_rest_id = self._move_to_deleted_items(mailbox, ev)
                ev.touch()
                changes.append(Change.of(ev, "deleted", rest_id=old_rest_id))
            else:
                shown = (organizer_item.props.get("showAs") if organizer_item else None) or "busy"
                ev.props["showAs"] = "tentative" if response == "tentativelyAccepted" else shown
                ev.touch()
                changes.append(Change.of(ev, "updated"))
            mailbox.changed()
            if send_response and organizer_item is not None and not organizer_item.is_cancelled:
                addresses = set(smtp_addresses(mailbox.user))
                answered = False
                for attendee in organizer_item.props.get("attendees") or []:
                    if attendee["emailAddress"]["address"].lower() in addresses:
                        attendee["status"] = {"response": response, "time": now}
                        answered = True
                if answered:
                    organizer_item.touch()
                    self.mailboxes[organizer_item.mailbox_id].changed()
                    changes.append(Change.of(organizer_item, "updated"))
            self._emit(changes)
