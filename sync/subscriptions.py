"""Graph change-notification subscriptions on the mailboxes of organizers with upcoming bookings.

One subscription per organizer mailbox (`users/{organizer}/events` with the app's token in
`domain` mode, `me/events` with the member's token in `delegated` mode), for `updated,deleted`,
with `Prefer: IdType="ImmutableId"` so notifications name the immutable ids the service stores
(learn.microsoft.com/graph/outlook-immutable-id), a lifecycle URL (learn.microsoft.com/graph/
change-notifications-lifecycle-events), and a clientState of its own.

The clientState is `<tenant>.<mailbox key>.<32 random bytes>`: it says which row to read, and
the row keeps only its SHA-256, compared in constant time (so a notification is recognised
without any Graph or Key Vault call, and a leaked table does not let anyone forge one). The row
is written before Graph is asked to create the subscription, so a notification that arrives
before Graph's answer is recognised too.

Lifetime: Outlook event subscriptions live at most 10,080 minutes (learn.microsoft.com/graph/api/
resources/subscription, "Subscription lifetime"); ours ask for 10,000 and are renewed once fewer
than 3 days remain, by the reconciler's sweep every few minutes, so a failed renewal has days of
retries before Graph deletes the subscription; a renewal Graph answers 404 makes it again. A
subscription is deleted when its organizer has no upcoming booking, and a tenant's when it is
disconnected or its consent revoked.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import quote

from shared.errors import ConcurrencyConflict, ServiceError
from shared.graph import GraphClient, GraphError
from shared.storage import Repositories, Tenant, TenantRecord, utcnow

log = logging.getLogger(__name__)

LIFETIME = timedelta(minutes=10_000)
RENEW_WHEN_LEFT = timedelta(days=3)
CREATING_HOLD = timedelta(seconds=60)  # another worker's create under way
CHECK_EVERY = timedelta(days=1)  # the sweep looks at every subscription at least this often
# A recognised subscription row is remembered this long by the notification route; only a match
# is remembered, and anything that does not match the remembered row is read again.
RECOGNISED_FOR = 5.0
IMMUTABLE_IDS = 'IdType="ImmutableId"'
CHANGE_TYPES = "updated,deleted"


def mailbox_key(address: str) -> str:
    return hashlib.sha256(address.lower().encode("utf-8")).hexdigest()[:16]


def state_hash(client_state: str) -> str:
    return hashlib.sha256(client_state.encode("utf-8")).hexdigest()


@dataclass
class Subscription(TenantRecord):
    TABLE: ClassVar[str] = "subscriptions"
    mailboxKey: str
    address: str  # the organizer's SMTP address (lower case)
    path: str  # how Graph's path names the mailbox (object id or UPN), or the member's id in delegated mode
    mode: str  # domain | delegated
    clientStateHash: str
    status: str = "creating"  # creating | active
    subscriptionId: str | None = None
    expiresAt: datetime | None = None
    renewDueAt: datetime | None = None
    createdAt: datetime | None = None
    updatedAt: datetime | None = None

    @property
    def row_key(self) -> str:
        return "sub:" + self.mailboxKey


class Recogniser:
    """The notification route's check: no Graph, no Key Vault, and nothing of them imported (the
    route's first delivery on a new instance builds only the table client)."""

    def __init__(self, repos: Repositories) -> None:
        self.repos = repos
        self._recent: dict[tuple[str, str], tuple[float, Subscription]] = {}
        self._reading: dict[tuple[Any, Any], Any] = {}  # (parsed clientState, subscriptionId) -> its read

    def recognise(self, client_state: Any, subscription_id: Any) -> Subscription | None:
        """The subscription a notification item belongs to, or None (unknown or forged)."""
        parsed = _parsed(client_state)
        if parsed is None:
            return None
        return self._cached(parsed, subscription_id) or self._read(parsed, subscription_id)

    async def recognised(self, client_state: Any, subscription_id: Any) -> Subscription | None:
        """`recognise` for the route on the worker's event loop: a row not read lately is read on
        a thread, once for all the items that arrive while it is read (when the row's few seconds
        end in the middle of a burst, 32 deliveries at once used to read it 32 times)."""
        parsed = _parsed(client_state)
        if parsed is None:
            return None
        row = self._cached(parsed, subscription_id)
        if row is not None:
            return row
        import asyncio

        key = (parsed, subscription_id if isinstance(subscription_id, str) else None)
        reading = self._reading.get(key)
        if reading is None:
            reading = asyncio.ensure_future(asyncio.to_thread(self._read, parsed, subscription_id))
            self._reading[key] = reading
            reading.add_done_callback(lambda _: self._reading.pop(key, None))
        return await asyncio.shield(reading)  # a caller gone away does not end the others' read

    def _cached(self, parsed: tuple[str, str, str], subscription_id: Any) -> Subscription | None:
        """The row when it was read in the last few seconds (a burst of one mailbox's
        notifications reads it once), else None."""
        tenant_id, key, digest = parsed
        cached = self._recent.get((tenant_id, key))
        if cached is not None and cached[0] > time.monotonic() and _belongs(cached[1], digest, subscription_id):
            return cached[1]
        return None

    def _read(self, parsed: tuple[str, str, str], subscription_id: Any) -> Subscription | None:
        from shared.queues import FAST

        tenant_id, key, digest = parsed
        row = self.repos.store.get(Subscription, tenant_id, "sub:" + key, **FAST)  # answer in time, or fail
        if row is None or not _belongs(row, digest, subscription_id):
            return None
        self._recent[(tenant_id, key)] = (time.monotonic() + RECOGNISED_FOR, row)
        return row


def _parsed(client_state: Any) -> tuple[str, str, str] | None:
    """(tenant id, mailbox key, hash) of a clientState of our shape, else None."""
    if not isinstance(client_state, str) or len(client_state) > 128 or client_state.count(".") != 2:
        return None
    tenant_id, key, _ = client_state.split(".")
    if len(tenant_id) != 36 or len(key) != 16:
        return None
    return tenant_id, key, state_hash(client_state)


class Subscriptions:
    def __init__(self, repos: Repositories, graph: GraphClient, members: Any, *, notification_url: str,
                 clock: Any = utcnow) -> None:
        self.repos = repos
        self.graph = graph
        self.members = members
        self.notification_url = notification_url
        self.clock = clock

    def row(self, tenant_id: str, key: str) -> Subscription | None:
        return self.repos.store.get(Subscription, tenant_id, "sub:" + key)

    # -- making, renewing, deleting ------------------------------------------------------------------

    def _token(self, row: Subscription) -> str | None:
        return self.members.access_token(row.tenantId, row.path) if row.mode == "delegated" else None

    def _resource(self, row: Subscription) -> str:
        return "me/events" if row.mode == "delegated" else f"users/{row.path}/events"

    def ensure(self, tenant: Tenant, address: str, path: str) -> str:
        """A live subscription on the organizer's mailbox: made when missing, renewed when due."""
        if tenant.status != "enabled":
            return "skipped: tenant not enabled"
        now = self.clock()
        key = mailbox_key(address)
        row = self.row(tenant.tenantId, key)
        if row is not None and row.status == "active" and row.expiresAt and row.expiresAt - now > RENEW_WHEN_LEFT:
            return "already subscribed"
        if row is not None and row.status == "active" and row.subscriptionId:
            return self.renew(row)
        if row is not None and row.status == "creating" and row.updatedAt and now - row.updatedAt < CREATING_HOLD:
            return "another worker is subscribing"
        return self._create(tenant, address, path, row)

    def _create(self, tenant: Tenant, address: str, path: str, old: Subscription | None) -> str:
        now = self.clock()
        key = mailbox_key(address)
        client_state = f"{tenant.tenantId}.{key}.{secrets.token_urlsafe(32)}"
        row = Subscription(tenantId=tenant.tenantId, mailboxKey=key, address=address.lower(), path=path,
                           mode=tenant.mode, clientStateHash=state_hash(client_state), createdAt=now, updatedAt=now)
        # Stored before Graph is asked, so an early notification is recognised.
        try:
            if old is None:
                self.repos.store.insert(row)
            else:
                row.etag = old.etag
                self.repos.store.update(row)
        except Exception as error:  # AlreadyExists or ConcurrencyConflict: another worker is at it
            log.info("subscription row taken meanwhile (%s)", type(error).__name__)
            return "another worker is subscribing"
        if old is not None and old.subscriptionId:
            self._delete_remote(old)
        body = {"changeType": CHANGE_TYPES, "notificationUrl": self.notification_url,
                "lifecycleNotificationUrl": self.notification_url, "resource": self._resource(row),
                "expirationDateTime": _graph_instant(now + LIFETIME), "clientState": client_state}
        try:
            created = self.graph.request("POST", "/subscriptions", tenant_id=row.tenantId, mailbox=row.path,
                                         json=body, token=self._token(row), prefer=[IMMUTABLE_IDS], retry=True).body
        except GraphError as error:
            if error.status == 409:  # one of ours from a create whose answer was lost: replace it
                self._delete_duplicates(row)
            self.repos.store.delete(row, if_unchanged=False)
            raise _failed(error) from None
        row.subscriptionId = str((created or {}).get("id") or "")
        row.expiresAt = _parse_instant((created or {}).get("expirationDateTime")) or now + LIFETIME
        row.renewDueAt = _next_check(row.expiresAt, now)
        row.status, row.updatedAt = "active", self.clock()
        try:
            self.repos.store.update(row)
        except ConcurrencyConflict:
            log.info("subscription row changed while it was made")
        log.info("subscribed to an organizer's mailbox (mode %s)", row.mode)
        return "subscribed"

    def renew(self, row: Subscription) -> str:
        now = self.clock()
        try:
            renewed = self.graph.request("PATCH", f"/subscriptions/{quote(row.subscriptionId or '', safe='')}",
                                         tenant_id=row.tenantId, mailbox=row.path, token=self._token(row),
                                         json={"expirationDateTime": _graph_instant(now + LIFETIME)}, retry=True).body
        except GraphError as error:
            if error.status == 404:  # Graph deleted it (expired or removed): make it again
                tenant = self.repos.tenant(row.tenantId)
                if tenant is None:
                    return "tenant gone"
                log.warning("subscription made again: Graph no longer had it")
                return "made again: " + self._create(tenant, row.address, row.path, row)
            raise _failed(error) from None
        row.expiresAt = _parse_instant((renewed or {}).get("expirationDateTime")) or now + LIFETIME
        row.renewDueAt, row.updatedAt = _next_check(row.expiresAt, now), now
        try:
            self.repos.store.update(row)
        except ConcurrencyConflict:
            return "changed meanwhile"
        return "renewed"

    def remove(self, row: Subscription) -> str:
        """Delete the subscription in Graph (404: already gone) and its row."""
        if row.subscriptionId:
            self._delete_remote(row)
        self.repos.store.delete(row, if_unchanged=False)
        return "unsubscribed"

    def _delete_remote(self, row: Subscription) -> None:
        try:
            self.graph.request("DELETE", f"/subscriptions/{quote(row.subscriptionId or '', safe='')}",
                               tenant_id=row.tenantId, mailbox=row.path, token=self._token(row), retry=True)
        except GraphError as error:
            if error.status != 404:
                log.warning("deleting a subscription failed (%s %s); Graph drops it at expiry", error.status,
                            error.code)
        except ServiceError as error:  # e.g. the member's token is gone: Graph drops it at expiry
            log.warning("deleting a subscription failed (%s)", error.code)

    def _delete_duplicates(self, row: Subscription) -> None:
        try:
            listed = self.graph.request("GET", "/subscriptions", tenant_id=row.tenantId, mailbox=row.path,
                                        token=self._token(row), retry=True).body or {}
        except GraphError:
            return
        for found in listed.get("value") or []:
            if str(found.get("resource", "")).lower() == self._resource(row).lower() and \
                    found.get("notificationUrl") == self.notification_url:
                self._delete_remote(Subscription(tenantId=row.tenantId, mailboxKey=row.mailboxKey,
                                                 address=row.address, path=row.path, mode=row.mode,
                                                 clientStateHash="", subscriptionId=str(found.get("id"))))

    # -- the sweep ---------------------------------------------------------------------------------

    def sweep(self, *, limit: int = 200) -> dict[str, int]:
        """Renew subscriptions due, delete those whose organizer has no upcoming booking or whose
        tenant is not enabled (at most `limit` rows per run)."""
        now = self.clock()
        outcomes: dict[str, int] = {}
        due = self.repos.store.query(Subscription, "renewDueAt le @now or status eq 'creating'", {"now": now},
                                     page_size=min(limit, 1000))
        tenants: dict[str, Tenant | None] = {}
        for count, row in enumerate(due):
            if count >= limit:
                break
            if row.tenantId not in tenants:
                tenants[row.tenantId] = self.repos.tenant(row.tenantId)
            outcome = self.check(tenants[row.tenantId], row)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        return outcomes

    def check(self, tenant: Tenant | None, row: Subscription) -> str:
        now = self.clock()
        try:
            if tenant is None or tenant.status != "enabled":
                return self.remove(row)
            if not self.repos.upcoming_bookings(row.tenantId, row.address, now):
                return self.remove(row)
            if row.status == "creating":
                if row.updatedAt and now - row.updatedAt < CREATING_HOLD:
                    return "creating"
                return self._create(tenant, row.address, row.path, row)
            if row.expiresAt is None or row.expiresAt - now <= RENEW_WHEN_LEFT:
                return self.renew(row)
            row.renewDueAt, row.updatedAt = _next_check(row.expiresAt, now), now
            self.repos.store.update(row)
            return "fine"
        except ServiceError as error:
            # For operators (README, "Operations"): days remain before Graph deletes it, and each
            # sweep tries again; re-made when Graph no longer has it.
            log.error("subscription renewal failed: %s (status %s)", error.code, row.status)
            return f"failed: {error.code}"
        except ConcurrencyConflict:
            return "changed meanwhile"

    def remove_tenant(self, tenant_id: str) -> int:
        rows = list(self.repos.store.query(Subscription, "PartitionKey eq @tenant", {"tenant": tenant_id}))
        for row in rows:
            self.remove(row)
        return len(rows)


def _belongs(row: Subscription, digest: str, subscription_id: Any) -> bool:
    """The item's clientState is the row's (constant-time compare of the hashes) and its
    subscription is the row's current one (an older one of the mailbox is dropped)."""
    if not hmac.compare_digest(row.clientStateHash, digest):
        return False
    return row.subscriptionId is None or row.subscriptionId == subscription_id


def _next_check(expires_at: datetime, now: datetime) -> datetime:
    return min(expires_at - RENEW_WHEN_LEFT, now + CHECK_EVERY)


def _failed(error: GraphError) -> ServiceError:
    from shared.upstream import service_error

    return service_error(error) or ServiceError(f"Graph refused the subscription ({error.status})")


def _graph_instant(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.0000000Z")


def _parse_instant(value: Any) -> datetime | None:
    """Graph's `2026-12-08T10:00:00.0000000Z` (seven fractional digits, which fromisoformat does
    not take) as an aware datetime."""
    if not isinstance(value, str):
        return None
    found = _INSTANT.fullmatch(value.strip())
    if found is None:
        return None
    try:
        parsed = datetime.fromisoformat(f"{found['base']}.{(found['fraction'] or '0')[:6]}")
    except ValueError:
        return None
    zone = found["zone"]
    if zone in ("Z", "z", None):
        return parsed.replace(tzinfo=UTC)
    return datetime.fromisoformat(f"{found['base']}{zone}").astimezone(UTC).replace(microsecond=parsed.microsecond)


_INSTANT = re.compile(r"(?P<base>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(?P<fraction>\d+))?"
                      r"(?P<zone>Z|z|[+-]\d{2}:\d{2})?")
