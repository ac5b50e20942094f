"""The Table Storage layer against Azurite, through the real azure-data-tables SDK."""

from datetime import UTC, datetime, time, timedelta

import pytest

from shared.errors import AlreadyExists, ConcurrencyConflict
from shared.storage import (
    Booking,
    ConnectedUser,
    ConsentRequest,
    IdempotencyRecord,
    Repositories,
    SecretRef,
    Tenant,
)
from tests.support.days import DAY

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
# The clock handed to the storage layer (every "now" here is injected): noon UTC a week before the
# tests' day, so it is always ahead of the real clock, like the rest of the tests' times.
NOW = datetime.combine(DAY - timedelta(days=7), time(12), UTC)


def tenant(**changes) -> Tenant:
    values = dict(tenantId=TENANT, organizationId="org-42", organizationName="Contoso on 10KC", mode="domain",
                  createdAt=NOW, updatedAt=NOW)
    return Tenant(**(values | changes))


def test_tables_are_created_on_first_use_and_round_trip(table_store):
    repos = Repositories(table_store)
    assert repos.tenant(TENANT) is None
    table_store.insert(tenant(securityGroupId=None))
    read = repos.tenant(TENANT)
    assert read == tenant()
    assert read.etag and read.createdAt == NOW and read.createdAt.tzinfo is not None


def test_insert_twice_is_refused(table_store):
    table_store.insert(tenant())
    with pytest.raises(AlreadyExists):
        table_store.insert(tenant())


def test_stale_etag_is_a_conflict_and_modify_retries(table_store):
    repos = Repositories(table_store)
    table_store.insert(tenant())
    first, second = repos.tenant(TENANT), repos.tenant(TENANT)
    first.status = "enabled"
    table_store.update(first)
    second.organizationName = "stale writer"
    with pytest.raises(ConcurrencyConflict):
        table_store.update(second)
    assert repos.tenant(TENANT).organizationName == "Contoso on 10KC"

    # modify() re-reads after a lost race: a concurrent writer slips in during the first attempt.
    calls = []

    def rename(current: Tenant) -> Tenant:
        calls.append(current.organizationName)
        if len(calls) == 1:
            racer = repos.tenant(TENANT)
            racer.organizationName = "racer"
            table_store.update(racer)
        current.defaultTimeZone = "Europe/London"
        return current

    result = table_store.modify(Tenant, TENANT, "tenant", rename)
    assert calls == ["Contoso on 10KC", "racer"]
    final = repos.tenant(TENANT)
    assert (final.organizationName, final.defaultTimeZone, final.status) == ("racer", "Europe/London", "enabled")
    assert result.etag == final.etag


def test_modify_gives_up_when_the_row_keeps_changing(table_store):
    table_store.insert(tenant())
    repos = Repositories(table_store)

    def always_race(current: Tenant) -> Tenant:
        racer = repos.tenant(TENANT)
        racer.organizationName += "!"
        table_store.update(racer)
        return current

    with pytest.raises(ConcurrencyConflict, match="gave up after 3"):
        table_store.modify(Tenant, TENANT, "tenant", always_race, attempts=3)
    assert table_store.modify(Tenant, "00000000-0000-0000-0000-000000000000", "tenant", always_race) is None


def test_delete_with_etag(table_store):
    table_store.insert(tenant())
    repos = Repositories(table_store)
    stale = repos.tenant(TENANT)
    fresh = repos.tenant(TENANT)
    fresh.status = "disabled"
    table_store.update(fresh)
    with pytest.raises(ConcurrencyConflict):
        table_store.delete(stale)
    assert table_store.delete(fresh) is True
    assert repos.tenant(TENANT) is None
    # Already gone: no error, and it says so, with its ETag or without.
    assert table_store.delete(fresh) is False
    assert table_store.delete(fresh, if_unchanged=False) is False


def test_keys_with_forbidden_characters_and_long_ids(table_store):
    repos = Repositories(table_store)
    awkward = "key/with\\every#bad?char%\t\x7f" + "x" * 150
    table_store.insert(IdempotencyRecord(tenantId=TENANT, key=awkward, requestHash="h1", createdAt=NOW))
    long_key = "k" * 200 + "/" * 100  # escapes past the key limit: stored under a digest
    table_store.insert(IdempotencyRecord(tenantId=TENANT, key=long_key, requestHash="h2", createdAt=NOW))
    assert repos.idempotency_record(TENANT, awkward).requestHash == "h1"
    assert repos.idempotency_record(TENANT, long_key).key == long_key
    assert repos.idempotency_record(TENANT, "key") is None

    booking_id = "bk_" + "9" * 125
    table_store.insert(Booking(tenantId=TENANT, bookingId=booking_id, organizer="ada@contoso.example",
                               attendees=["grace@contoso.example", "alan@contoso.example"], start=NOW,
                               end=NOW + timedelta(minutes=30), timeZone="America/New_York", subject="1:1"))
    read = repos.booking(TENANT, booking_id)
    assert read.attendees == ["grace@contoso.example", "alan@contoso.example"]
    assert read.end - read.start == timedelta(minutes=30)


def test_users_are_partitioned_by_tenant_and_found_by_oid_or_email(table_store):
    repos = Repositories(table_store)
    other = "8c1ee2d4-0000-4000-8000-000000000001"
    for tid, oid, email in [(TENANT, "OID-1", "ada@contoso.example"), (TENANT, "oid-2", "grace@contoso.example"),
                            (other, "oid-3", "ada@contoso.example")]:
        table_store.insert(ConnectedUser(tenantId=tid, userId=oid, email=email, connectedAt=NOW,
                                         refreshDueAt=NOW + timedelta(days=1)))
    assert repos.user(TENANT, "oid-1").email == "ada@contoso.example"
    assert repos.member(TENANT, "ADA@contoso.example".lower()).userId == "OID-1"
    assert repos.member(other, "grace@contoso.example") is None
    assert sorted(u.userId for u in repos.users(TENANT)) == ["OID-1", "oid-2"]
    due, token = repos.users_due_page(NOW + timedelta(days=2), page_size=2)
    rest, end = repos.users_due_page(NOW + timedelta(days=2), page_size=2, continuation=token)
    assert len(due) == 2 and len(rest) == 1 and end is None


def test_secret_index_lists_a_tenants_secrets(table_store):
    repos = Repositories(table_store)
    table_store.insert(SecretRef(tenantId=TENANT, secretName="rt-a-1", kind="refresh_token", createdAt=NOW))
    table_store.insert(SecretRef(tenantId=TENANT, secretName="rt-b-2", kind="refresh_token", deletedAt=NOW))
    table_store.insert(SecretRef(tenantId="someone-else", secretName="rt-c-3", kind="refresh_token"))
    assert [r.secretName for r in repos.secret_refs(TENANT)] == ["rt-a-1"]
    assert len(list(repos.secret_refs(TENANT, include_deleted=True))) == 2


def test_expired_consent_requests_and_tenants_by_status(table_store):
    repos = Repositories(table_store)
    for index, minutes in enumerate((-5, 10)):
        table_store.insert(ConsentRequest(requestId=f"req-{index}", tenantId=TENANT, kind="admin",
                                          returnUrl="https://app.10kc.example/x",
                                          expiresAt=NOW + timedelta(minutes=minutes)))
    assert [r.requestId for r in repos.expired_consent_requests(NOW)] == ["req-0"]
    assert repos.consent_request("req-1").returnUrl == "https://app.10kc.example/x"
    table_store.insert(tenant(status="enabled"))
    table_store.insert(tenant(tenantId="8c1ee2d4-0000-4000-8000-000000000001", mode="delegated", status="enabled"))
    page, _ = repos.tenants_page(status="enabled", mode="domain")
    assert [t.tenantId for t in page] == [TENANT]


def test_a_transaction_of_more_than_100_rows_is_refused_before_it_is_sent(app_env):
    """Table Storage takes at most 100 operations in one transaction; Azurite answers more with a
    garbled response, so the store says so plainly and sends nothing."""
    from shared.clients import repositories
    from shared.storage import ConnectedUser

    repos = repositories()
    rows = [ConnectedUser(tenantId="t-limit", userId=f"u{n}", email=f"u{n}@x.example", secretName="rt")
            for n in range(101)]
    with pytest.raises(ValueError, match="at most 100"):
        repos.store.insert_many(rows)
    with pytest.raises(ValueError, match="at most 100"):
        repos.store.transact([("insert", row) for row in rows])
    assert list(repos.store.query(ConnectedUser, "PartitionKey eq @t", {"t": "t-limit"})) == []
    repos.store.insert_many(rows[:100])
    assert len(list(repos.store.query(ConnectedUser, "PartitionKey eq @t", {"t": "t-limit"}))) == 100


def test_rows_unchanged_since_read_are_deleted_together_and_a_changed_one_stays(app_env, azurite):
    """The cleanup's deletes: a transaction per partition and hundred; a row changed since it was
    read stays (in use), one already gone is skipped, the others go all the same."""
    from shared.clients import repositories
    from shared.storage import ConnectedUser

    repos = repositories()
    for tenant in ("t-del-a", "t-del-b"):
        repos.store.insert_many([ConnectedUser(tenantId=tenant, userId=f"u{n:03d}", email=f"u{n}@x.example",
                                               secretName="rt") for n in range(60)])
    read = [*repos.store.query(ConnectedUser, "PartitionKey eq @t", {"t": "t-del-a"}),
            *repos.store.query(ConnectedUser, "PartitionKey eq @t", {"t": "t-del-b"})]
    assert len(read) == 120
    assert repos.store.delete_unchanged(read[:50] + read[60:110]) == 100
    left = [*repos.store.query(ConnectedUser, "PartitionKey eq @t", {"t": "t-del-a"}),
            *repos.store.query(ConnectedUser, "PartitionKey eq @t", {"t": "t-del-b"})]
    assert sorted(r.userId for r in left) == sorted(r.userId for r in read[50:60] + read[110:])

    changed = repos.store.get(ConnectedUser, "t-del-a", left[0].row_key)
    changed.email = "changed@x.example"
    repos.store.update(changed)  # after `left` was read: its copy is stale now
    repos.store.delete(left[1])  # gone before the cleanup comes
    # (the SDK's delete answers a row already gone as deleted, so that one may count)
    assert repos.store.delete_unchanged(left) >= len(left) - 2
    rest = list(repos.store.query(ConnectedUser, "PartitionKey eq @t", {"t": "t-del-a"}))
    assert [(r.userId, r.email) for r in rest] == [(left[0].userId, "changed@x.example")]
    assert list(repos.store.query(ConnectedUser, "PartitionKey eq @t", {"t": "t-del-b"})) == []
