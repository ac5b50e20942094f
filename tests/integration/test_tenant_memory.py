"""What a TableStore remembers of rows it read or wrote (issue 21), on Azurite, with two stores on
one table prefix standing for two instances of the service.

- A tenant row may be acted on by the availability and booking routes for at most
  TENANT_MAX_AGE after it was read: a change made on another instance (a disconnect, a revoked
  consent, a new owner) takes effect there within that bound; one made on the same instance at once.
- A free lease is taken with the ETag this instance last saw, without reading it: if another
  instance wrote it since, the write fails and nothing is taken, so the lease stays exclusive.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from shared.errors import TenantNotEnabled, TenantNotFound
from shared.leases import try_take
from shared.storage import TENANT_MAX_AGE, Lease, Repositories, TableStore, Tenant, encode_key, utcnow

TENANT = "c0c0c0c0-0000-4000-8000-00000000aa01"
OWNER, OTHER = "org-owner", "org-other"


@pytest.fixture
def instances(table_store):
    """Two instances on the same tables (each its own TableStore, as each process has)."""
    here = Repositories(table_store)
    there = Repositories(TableStore(table_store._connection, prefix=table_store._prefix))
    there.store.insert(Tenant(tenantId=TENANT, organizationId=OWNER, organizationName="Owner", mode="domain",
                              status="enabled", createdAt=utcnow()))
    return here, there


def status_seen(repos: Repositories) -> str:
    try:
        tenant = repos.require_tenant(TENANT, organization_id=OWNER, max_age=TENANT_MAX_AGE)
        tenant.require_enabled()
    except TenantNotEnabled:
        return "not enabled"
    return tenant.status


def test_a_disconnect_elsewhere_takes_effect_within_the_bound(instances):
    here, there = instances
    assert status_seen(here) == "enabled"  # read now, remembered from before this read
    row = there.tenant(TENANT)
    row.status = "disabled"
    there.store.update(row)
    changed = time.monotonic()
    while status_seen(here) == "enabled":
        # Believed only while the remembered read is younger than the bound.
        assert time.monotonic() - changed < TENANT_MAX_AGE, "a stale tenant row outlived TENANT_MAX_AGE"
        time.sleep(0.02)
    assert status_seen(here) == "not enabled"
    # Routes that do not opt in never use a remembered row.
    assert here.require_tenant(TENANT, organization_id=OWNER).status == "disabled"


def test_a_change_on_the_same_instance_takes_effect_at_once(instances):
    here, _ = instances
    assert status_seen(here) == "enabled"
    row = here.tenant(TENANT)
    row.status = "consent_revoked"
    here.store.update(row)
    assert status_seen(here) == "not enabled"  # no wait: the write replaced what was remembered
    here.store.delete(here.tenant(TENANT), if_unchanged=False)
    with pytest.raises(TenantNotFound):
        here.require_tenant(TENANT, organization_id=OWNER, max_age=TENANT_MAX_AGE)


def test_a_new_owner_elsewhere_ends_the_old_owners_view_within_the_bound(instances):
    here, there = instances
    assert here.require_tenant(TENANT, organization_id=OWNER, max_age=TENANT_MAX_AGE).organizationId == OWNER
    row = there.tenant(TENANT)
    row.organizationId = OTHER
    there.store.update(row)
    changed = time.monotonic()
    while seen_by_owner(here):
        assert time.monotonic() - changed < TENANT_MAX_AGE, "a stale owner outlived TENANT_MAX_AGE"
        time.sleep(0.02)
    with pytest.raises(TenantNotFound):
        here.require_tenant(TENANT, organization_id=OWNER, max_age=TENANT_MAX_AGE)


def seen_by_owner(repos: Repositories) -> bool:
    try:
        repos.require_tenant(TENANT, organization_id=OWNER, max_age=TENANT_MAX_AGE)
    except TenantNotFound:
        return False
    return True


def test_a_lease_taken_with_a_remembered_etag_stays_exclusive(instances):
    here, there = instances
    ttl = timedelta(seconds=30)
    mine = try_take(here, TENANT, "organizer:a@x.example", "here", ttl)
    assert mine is not None
    mine.release()  # here remembers the released row and its ETag
    theirs = try_take(there, TENANT, "organizer:a@x.example", "there", ttl)
    assert theirs is not None  # there read it (it never saw it) and took it
    # Here's copy says free, but its ETag is stale: the write fails, nothing is taken.
    assert try_take(here, TENANT, "organizer:a@x.example", "here", ttl) is None
    assert try_take(here, TENANT, "organizer:a@x.example", "here", ttl) is None  # now read: held
    theirs.release()
    again = try_take(here, TENANT, "organizer:a@x.example", "here", ttl)
    assert again is not None and again.row.holder == "here"
    stored = there.store.get(Lease, TENANT, encode_key("organizer:a@x.example"))
    assert stored.holder == "here"
    # There's own copy still says free (its release), so its next take fails and reads.
    assert try_take(there, TENANT, "organizer:a@x.example", "there", ttl) is None


def test_a_free_lease_this_instance_released_is_taken_without_a_read(instances, monkeypatch):
    here, _ = instances
    ttl = timedelta(seconds=30)
    try_take(here, TENANT, "organizer:b@x.example", "first", ttl).release()
    reads = []
    original = TableStore.get
    monkeypatch.setattr(TableStore, "get", lambda self, *a, **k: reads.append(a) or original(self, *a, **k))
    taken = try_take(here, TENANT, "organizer:b@x.example", "second", ttl)
    assert taken is not None and reads == []
