"""Table Storage: the service's records and their repositories, on azure-data-tables.

Keys are chosen for the queries the service makes: everything that belongs to a tenant is in the
tenant's partition (PartitionKey = tenant id), so a tenant's rows are read and written together
and a tenant's data never mixes with another's. Consent requests are the exception: the browser
comes back with only the request id, so that id is their partition.

Every read-modify-write carries the ETag it read (`IfNotModified`); a lost race raises
`ConcurrencyConflict`, which `modify()` turns into a re-read and a retry. Tables are created on
first use. Azure SDK exceptions are translated here, once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, TypeVar

from shared.errors import AlreadyExists, ConcurrencyConflict, TenantNotEnabled, TenantNotFound
from shared.settings import StorageConnection

log = logging.getLogger(__name__)

# Characters Table Storage refuses in keys, plus '%' which our escaping uses.
_FORBIDDEN = set("/\\#?%") | {chr(c) for c in range(0x00, 0x20)} | {chr(c) for c in range(0x7F, 0xA0)}
# Keys may be up to 1 KiB; longer values are replaced by a digest (the value is kept as a property).
MAX_KEY_CHARS = 256
# Rows a TableStore remembers at most (tenant rows and leases: a few per tenant); then it starts over.
MAX_REMEMBERED = 10_000
# How old a tenant row the availability and booking routes may act on: a disconnect, a revoked
# consent or a change of owner made on another instance takes effect there within this bound (on
# the instance that made it, at once: its own write replaces what it remembered).
TENANT_MAX_AGE = 1.0
# An entity-group transaction takes at most 100 operations
# (learn.microsoft.com/rest/api/storageservices/performing-entity-group-transactions).
TRANSACTION_LIMIT = 100


def encode_key(value: str) -> str:
    """A PartitionKey / RowKey for `value`: forbidden characters percent-escaped (reversibly);
    a value whose escaped form is long becomes `~` + its SHA-256, which `decode_key` cannot undo."""
    escaped = "".join(f"%{ord(c):02X}" if c in _FORBIDDEN else c for c in value)
    if len(escaped) > MAX_KEY_CHARS:
        return "~" + hashlib.sha256(value.encode("utf-8")).hexdigest()
    return escaped


def decode_key(key: str) -> str:
    if key.startswith("~"):
        raise ValueError("a hashed key cannot be decoded; read the record's own property")
    out, index = [], 0
    while index < len(key):
        if key[index] == "%" and index + 3 <= len(key):
            out.append(chr(int(key[index + 1 : index + 3], 16)))
            index += 3
        else:
            out.append(key[index])
            index += 1
    return "".join(out)


def backoff() -> None:
    """A short random pause after a lost ETag race, so racing writers spread out."""
    time.sleep(random.uniform(0.005, 0.05))  # noqa: S311 - jitter, not security


def utcnow() -> datetime:
    return datetime.now(UTC)


# --- records ---------------------------------------------------------------------------------


@dataclass
class Record:
    """A row. Subclasses name their table and how their keys are made."""

    TABLE: ClassVar[str]
    # Rows this process may answer from what it last read or wrote itself (TableStore.recent,
    # TableStore.known); every write keeps that copy up to date or drops it.
    REMEMBER: ClassVar[bool] = False
    etag: str | None = field(default=None, compare=False, kw_only=True)

    @property
    def partition_key(self) -> str:
        raise NotImplementedError

    @property
    def row_key(self) -> str:
        raise NotImplementedError

    def to_entity(self) -> dict[str, Any]:
        entity: dict[str, Any] = {"PartitionKey": self.partition_key, "RowKey": self.row_key}
        for item in dataclasses.fields(self):
            if item.name == "etag":
                continue
            value = getattr(self, item.name)
            if value is not None:
                entity[item.name] = list_to_text(value) if isinstance(value, list | tuple) else value
        return entity

    @classmethod
    def from_entity(cls, entity: Any) -> Any:
        values: dict[str, Any] = {}
        for item in dataclasses.fields(cls):
            if item.name == "etag" or item.name not in entity:
                continue
            value = entity[item.name]
            if isinstance(value, datetime):
                value = datetime.fromtimestamp(value.timestamp(), UTC)
            if item.type in ("list[str]",) and isinstance(value, str):
                value = text_to_list(value)
            values[item.name] = value
        record = cls(**values)
        record.etag = entity.metadata.get("etag") if hasattr(entity, "metadata") else None
        return record


def list_to_text(values: list[str] | tuple[str, ...]) -> str:
    return "\n".join(values)


def text_to_list(text: str) -> list[str]:
    return [line for line in text.split("\n") if line]


@dataclass
class TenantRecord(Record):
    """A row in its tenant's partition: everything of a tenant is read and written together."""

    tenantId: str

    @property
    def partition_key(self) -> str:
        return self.tenantId


@dataclass
class Tenant(TenantRecord):
    TABLE: ClassVar[str] = "tenants"
    REMEMBER: ClassVar[bool] = True
    organizationId: str
    organizationName: str
    mode: str  # domain | delegated
    status: str = "pending_consent"  # pending_consent | enabled | consent_revoked | disabled
    securityGroupId: str | None = None
    defaultTimeZone: str = "UTC"
    consentedAt: datetime | None = None
    createdAt: datetime | None = None
    updatedAt: datetime | None = None
    # When its organization became the owner through a proven admin consent.
    ownedAt: datetime | None = None

    @property
    def row_key(self) -> str:
        return "tenant"

    @property
    def owned(self) -> bool:
        """False for the view of an organization's open claim (TenantClaim.as_tenant), which is
        never stored: the row under this key is the owner."""
        return not getattr(self, "_from_claim", False)

    @property
    def owned_since(self) -> datetime | None:
        return self.ownedAt or self.consentedAt or self.createdAt

    def require_enabled(self) -> None:
        """409 `tenant_not_enabled` unless consent is complete and the tenant is connected."""
        if self.status != "enabled":
            raise TenantNotEnabled(f"The tenant's calendar integration is {self.status.replace('_', ' ')}.")


@dataclass
class TenantClaim(TenantRecord):
    """One organization's claim on a tenant, with its own fields: anyone can type a tenant id, so
    claims never block each other, and the tenant's owner (the `Tenant` row) is made only by a
    proven admin consent through one of them (consent/flows.py)."""

    TABLE: ClassVar[str] = "tenants"
    organizationId: str
    organizationName: str
    mode: str
    status: str = "pending_consent"  # pending_consent | disabled
    securityGroupId: str | None = None
    defaultTimeZone: str = "UTC"
    createdAt: datetime | None = None
    updatedAt: datetime | None = None

    @property
    def row_key(self) -> str:
        return self.row_key_for(self.organizationId)

    @staticmethod
    def row_key_for(organization_id: str) -> str:
        return CLAIM_PREFIX + encode_key(organization_id)

    def as_tenant(self) -> Tenant:
        """The tenant as this claim's organization sees it before it owns it (`owned` False)."""
        tenant = Tenant(tenantId=self.tenantId, organizationId=self.organizationId,
                        organizationName=self.organizationName, mode=self.mode, status=self.status,
                        securityGroupId=self.securityGroupId, defaultTimeZone=self.defaultTimeZone,
                        createdAt=self.createdAt, updatedAt=self.updatedAt)
        tenant._from_claim = True  # type: ignore[attr-defined]
        return tenant


CLAIM_PREFIX = "claim:"


@dataclass
class ConsentRequest(Record):
    TABLE: ClassVar[str] = "consentrequests"
    requestId: str
    tenantId: str
    kind: str  # admin | user
    returnUrl: str
    expiresAt: datetime
    organizationId: str = ""  # the organization that asked; it owns the tenant if the consent is proven
    loginHint: str | None = None
    usedAt: datetime | None = None
    status: str = "pending"  # pending | completed | declined | failed (expired is derived)
    reason: str | None = None  # our own code: access_denied, not_an_admin, upstream_error, ...
    completedAt: datetime | None = None
    createdAt: datetime | None = None

    @property
    def partition_key(self) -> str:
        return encode_key(self.requestId)

    @property
    def row_key(self) -> str:
        return "request"


@dataclass
class ConsentState(Record):
    """One step of a visit to a consent link: the `state` sent to Microsoft (stored as its SHA-256,
    so the table never holds a usable state), the SHA-256 of the browser's binding cookie, and for
    a sign-in MSAL's auth-code flow (PKCE verifier, nonce), kept server-side until the callback.
    Used once, then deleted."""

    TABLE: ClassVar[str] = "consentstates"
    stateHash: str
    requestId: str
    tenantId: str
    kind: str
    expiresAt: datetime
    step: str = "consent"  # consent (Microsoft's consent page or a member's sign-in) | sign_in (the admin's proof)
    browserHash: str | None = None  # SHA-256 of the cookie set on the browser that opened the link
    prompt: str | None = None  # the admin sign-in's prompt: none, then select_account
    mode: str | None = None  # the tenant's mode when the link was opened (what was consented to)
    visitedAt: datetime | None = None  # when the browser opened the link (the first step's time)
    flow: str | None = None  # JSON of MSAL's flow dict (member consent and admin sign-in)
    createdAt: datetime | None = None

    @property
    def partition_key(self) -> str:
        return self.stateHash

    @property
    def row_key(self) -> str:
        return "state"


@dataclass
class ConnectedUser(TenantRecord):
    """A delegated member's calendar connection. The refresh token itself is in Key Vault; the
    row names the secret and the version that is current."""

    TABLE: ClassVar[str] = "users"
    userId: str  # the Entra object id (oid) from the ID token
    email: str  # the mail (`email` claim), else the UPN
    upn: str | None = None  # the user principal name (`preferred_username`), often not the mail
    status: str = "connected"  # connected | needs_reconnect | not_connected
    secretName: str | None = None
    secretVersion: str | None = None
    connectedAt: datetime | None = None
    lastRefreshAt: datetime | None = None
    refreshDueAt: datetime | None = None

    @property
    def row_key(self) -> str:
        return "user:" + encode_key(self.userId.lower())


@dataclass
class Booking(TenantRecord):
    TABLE: ClassVar[str] = "bookings"
    bookingId: str
    organizer: str
    attendees: list[str]
    start: datetime
    end: datetime
    timeZone: str
    subject: str
    status: str = "creating"  # creating | uncertain | confirmed | cancelled (booking/service.py)
    organizerAddress: str | None = None  # the organizer's SMTP address, as Graph names it
    # The request, kept only until the event exists, so that a retry or the reconciler can make it.
    body: str | None = None
    onlineMeeting: bool | None = None
    checkAvailability: bool | None = None
    # When the last create sent to Graph can no longer land (its timeout plus the write margin).
    attemptDeadline: datetime | None = None
    eventId: str | None = None
    webLink: str | None = None
    onlineMeetingUrl: str | None = None
    idempotencyKey: str | None = None
    organizationId: str | None = None  # the tenant's owner when booked: only it reads the booking
    # Kept in step with Outlook (sync/): the attendees' responses as last recorded (JSON object of
    # e-mail to response), and the version every recorded change raises.
    responses: str | None = None
    version: int = 1
    # A reschedule sent to Graph whose outcome is not known yet: its key, and when it can no
    # longer land (no other change of the booking is sent before).
    moveKey: str | None = None
    moveDeadline: datetime | None = None
    createdAt: datetime | None = None
    updatedAt: datetime | None = None

    @property
    def row_key(self) -> str:
        return encode_key(self.bookingId)

    @property
    def response_map(self) -> dict[str, str]:
        import json

        try:
            value = json.loads(self.responses) if self.responses else {}
        except ValueError:
            value = {}
        return value if isinstance(value, dict) else {}


@dataclass
class BookingAttempt(Record):
    """A booking whose create may be under way, written before its row is (booking/service.py),
    in one partition for every tenant: the reconciler finds the bookings left `creating` or
    `uncertain` by reading this partition, not by a filter on `status` across every tenant's
    partition, which Table Storage answers by scanning the whole table (learn.microsoft.com/azure/
    storage/tables/table-storage-design-for-query, "table scan"). It names no one; the reconciler
    deletes it once its booking is decided or gone."""

    TABLE: ClassVar[str] = "attempts"
    tenantId: str
    bookingId: str
    createdAt: datetime | None = None

    @property
    def partition_key(self) -> str:
        return ATTEMPTS_PARTITION

    @property
    def row_key(self) -> str:
        return encode_key(f"{self.tenantId}|{self.bookingId}")


ATTEMPTS_PARTITION = "attempt"


@dataclass
class EventIndex(TenantRecord):
    """The booking an event id belongs to (the organizer's event, by its immutable id), so a
    notification is mapped without reading anything from Graph. In the bookings table."""

    TABLE: ClassVar[str] = "bookings"
    eventId: str
    bookingId: str

    @property
    def row_key(self) -> str:
        return "!event:" + encode_key(self.eventId)


@dataclass
class IdempotencyRecord(TenantRecord):
    """An Idempotency-Key's record. In the bookings table, in its tenant's partition (row keys
    starting with `!key:`, which no booking id has), so the booking's confirmation writes the
    key's completion in the same entity-group transaction."""

    TABLE: ClassVar[str] = "bookings"
    key: str
    requestHash: str
    state: str = "in_progress"  # in_progress | completed
    bookingId: str | None = None
    expiresAt: datetime | None = None
    lockedUntil: datetime | None = None  # while in progress: after this, another request may take over
    createdAt: datetime | None = None

    @property
    def row_key(self) -> str:
        return KEY_PREFIX + encode_key(self.key)


KEY_PREFIX = "!key:"


@dataclass
class Lease(TenantRecord):
    """A short lock on a name within a tenant (one organizer's bookings run one at a time)."""

    TABLE: ClassVar[str] = "leases"
    REMEMBER: ClassVar[bool] = True
    name: str
    holder: str | None = None
    expiresAt: datetime | None = None

    @property
    def row_key(self) -> str:
        return encode_key(self.name)


@dataclass
class SecretRef(TenantRecord):
    """One Key Vault secret that holds something of a tenant, so a tenant's secrets are found
    from the table (never by listing the vault) and deleted when the tenant disconnects."""

    TABLE: ClassVar[str] = "secretindex"
    secretName: str
    kind: str  # refresh_token
    subjectId: str | None = None  # the member's oid, for refresh tokens
    createdAt: datetime | None = None
    deletedAt: datetime | None = None

    @property
    def row_key(self) -> str:
        return self.secretName


R = TypeVar("R", bound=Record)


# --- the table layer --------------------------------------------------------------------------


class TableStore:
    """Thin wrapper over `TableServiceClient`: one client per process, tables created on first
    use, SDK exceptions translated to ours. Construction does no I/O."""

    def __init__(self, connection: StorageConnection, *, prefix: str = "tenkc") -> None:
        self._connection = connection
        self._prefix = prefix
        self._service: Any = None
        self._tables: dict[str, Any] = {}
        self._lock = threading.Lock()
        # Rows of REMEMBER classes as this store last read or wrote them: key -> (monotonic time
        # the read began or the write ended, record). `_writes` counts writes per key, so a read
        # that overlapped a write of this process never replaces what the write left.
        self._rows: dict[tuple[str, str, str], tuple[float, Record]] = {}
        self._writes: dict[tuple[str, str, str], int] = {}

    def _client(self, table: str) -> Any:
        client = self._tables.get(table)
        if client is not None:
            return client
        with self._lock:
            client = self._tables.get(table)
            if client is None:
                client = self._create_table_client(f"{self._prefix}{table}")
                self._tables[table] = client
        return client

    def _create_table_client(self, name: str) -> Any:
        from azure.core.exceptions import ResourceExistsError
        from azure.data.tables import TableServiceClient

        if self._service is None:
            from shared.clients import azure_credential, azure_transport

            if self._connection.connection_string:
                self._service = TableServiceClient.from_connection_string(
                    self._connection.connection_string, transport=azure_transport())
            else:
                self._service = TableServiceClient(
                    endpoint=self._connection.table_service_uri, credential=azure_credential(),
                    transport=azure_transport(),
                )
        with contextlib.suppress(ResourceExistsError):
            self._service.create_table(name)
        return self._service.get_table_client(name)

    # What this process last saw of a row (REMEMBER classes only).

    def recent(self, cls: type[R], partition_key: str, row_key: str, *, max_age: float) -> R | None:
        """The row as this store read or wrote it less than `max_age` seconds ago (counted from
        before the read), else read now. A missing row is not remembered."""
        key = (cls.TABLE, partition_key, row_key)
        held = self._rows.get(key)
        if held is not None and time.monotonic() - held[0] < max_age and isinstance(held[1], cls):
            return dataclasses.replace(held[1])  # type: ignore[return-value]
        return self.get(cls, partition_key, row_key)

    def known(self, cls: type[R], partition_key: str, row_key: str) -> R | None:
        """The row as this store last read or wrote it, however long ago (None: never, or a write
        of it failed since). Only for rows whose every write carries the ETag read: a stale copy
        then costs a failed write, never a wrong one."""
        held = self._rows.get((cls.TABLE, partition_key, row_key))
        return dataclasses.replace(held[1]) if held is not None and isinstance(held[1], cls) else None  # type: ignore[return-value]

    def _key(self, record: Record) -> tuple[str, str, str]:
        return (record.TABLE, record.partition_key, record.row_key)

    def _wrote(self, record: Record, *, deleted: bool = False) -> None:
        if not record.REMEMBER:
            return
        key = self._key(record)
        with self._lock:
            self._writes[key] = self._writes.get(key, 0) + 1
            if deleted:
                self._rows.pop(key, None)
            else:
                self._remember(key, time.monotonic(), dataclasses.replace(record))

    def _forget(self, records: list[Record]) -> None:
        """A write of these rows failed (or its outcome is unknown): nothing is assumed of them."""
        with self._lock:
            for record in records:
                if record.REMEMBER:
                    key = self._key(record)
                    self._writes[key] = self._writes.get(key, 0) + 1
                    self._rows.pop(key, None)

    def _remember(self, key: tuple[str, str, str], at: float, record: Record) -> None:
        if len(self._rows) >= MAX_REMEMBERED:
            self._rows.clear()
            self._writes.clear()
        self._rows[key] = (at, record)

    # Generic operations on records.

    def get(self, cls: type[R], partition_key: str, row_key: str, **options: Any) -> R | None:
        """The row, or None. `options` are azure-core's per-operation ones (retry_total, timeouts)."""
        from azure.core.exceptions import ResourceNotFoundError

        key = (cls.TABLE, partition_key, row_key)
        began, writes = time.monotonic(), self._writes.get(key, 0)
        try:
            entity = self._client(cls.TABLE).get_entity(partition_key, row_key, **options)
        except ResourceNotFoundError:
            return None
        record = cls.from_entity(entity)
        if cls.REMEMBER:
            with self._lock:
                if self._writes.get(key, 0) == writes:
                    self._remember(key, began, dataclasses.replace(record))
        return record

    def insert(self, record: R) -> R:
        from azure.core.exceptions import ResourceExistsError

        try:
            metadata = self._client(record.TABLE).create_entity(record.to_entity())
        except ResourceExistsError:
            self._forget([record])
            raise AlreadyExists(f"{record.TABLE} row exists") from None
        except Exception:
            self._forget([record])
            raise
        record.etag = metadata.get("etag")
        self._wrote(record)
        return record

    def upsert(self, record: R) -> R:
        """Write the row whatever is there (tests, seeding, and rows whose every write says the
        same, such as a booking's attempt marker; the service otherwise uses ETags)."""
        from azure.data.tables import UpdateMode

        try:
            metadata = self._client(record.TABLE).upsert_entity(record.to_entity(), mode=UpdateMode.REPLACE)
        except Exception:
            self._forget([record])
            raise
        record.etag = metadata.get("etag")
        self._wrote(record)
        return record

    def update(self, record: R) -> R:
        """Replace the row only if it is unchanged since `record` was read (its ETag)."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
        from azure.data.tables import UpdateMode

        if not record.etag:
            raise ValueError("update needs the ETag of the row as read; use insert() for new rows")
        try:
            metadata = self._client(record.TABLE).update_entity(
                record.to_entity(), mode=UpdateMode.REPLACE, etag=record.etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceModifiedError, ResourceNotFoundError):
            self._forget([record])
            raise ConcurrencyConflict(f"{record.TABLE} row changed or vanished since it was read") from None
        except Exception:
            self._forget([record])
            raise
        record.etag = metadata.get("etag")
        self._wrote(record)
        return record

    def delete(self, record: Record, *, if_unchanged: bool = True) -> bool:
        """Delete the row (if unchanged since read, by default). False: it was already gone."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError

        # azure-data-tables answers None for a 404 as for a 204 ("no error will be raised if the
        # entity is not found"), so the answer's status is read on its way through the pipeline.
        statuses: list[int] = []
        kwargs: dict[str, Any] = {"raw_response_hook": lambda answer: statuses.append(answer.http_response.status_code)}
        if if_unchanged and record.etag:
            kwargs |= {"etag": record.etag, "match_condition": MatchConditions.IfNotModified}
        try:
            self._client(record.TABLE).delete_entity(record.partition_key, record.row_key, **kwargs)
        except ResourceModifiedError:
            self._forget([record])
            raise ConcurrencyConflict(f"{record.TABLE} row changed since it was read") from None
        except Exception:
            self._forget([record])
            raise
        if statuses[-1:] == [404]:
            self._forget([record])
            return False
        self._wrote(record, deleted=True)
        return True

    def delete_unchanged(self, records: list[Record]) -> int:
        """Delete rows that are unchanged since read, a transaction per partition and hundred
        (one request, not one per row); rows changed or gone meanwhile stay or are skipped, and
        the rest are deleted all the same. Returns how many this call deleted."""
        groups: dict[tuple[str, str], list[Record]] = {}
        for record in records:
            groups.setdefault((record.TABLE, record.partition_key), []).append(record)
        deleted = 0
        for rows in groups.values():
            for first in range(0, len(rows), TRANSACTION_LIMIT):
                chunk = rows[first:first + TRANSACTION_LIMIT]
                try:
                    self.transact([("delete", record) for record in chunk])
                    deleted += len(chunk)
                except ConcurrencyConflict:  # one of them changed or went: each on its own
                    for record in chunk:
                        with contextlib.suppress(ConcurrencyConflict):
                            deleted += self.delete(record)
        return deleted

    def query(self, cls: type[R], filter_: str, parameters: dict[str, Any] | None = None,
              *, page_size: int = 100) -> Iterator[R]:
        entities = self._client(cls.TABLE).query_entities(
            filter_, parameters=parameters or {}, results_per_page=page_size
        )
        for entity in entities:
            yield cls.from_entity(entity)

    def page(self, cls: type[R], filter_: str, parameters: dict[str, Any] | None = None, *,
             page_size: int = 100, continuation: Any = None) -> tuple[list[R], Any]:
        """One page of a query and the token for the next (None at the end)."""
        pages = self._client(cls.TABLE).query_entities(
            filter_, parameters=parameters or {}, results_per_page=page_size
        ).by_page(continuation_token=continuation)
        items = [cls.from_entity(entity) for entity in next(pages, [])]
        return items, pages.continuation_token

    def insert_many(self, records: list[Record]) -> None:
        """Insert rows of one table and partition atomically (all or none)."""
        from azure.data.tables import TableTransactionError

        if not records:
            return
        if len(records) > TRANSACTION_LIMIT:
            raise ValueError(f"a transaction takes at most {TRANSACTION_LIMIT} rows, not {len(records)}")
        table = records[0].TABLE
        try:
            self._client(table).submit_transaction([("create", r.to_entity()) for r in records])
        except TableTransactionError as error:
            self._forget(records)
            if getattr(error, "error_code", None) == "EntityAlreadyExists":
                raise AlreadyExists(f"{table} row exists") from None
            raise
        except Exception:
            self._forget(records)
            raise
        for record in records:
            self._wrote(record)

    def transact(self, operations: list[tuple[str, Record]]) -> None:
        """Apply writes to rows of one table and one partition atomically, all or none:
        ("insert", r), ("update", r) (only if unchanged since `r` was read: its ETag),
        ("upsert", r), ("delete", r) (if unchanged). A lost race raises `ConcurrencyConflict`, an
        existing row for an insert `AlreadyExists`; the records' ETags are brought up to date."""
        from azure.core import MatchConditions
        from azure.data.tables import TableTransactionError, UpdateMode

        if not operations:
            return
        if len(operations) > TRANSACTION_LIMIT:
            raise ValueError(f"a transaction takes at most {TRANSACTION_LIMIT} operations, not {len(operations)}")
        table = operations[0][1].TABLE
        batch: list[Any] = []
        for kind, record in operations:
            if kind == "insert":
                batch.append(("create", record.to_entity()))
            elif kind == "update":
                if not record.etag:
                    raise ValueError("update needs the ETag of the row as read")
                batch.append(("update", record.to_entity(), {"mode": UpdateMode.REPLACE, "etag": record.etag,
                                                            "match_condition": MatchConditions.IfNotModified}))
            elif kind == "upsert":
                batch.append(("upsert", record.to_entity(), {"mode": UpdateMode.REPLACE}))
            elif kind == "delete":
                batch.append(("delete", record.to_entity(), {"etag": record.etag,
                                                            "match_condition": MatchConditions.IfNotModified}
                              if record.etag else {}))
            else:
                raise ValueError(f"unknown operation {kind!r}")
        try:
            results = self._client(table).submit_transaction(batch)
        except TableTransactionError as error:
            self._forget([record for _, record in operations])
            code = getattr(error, "error_code", None)
            if code == "EntityAlreadyExists":
                raise AlreadyExists(f"{table} row exists") from None
            if code in ("UpdateConditionNotSatisfied", "ResourceNotFound", "ConditionNotMet"):
                raise ConcurrencyConflict(f"{table} row changed since it was read") from None
            raise
        except Exception:
            self._forget([record for _, record in operations])
            raise
        for (kind, record), result in zip(operations, results, strict=False):
            if kind != "delete" and isinstance(result, dict):
                record.etag = result.get("etag") or record.etag
            self._wrote(record, deleted=kind == "delete")

    def modify(self, cls: type[R], partition_key: str, row_key: str,
               change: Callable[[R], R | None], *, attempts: int = 10) -> R | None:
        """Read, apply `change`, write back with the ETag; on a lost race, re-read and retry.
        `change` returns the new record, or None to leave the row as it is. A missing row: None."""
        for _ in range(attempts):
            current = self.get(cls, partition_key, row_key)
            if current is None:
                return None
            etag = current.etag
            changed = change(current)
            if changed is None:
                return current
            changed.etag = etag
            try:
                return self.update(changed)
            except ConcurrencyConflict:
                log.info("%s row changed while being updated; retrying", cls.TABLE)
                backoff()
        raise ConcurrencyConflict(f"{cls.TABLE} row kept changing; gave up after {attempts} attempts")


# --- repositories: the queries the service makes ------------------------------------------------


def _stuck(row: Booking, now: datetime, older_than: timedelta) -> bool:
    """A booking left `creating` or `uncertain` whose last attempt can no longer land, or that sent
    none and was last written more than `older_than` ago (as `stuck_bookings_scanned` filters)."""
    if row.attemptDeadline is not None and row.attemptDeadline < now:
        return True
    return row.updatedAt is not None and row.updatedAt < now - older_than


class Repositories:
    """Named queries over `TableStore`, one small method per question the service asks."""

    def __init__(self, store: TableStore) -> None:
        self.store = store

    # tenants
    def tenant(self, tenant_id: str) -> Tenant | None:
        return self.store.get(Tenant, tenant_id, "tenant")

    def claim(self, tenant_id: str, organization_id: str) -> TenantClaim | None:
        return self.store.get(TenantClaim, tenant_id, TenantClaim.row_key_for(organization_id))

    def view_of(self, tenant_id: str, organization_id: str, *, max_age: float = 0.0) -> Tenant | None:
        """The tenant as the organization sees it: the tenant it owns, or its open claim (a
        `Tenant` with `owned` False) while nobody owns the tenant; else None. With `max_age`, the
        tenant row as this process read or wrote it less than that many seconds ago will do."""
        tenant = self.store.recent(Tenant, tenant_id, "tenant", max_age=max_age) if max_age > 0 \
            else self.tenant(tenant_id)
        if tenant is not None:
            return tenant if tenant.organizationId == organization_id else None
        claim = self.claim(tenant_id, organization_id)
        return claim.as_tenant() if claim is not None else None

    def require_tenant(self, tenant_id: str, *, organization_id: str, max_age: float = 0.0) -> Tenant:
        """The tenant as the organization sees it, or 404 `tenant_not_found`: a tenant that another
        organization owns answers exactly as an unknown one, so organizations cannot find each
        other's. `max_age`: see `view_of` (TENANT_MAX_AGE for the availability and booking routes)."""
        tenant = self.view_of(tenant_id, organization_id, max_age=max_age)
        if tenant is None:
            raise TenantNotFound("No tenant with this id is registered.", target="tenantId")
        return tenant

    def tenants_page(self, *, status: str, mode: str | None = None, page_size: int = 100,
                     continuation: Any = None) -> tuple[list[Tenant], Any]:
        filter_, params = "RowKey eq 'tenant' and status eq @status", {"status": status}
        if mode:
            filter_ += " and mode eq @mode"
            params["mode"] = mode
        return self.store.page(Tenant, filter_, params, page_size=page_size, continuation=continuation)

    # consent requests
    def consent_request(self, request_id: str) -> ConsentRequest | None:
        return self.store.get(ConsentRequest, encode_key(request_id), "request")

    def expired_consent_requests(self, now: datetime) -> Iterator[ConsentRequest]:
        return self.store.query(ConsentRequest, "expiresAt lt @now", {"now": now})

    def consent_state(self, state_hash: str) -> ConsentState | None:
        return self.store.get(ConsentState, state_hash, "state")

    def expired_consent_states(self, now: datetime) -> Iterator[ConsentState]:
        return self.store.query(ConsentState, "expiresAt lt @now", {"now": now})

    # connected users: one row per member, found by oid; by e-mail through a partition query
    def user(self, tenant_id: str, user_id: str) -> ConnectedUser | None:
        return self.store.get(ConnectedUser, tenant_id, "user:" + encode_key(user_id.lower()))

    def member(self, tenant_id: str, person: str) -> ConnectedUser | None:
        """A member named by Entra object id, UPN or e-mail address (case-insensitive)."""
        found = self.user(tenant_id, person) if "@" not in person else None  # UPNs and mails have an @
        if found is None:
            found = next(iter(self.store.query(
                ConnectedUser, "PartitionKey eq @tenant and ( email eq @name or upn eq @name )",
                {"tenant": tenant_id, "name": person.lower()})), None)
        return found

    def users(self, tenant_id: str) -> Iterator[ConnectedUser]:
        return self.store.query(
            ConnectedUser, "PartitionKey eq @tenant and RowKey ge 'user:' and RowKey lt 'user;'",
            {"tenant": tenant_id},
        )

    def users_due_page(self, due_before: datetime, *, page_size: int = 100,
                       continuation: Any = None) -> tuple[list[ConnectedUser], Any]:
        return self.store.page(
            ConnectedUser, "status eq 'connected' and refreshDueAt le @due", {"due": due_before},
            page_size=page_size, continuation=continuation,
        )

    # bookings and idempotency records
    def booking(self, tenant_id: str, booking_id: str) -> Booking | None:
        return self.store.get(Booking, tenant_id, encode_key(booking_id))

    def booking_of_event(self, tenant_id: str, event_id: str) -> Booking | None:
        index = self.store.get(EventIndex, tenant_id, "!event:" + encode_key(event_id))
        return self.booking(tenant_id, index.bookingId) if index is not None else None

    def upcoming_bookings(self, tenant_id: str, organizer_address: str, now: datetime,
                          limit: int = 1) -> list[Booking]:
        """Confirmed bookings of the organizer's mailbox that have not ended (at most `limit`)."""
        found = self.store.query(
            Booking, "PartitionKey eq @tenant and organizerAddress eq @address and status eq 'confirmed' "
                     "and end gt @now", {"tenant": tenant_id, "address": organizer_address, "now": now},
            page_size=limit)
        return list(itertools.islice(found, limit))

    def attempt_begun(self, tenant_id: str, booking_id: str) -> None:
        """Mark a booking whose create is about to begin, before its row is written: the reconciler
        finds it there (`stuck_bookings`) whatever becomes of the request."""
        self.store.upsert(BookingAttempt(tenantId=tenant_id, bookingId=booking_id, createdAt=utcnow()))

    def stuck_bookings(self, *, older_than: timedelta, limit: int) -> list[Booking]:
        """Bookings left `creating` or `uncertain` whose last attempt can no longer land, or that
        sent none and were last written more than `older_than` ago, found through their attempt
        markers (one partition; each marker's booking one point read). Markers whose booking is
        decided, or gone and older than `older_than` (a create that never wrote its row, a row
        cleaned up), are deleted on the way, unless written again meanwhile."""
        now = utcnow()
        found: list[Booking] = []
        settled: list[BookingAttempt] = []
        for attempt in self.store.query(BookingAttempt, "PartitionKey eq @partition",
                                        {"partition": ATTEMPTS_PARTITION}, page_size=min(limit, 1000)):
            row = self.booking(attempt.tenantId, attempt.bookingId)
            if row is None:
                if attempt.createdAt is None or attempt.createdAt < now - older_than:
                    settled.append(attempt)
            elif row.status not in ("creating", "uncertain"):
                settled.append(attempt)
            elif _stuck(row, now, older_than):
                found.append(row)
                if len(found) == limit:
                    break
        if settled:
            self.store.delete_unchanged(settled)
        return found

    def stuck_bookings_scanned(self, *, older_than: timedelta, limit: int) -> list[Booking]:
        """The same bookings found by a filter across every partition (a table scan): the daily
        safety net for rows that have no marker (written before markers existed)."""
        now = utcnow()
        found = self.store.query(
            Booking, "( status eq 'uncertain' or status eq 'creating' ) and "
                     "( attemptDeadline lt @now or updatedAt lt @quiet )",  # the SDK needs a space after @name
            {"now": now, "quiet": now - older_than}, page_size=min(limit, 1000))
        return list(itertools.islice(found, limit))

    def idempotency_record(self, tenant_id: str, key: str) -> IdempotencyRecord | None:
        return self.store.get(IdempotencyRecord, tenant_id, KEY_PREFIX + encode_key(key))

    def lease(self, tenant_id: str, name: str) -> Lease | None:
        """The lease row. A free one is answered from what this process last wrote or read of it
        (no read): taking it is a write with that ETag, which fails if anyone wrote it since (and
        the next try reads). A held one is always read, so a release elsewhere is seen."""
        known = self.store.known(Lease, tenant_id, encode_key(name))
        if known is not None and (not known.holder or known.expiresAt is None or known.expiresAt <= utcnow()):
            return known
        return self.store.get(Lease, tenant_id, encode_key(name))

    def expired_idempotency_records(self, now: datetime) -> Iterator[IdempotencyRecord]:
        return self.store.query(IdempotencyRecord, "RowKey ge @start and RowKey lt @end and expiresAt lt @now",
                                {"start": KEY_PREFIX, "end": KEY_PREFIX[:-1] + ";", "now": now})

    # the index of a tenant's Key Vault secrets
    def secret_refs(self, tenant_id: str, *, include_deleted: bool = False) -> Iterator[SecretRef]:
        refs = self.store.query(SecretRef, "PartitionKey eq @tenant", {"tenant": tenant_id})
        return (ref for ref in refs if include_deleted or ref.deletedAt is None)
