"""The changes feed through the HTTP API: cursors, pages, retention and the 410 rule, what is
recorded where it happens, and who reads what (tests/integration/test_sync.py follows Outlook)."""

from __future__ import annotations

from datetime import timedelta

import requests

from tests.support.consent_pages import admin_consent, browse, microsoft_browser
from tests.support.days import at

FABRIKAM = "2b9e56f8-499e-4153-949c-a7aeb479f07e"
ANN = "ann@fabrikam.example"


def book(api, key, hour):
    body = {"organizer": ANN, "attendees": ["guest@fabrikam.example"], "start": at(1, f"{hour:02d}:00:00-05:00"),
            "end": at(1, f"{hour:02d}:30:00-05:00"), "timeZone": "America/New_York", "subject": f"Feed {key}"}
    answer = api.post(f"/tenants/{FABRIKAM}/bookings", json=body, headers={"Idempotency-Key": key})
    assert answer.status_code == 201, answer.text
    return answer.json()


def read(api, after=None, limit=None, tenant=FABRIKAM):
    params = {k: v for k, v in (("after", after), ("limit", limit)) if v is not None}
    return api.get(f"/tenants/{tenant}/changes", params=params)


def test_pages_follow_next_and_a_later_read_gives_only_newer_changes(api, sandbox):
    admin_consent(api, sandbox, FABRIKAM, ANN)
    first = book(api, "f-1", 9)
    second = book(api, "f-2", 10)
    assert api.delete(f"/tenants/{FABRIKAM}/bookings/{first['bookingId']}").status_code == 200
    assert api.delete(f"/tenants/{FABRIKAM}/bookings/{first['bookingId']}").status_code == 200  # idempotent: once
    api.get(f"/tenants/{FABRIKAM}/bookings/{second['bookingId']}")  # reading records nothing

    seen, cursor = [], None
    for _ in range(10):
        page = read(api, cursor, limit=2).json()
        assert len(page["changes"]) <= 2
        seen += page["changes"]
        cursor = page["next"]
        if not page["changes"]:
            break
    assert [(c["type"], c["cause"]) for c in seen] == [
        ("tenant.status_changed", "consent_completed"), ("booking.created", "api"), ("booking.created", "api"),
        ("booking.cancelled", "api")]
    assert seen[0]["status"] == "enabled" and seen[0]["organizationId"] == "org-42"
    cancelled = seen[3]
    assert cancelled["bookingId"] == first["bookingId"]
    assert cancelled["booking"]["status"] == "cancelled" and cancelled["booking"]["version"] == 2
    assert len({c["id"] for c in seen}) == 4 and all(c["id"].startswith("chg_") for c in seen)
    # Nothing new: an empty page, and the cursor stays good for what comes later.
    quiet = read(api, cursor).json()
    assert quiet["changes"] == [] and quiet["next"]
    third = book(api, "f-3", 11)
    later = read(api, quiet["next"]).json()["changes"]
    assert [(c["type"], c["bookingId"]) for c in later] == [("booking.created", third["bookingId"])]


def test_bad_cursors_and_limits_are_400(api, sandbox):
    admin_consent(api, sandbox, FABRIKAM, ANN)
    for after, limit, target in (("%%%", None, "after"), ("eyJ0IjoieCIsIm4iOjF9", None, "after"),
                                 (None, "0", "limit"), (None, "501", "limit"), (None, "x", "limit")):
        answer = read(api, after, limit)
        assert answer.status_code == 400, (after, limit)
        assert answer.json()["error"]["target"] == target
    # Another tenant's cursor is not this tenant's.
    other = "520e6fd5-c619-4c0f-b927-0af414daa899"
    api.put(f"/tenants/{other}", json={"mode": "domain"})
    foreign = read(api).json()["next"]
    assert read(api, foreign, tenant=other).status_code == 400


def test_old_changes_are_deleted_after_30_days_and_only_an_unseen_gap_is_410(api, sandbox):
    admin_consent(api, sandbox, FABRIKAM, ANN)
    start = read(api).json()["next"]  # a reader that saw the consent change
    book(api, "old-1", 9)
    quiet_reader = read(api).json()["next"]  # a reader that saw everything
    from shared.clients import repositories
    from shared.storage import utcnow
    from sync.changes import ChangeLog

    deleted = ChangeLog(repositories()).prune(utcnow() + timedelta(days=31))
    assert deleted == 2
    expired = read(api, start)
    assert expired.status_code == 410 and expired.json()["error"]["code"] == "cursor_expired"
    still = read(api, quiet_reader)  # nothing it never saw was deleted
    assert still.status_code == 200 and still.json()["changes"] == []
    assert read(api).json()["changes"] == []  # from the oldest kept
    newer = book(api, "new-1", 10)
    assert [c["bookingId"] for c in read(api, quiet_reader).json()["changes"]] == [newer["bookingId"]]


def test_a_member_refused_is_recorded_once(api, sandbox):
    admin_consent(api, sandbox, FABRIKAM, ANN, mode="delegated")
    from shared.clients import member_tokens

    members = member_tokens()
    user = members.connect(FABRIKAM, "oid-kim", "kim@fabrikam.example", "rt-kim")
    members.mark_needs_reconnect(user)
    members.mark_needs_reconnect(user)  # a second refusal changes nothing
    changes = [c for c in read(api).json()["changes"] if c["type"] == "member.needs_reconnect"]
    assert changes == [changes[0]] and changes[0] | {"id": "", "at": ""} == {
        "id": "", "at": "", "type": "member.needs_reconnect", "cause": "token_refused", "tenantId": FABRIKAM,
        "organizationId": "org-42", "userId": "oid-kim", "email": "kim@fabrikam.example"}


def test_a_moved_tenants_new_owner_reads_only_its_own_changes(api, sandbox):
    chosen = api.acting_for("org-chosen")
    chosen.put(f"/tenants/{FABRIKAM}", json={"mode": "domain"})
    link = chosen.post(f"/tenants/{FABRIKAM}/consent",
                       json={"kind": "admin", "returnUrl": "http://127.0.0.1:3000/a"}).json()
    admin_consent(api, sandbox, FABRIKAM, ANN)
    book(api, "before-move", 9)
    assert browse(chosen, microsoft_browser(sandbox), link["redirectUrl"], ANN).status_code == 200
    mine = read(chosen).json()["changes"]
    assert [(c["type"], c["cause"], c["organizationId"]) for c in mine] == [
        ("tenant.status_changed", "consent_completed", "org-chosen")]
    assert read(api).status_code == 404


def test_notifications_that_cannot_be_queued_are_503(app_env, azurite, host, monkeypatch):
    """The queue unreachable (its endpoint a closed port), the table fine: Graph must deliver again."""
    from tests.conftest import clear_caches
    from tools.procs import free_port

    broken = azurite.connection_string.replace(
        azurite.connection_string.split("QueueEndpoint=")[1].split(";")[0],
        f"http://127.0.0.1:{free_port()}/devstoreaccount1")
    monkeypatch.setenv("SERVICE_STORAGE", broken)
    clear_caches()
    from shared.clients import repositories
    from sync.subscriptions import Subscription, state_hash

    tenant, key = FABRIKAM, "0123456789abcdef"
    client_state = f"{tenant}.{key}.{'s' * 43}"
    repositories().store.insert(Subscription(tenantId=tenant, mailboxKey=key, address=ANN, path=ANN, mode="domain",
                                             clientStateHash=state_hash(client_state), status="active",
                                             subscriptionId="sub-1"))
    item = {"subscriptionId": "sub-1", "clientState": client_state, "changeType": "updated",
            "resourceData": {"id": "AAMk-event"}}
    answer = requests.post(f"{host.base_url}/api/graph/notifications", json={"value": [item]}, timeout=60)
    assert answer.status_code == 503, answer.text
    assert answer.headers.get("Retry-After")
    dropped = requests.post(f"{host.base_url}/api/graph/notifications",
                            json={"value": [item | {"clientState": client_state[:-1] + "t"}]}, timeout=60)
    assert dropped.status_code == 202  # a forged item is dropped before any queueing


def tenant_change(status: str):
    from sync.changes import Decision

    return lambda: Decision("tenant.status_changed", "consent_completed", "org-42", {"status": status})


def test_a_burst_of_changes_reads_the_counter_once_and_a_stale_memory_costs_no_number(app_env, monkeypatch):
    """Changes in quick succession on one instance take the counter as they last wrote it (one
    read, then only transactions); when something else wrote it meanwhile, the transaction fails
    on its ETag and the counter is read again: the feed stays in order, nothing lost or doubled."""
    from azure.core.pipeline.transport import RequestsTransport

    from shared.clients import repositories
    from shared.settings import get_settings
    from shared.storage import Repositories, TableStore
    from sync.changes import COUNTER_KEY, ChangeCounter, ChangeLog

    repos = repositories()
    sent: list[tuple[str, str]] = []
    original = RequestsTransport.send

    def send(self, request, **kwargs):
        answer = original(self, request, **kwargs)
        path = request.url.split("?")[0]
        if path.endswith("$batch") or "!changes" in path or "%21changes" in path:
            sent.append((request.method, "batch" if path.endswith("$batch") else "counter"))
        return answer

    monkeypatch.setattr(RequestsTransport, "send", send)
    # Longer than a busy machine could take between these steps (the memory lasts 1 s in service).
    monkeypatch.setattr("sync.changes.COUNTER_MEMORY", 60.0)
    log = ChangeLog(repos)
    for n in range(3):
        log.record(FABRIKAM, tenant_change(f"s{n}"))
    assert sent == [("GET", "counter"), ("POST", "batch"), ("POST", "batch"), ("POST", "batch")]

    # Another instance (a table store of its own) records a change: this one's copy is now stale.
    settings = get_settings()
    ChangeLog(Repositories(TableStore(settings.storage, prefix=settings.table_prefix))).record(
        FABRIKAM, tenant_change("other"))
    sent.clear()
    log.record(FABRIKAM, tenant_change("after"))
    assert sent == [("POST", "batch"), ("GET", "counter"), ("POST", "batch")]  # refused on the ETag, read, done
    assert repos.store.get(ChangeCounter, FABRIKAM, COUNTER_KEY).last == 5
    feed = log.page(FABRIKAM, "org-42", None, 10)["changes"]
    assert [c["status"] for c in feed] == ["s0", "s1", "s2", "other", "after"]
