"""Background work on Azurite and the sandbox: the timer's jobs, member refresh, consent health,
retries and the poison queue, through the real queue and (for delivery) the local host."""

from __future__ import annotations

import json
import logging
import time
import uuid
from datetime import timedelta

import pytest

from shared.storage import ConnectedUser, ConsentRequest, Tenant, utcnow
from tests.conftest import SANDBOX_SEED, clear_caches
from tests.support.consent_pages import admin_consent, connect_member

DOMAIN_A = "e1e2e3e4-0000-4000-8000-0000000000a1"
DOMAIN_B = "e1e2e3e4-0000-4000-8000-0000000000a2"
DELEGATED = "e1e2e3e4-0000-4000-8000-0000000000a3"
SEED = json.loads(SANDBOX_SEED.read_text())


def person(uid: int, mail: str, admin: bool = False):
    return {"id": f"e1e2e3e4-0000-4000-8000-{uid:012d}", "mail": mail, "displayName": mail.split("@")[0],
            "timeZone": "UTC", "isAdmin": admin}


TENANTS = [
    {"tenantId": DOMAIN_A, "domain": "a.example", "users": [person(1, "admin@a.example", True)]},
    {"tenantId": DOMAIN_B, "domain": "b.example", "users": [person(2, "admin@b.example", True)]},
    {"tenantId": DELEGATED, "domain": "d.example",
     "users": [person(3, "boss@d.example", True), person(4, "ann@d.example"), person(5, "bob@d.example")]},
]


@pytest.fixture
def background(api, sandbox, monkeypatch):
    """A queue of this test's own, the sandbox's tenants, and the services rebuilt on them."""
    monkeypatch.setenv("JOBS_QUEUE_NAME", "jobs-" + uuid.uuid4().hex[:12])
    monkeypatch.setenv("REFRESH_JOBS_PER_SECOND", "28")
    clear_caches()
    sandbox.reset({"tenants": TENANTS})
    return api


class Timer:
    """The token-refresh timer as the host runs it, then its sweeps' page jobs (as the queue
    function would run them); `run()` gives the counts of the jobs the pages queued, and
    `queued` those jobs (not run)."""

    def __init__(self, queue) -> None:
        self.queue, self.queued = queue, []

    def run(self) -> dict[str, int]:
        from background.jobs import TOKEN_REFRESH_TIMER, background

        background().tick(TOKEN_REFRESH_TIMER)
        self.queued, self.pages = [], []
        for _ in range(20):
            messages = list(self.queue.client.receive_messages(max_messages=32, visibility_timeout=60))
            if not messages:
                break
            for message in messages:
                body = json.loads(message.content)
                if body["kind"] == "sweep.page":
                    self.pages.append(background().run(message.content))
                else:
                    self.queued += body["jobs"] if body["kind"] == "batch" else [body]
                self.queue.client.delete_message(message)
        kinds = [job["kind"] for job in self.queued]
        return {"members": kinds.count("refresh_member"), "tenants": kinds.count("check_tenant")}


def refresh_sweeps() -> list[str]:
    """The sweeps of the token-refresh timer, sorted (background/jobs.py SWEEPS)."""
    from background.jobs import SWEEPS, TOKEN_REFRESH_TIMER

    return sorted(name for name, sweep in SWEEPS.items() if sweep.timer == TOKEN_REFRESH_TIMER)


def services():
    from background.jobs import background
    from shared.clients import job_queue, repositories

    return Timer(job_queue()), background(), job_queue(), repositories()


def visible_messages(queue):
    return [json.loads(m.content) for m in queue.client.peek_messages(max_messages=32)]


def drain(queue):
    return [json.loads(m.content) for m in queue.client.receive_messages(max_messages=32)]


def test_a_run_enqueues_exactly_the_jobs_due_and_cleans_up(background, sandbox, caplog):
    _, _, _, repos = services()
    now = utcnow()
    for tenant_id, status, mode in [(DOMAIN_A, "enabled", "domain"), (DOMAIN_B, "pending_consent", "domain"),
                                    (DELEGATED, "enabled", "delegated")]:
        repos.store.insert(Tenant(tenantId=tenant_id, organizationId="org", organizationName="Org", mode=mode,
                                  status=status, createdAt=now, updatedAt=now))
    for user_id, status, due in [("due-1", "connected", -1), ("due-2", "connected", -60), ("later", "connected", 60),
                                 ("gone", "needs_reconnect", -1)]:
        repos.store.insert(ConnectedUser(tenantId=DELEGATED, userId=user_id, email=f"{user_id}@d.example",
                                         status=status, secretName="rt-x", refreshDueAt=now + timedelta(minutes=due)))
    # A request's outcome stays readable for a day after its link expired; then it is deleted.
    repos.store.insert(ConsentRequest(requestId="old", tenantId=DOMAIN_A, kind="admin", returnUrl="https://x",
                                      expiresAt=now - timedelta(days=1, minutes=1)))
    repos.store.insert(ConsentRequest(requestId="recent", tenantId=DOMAIN_A, kind="admin", returnUrl="https://x",
                                      expiresAt=now - timedelta(minutes=1)))
    repos.store.insert(ConsentRequest(requestId="fresh", tenantId=DOMAIN_A, kind="admin", returnUrl="https://x",
                                      expiresAt=now + timedelta(minutes=10)))
    timer, _, _, _ = services()
    with caplog.at_level(logging.INFO):
        counts = timer.run()
    assert counts == {"members": 2, "tenants": 1}
    # For the operations workbook: every status, zero included.
    lines = sorted(r.getMessage() for r in caplog.records if r.getMessage().startswith("tenants in status "))
    assert lines == ["tenants in status consent_revoked: 0", "tenants in status disabled: 0",
                     "tenants in status enabled: 2", "tenants in status pending_consent: 1"]
    assert sorted(page.split(":")[0] for page in timer.pages) == [f"{name} page 1" for name in refresh_sweeps()]
    assert {"members", "tenants", "cleanup", "revoked", "tenant-counts"} <= set(refresh_sweeps())
    assert "cleanup page 1: 1 expired row(s) deleted (last page)" in timer.pages
    jobs = timer.queued
    assert sorted((j["kind"], j.get("userId") or j["tenantId"]) for j in jobs) == [
        ("check_tenant", DOMAIN_A), ("refresh_member", "due-1"), ("refresh_member", "due-2")]
    assert repos.consent_request("old") is None and repos.consent_request("fresh") is not None
    assert repos.consent_request("recent") is not None


def test_jobs_are_staggered_to_keep_under_key_vaults_write_rate(background, monkeypatch):
    monkeypatch.setenv("REFRESH_JOBS_PER_SECOND", "1")
    clear_caches()
    from background.jobs import TOKEN_REFRESH_TIMER

    _, service, queue, repos = services()
    now = utcnow()
    for index in range(3):
        repos.store.insert(ConnectedUser(tenantId=DELEGATED, userId=f"u{index}", email=f"u{index}@d.example",
                                         secretName="rt-x", refreshDueAt=now - timedelta(minutes=1)))
    began = time.monotonic()
    service.tick(TOKEN_REFRESH_TIMER)
    pages = [m for m in queue.client.receive_messages(max_messages=32, visibility_timeout=60)]
    members = next(m for m in pages if json.loads(m.content)["sweep"] == "members")
    assert service.run(members.content) == "members page 1: 3 refresh job(s) (last page)"
    paged = time.monotonic()
    for message in pages:
        queue.client.delete_message(message)
    visible = len(visible_messages(queue))
    elapsed = time.monotonic() - began
    # Hidden until 0, 1 and 2 seconds after the run started (whole seconds, rounded up from when
    # the page ran): right after it only the first is visible (unless this machine took a second
    # or more to get here, when the second may be too).
    assert visible == 1 if elapsed < 0.9 else 1 <= visible <= 2
    time.sleep(max(0.0, 2.3 - (time.monotonic() - paged)))
    assert len(visible_messages(queue)) == 3


def test_the_jobs_of_one_second_travel_in_one_message(background, monkeypatch):
    """At 25 jobs a second, 60 due members are at most 4 queue messages (hidden 0, 1, 2 and 3 s
    after the run began; how the 60 split between them depends on how late the page ran), not 60;
    no message holds more than a second's 25, and every member is in exactly one of them."""
    monkeypatch.setenv("REFRESH_JOBS_PER_SECOND", "25")
    clear_caches()
    from background.jobs import TOKEN_REFRESH_TIMER

    _, service, queue, repos = services()
    now = utcnow()
    repos.store.insert_many([ConnectedUser(tenantId=DELEGATED, userId=f"u{index:02d}", email=f"u{index}@d.example",
                                           secretName="rt-x", refreshDueAt=now - timedelta(minutes=1))
                             for index in range(60)])
    service.tick(TOKEN_REFRESH_TIMER)
    pages = [m for m in queue.client.receive_messages(max_messages=32, visibility_timeout=60)]
    members = next(m for m in pages if json.loads(m.content)["sweep"] == "members")
    assert service.run(members.content) == "members page 1: 60 refresh job(s) (last page)"
    for message in pages:
        queue.client.delete_message(message)
    paged = time.monotonic()
    time.sleep(max(0.0, 3.5 - (time.monotonic() - paged)))
    bodies = [json.loads(m.content) for m in queue.client.receive_messages(max_messages=32, visibility_timeout=60)]
    sizes = sorted(len(body["jobs"]) if body["kind"] == "batch" else 1 for body in bodies)
    assert len(sizes) <= 4 and max(sizes) == 25 and sum(sizes) == 60, sizes
    jobs = [job for body in bodies for job in (body["jobs"] if body["kind"] == "batch" else [body])]
    assert sorted(job["userId"] for job in jobs) == [f"u{index:02d}" for index in range(60)]
    assert {job["kind"] for job in jobs} == {"refresh_member"}


def test_a_refresh_stores_a_new_version_and_disables_the_old(background, sandbox):
    admin_consent(background, sandbox, DELEGATED, "boss@d.example", mode="delegated")
    connect_member(background, sandbox, DELEGATED, "ann@d.example")
    _, jobs, _, repos = services()
    from shared.clients import secret_store
    from shared.errors import SecretUnavailable

    before = repos.member(DELEGATED, "ann@d.example")
    outcome = jobs.run(json.dumps({"kind": "refresh_member", "tenantId": DELEGATED, "userId": before.userId,
                                   "enqueuedAt": utcnow().isoformat()}))
    assert outcome == "refreshed"
    after = repos.user(DELEGATED, before.userId)
    assert after.secretName == before.secretName and after.secretVersion != before.secretVersion
    assert after.lastRefreshAt > before.lastRefreshAt
    assert after.refreshDueAt - after.lastRefreshAt == timedelta(days=7)
    with pytest.raises(SecretUnavailable):
        secret_store().get(before.secretName, before.secretVersion)  # the previous version is disabled
    new_token = secret_store().get(after.secretName)
    assert new_token == secret_store().get(after.secretName, after.secretVersion)  # the row points at the latest
    from shared.clients import token_provider

    assert token_provider().redeem_refresh_token(DELEGATED, new_token)["access_token"]  # and it works


def test_a_job_delivered_twice_is_harmless(background, sandbox):
    admin_consent(background, sandbox, DELEGATED, "boss@d.example", mode="delegated")
    connect_member(background, sandbox, DELEGATED, "ann@d.example")
    _, jobs, _, repos = services()
    user = repos.member(DELEGATED, "ann@d.example")
    message = json.dumps({"kind": "refresh_member", "tenantId": DELEGATED, "userId": user.userId,
                          "enqueuedAt": utcnow().isoformat()})
    assert jobs.run(message) == "refreshed"
    version = repos.user(DELEGATED, user.userId).secretVersion
    assert jobs.run(message) == "skipped: already refreshed"
    assert repos.user(DELEGATED, user.userId).secretVersion == version
    check = json.dumps({"kind": "check_tenant", "tenantId": DELEGATED, "enqueuedAt": utcnow().isoformat()})
    assert jobs.run(check) == jobs.run(check) == "skipped: not a domain tenant to check"


def test_revoked_tenant_and_revoked_member_are_marked_the_others_refreshed(background, sandbox):
    admin_consent(background, sandbox, DOMAIN_A, "admin@a.example")
    admin_consent(background, sandbox, DOMAIN_B, "admin@b.example")
    admin_consent(background, sandbox, DELEGATED, "boss@d.example", mode="delegated")
    connect_member(background, sandbox, DELEGATED, "ann@d.example")
    connect_member(background, sandbox, DELEGATED, "bob@d.example")
    sandbox.session().post(f"{sandbox.base_url}/_sandbox/tenants/{DOMAIN_B}/revoke").raise_for_status()
    sandbox.session().post(f"{sandbox.base_url}/_sandbox/users/bob@d.example/revoke").raise_for_status()
    _, jobs, _, repos = services()
    from shared.storage import ConnectedUser as Row

    def due(row: Row) -> Row:
        row.refreshDueAt = utcnow() - timedelta(minutes=1)
        return row

    for user in repos.users(DELEGATED):
        repos.store.modify(Row, DELEGATED, user.row_key, due)
    timer, _, _, _ = services()
    assert timer.run()["members"] == 2
    outcomes = {}
    for job in timer.queued:
        outcomes[job.get("userId") or job["tenantId"]] = jobs.run(json.dumps(job))
    ann, bob = repos.member(DELEGATED, "ann@d.example"), repos.member(DELEGATED, "bob@d.example")
    assert outcomes == {DOMAIN_A: "healthy", DOMAIN_B: "consent_revoked", ann.userId: "refreshed",
                        bob.userId: "needs_reconnect"}
    assert background.get(f"/tenants/{DOMAIN_B}").json()["status"] == "consent_revoked"
    assert background.get(f"/tenants/{DOMAIN_A}").json()["status"] == "enabled"
    assert background.get(f"/tenants/{DELEGATED}/users/bob@d.example").json()["status"] == "needs_reconnect"
    assert background.get(f"/tenants/{DELEGATED}").json()["usersNeedingReconnect"] == 1


def test_an_expired_app_secret_marks_no_tenant_and_raises_the_alert(background, sandbox, caplog):
    admin_consent(background, sandbox, DOMAIN_A, "admin@a.example")
    from shared.clients import secret_store

    secret_store().set("app-client-secret", "expired-secret-value")
    try:
        clear_caches()
        _, jobs, _, _ = services()
        with caplog.at_level(logging.CRITICAL):
            outcome = jobs.run(json.dumps({"kind": "check_tenant", "tenantId": DOMAIN_A,
                                           "enqueuedAt": utcnow().isoformat()}))
        assert outcome == "alert: app credential"
        assert any("OPERATOR ALERT" in r.getMessage() and "AADSTS7000215" in r.getMessage()
                   for r in caplog.records if r.levelno == logging.CRITICAL)
        assert background.get(f"/tenants/{DOMAIN_A}").json()["status"] == "enabled"
    finally:
        secret_store().set("app-client-secret", SEED["apps"][0]["clientSecret"])


def test_the_local_host_delivers_jobs_and_a_job_that_keeps_failing_lands_in_poison(background, sandbox):
    """Through the queue function as the host runs it: base64 messages, retries, poison queue."""
    import function_app
    from devhost import LocalHost

    admin_consent(background, sandbox, DOMAIN_A, "admin@a.example")
    _, _, queue, _ = services()
    queue.send({"kind": "check_tenant", "tenantId": DOMAIN_A, "enqueuedAt": utcnow().isoformat()})
    queue.send({"kind": "no-such-job"})
    options = {"extensions": {"queues": {"batchSize": 4, "maxPollingInterval": "00:00:00.2",
                                         "visibilityTimeout": "00:00:00", "maxDequeueCount": 3}}}
    host = LocalHost(function_app.app, host_json=options, port=0).start()
    try:
        from azure.storage.queue import QueueClient

        from shared.settings import get_settings

        poison = QueueClient.from_connection_string(get_settings().storage.connection_string, f"{queue.name}-poison")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if queue.peek_count() == 0 and _count(poison) == 1:
                break
            time.sleep(0.2)
        assert queue.peek_count() == 0
        poisoned = [m.content for m in poison.peek_messages(max_messages=5)]
        assert len(poisoned) == 1
        import base64

        assert json.loads(base64.b64decode(poisoned[0])) == {"kind": "no-such-job"}
    finally:
        host.stop()


def _count(queue_client) -> int:
    try:
        return len(queue_client.peek_messages(max_messages=5))
    except Exception:
        return 0


def test_the_timer_runs_now_through_the_admin_api(background, host, sandbox):
    import requests

    admin_consent(background, sandbox, DOMAIN_A, "admin@a.example")
    answer = requests.post(f"{host.base_url}/admin/functions/token_refresh_timer", json={"input": ""}, timeout=30)
    assert answer.status_code == 202
    _, _, queue, _ = services()
    deadline = time.monotonic() + 10  # 202: the host runs the timer in the background, as Azure's does
    while len(visible_messages(queue)) < len(refresh_sweeps()) and time.monotonic() < deadline:
        time.sleep(0.1)
    # The timer queued its sweeps' first pages, and nothing else.
    assert sorted((j["kind"], j["sweep"], j["page"]) for j in visible_messages(queue)) == [
        ("sweep.page", name, 1) for name in refresh_sweeps()]


def test_a_sweep_runs_page_by_page_and_no_page_twice(background, monkeypatch):
    """Several pages, each handing on its continuation; a page job that fails is retried (the queue
    delivers it again) and completes; a page delivered twice is skipped the second time."""
    from background.jobs import TOKEN_REFRESH_TIMER
    from consent import jobs as consent_jobs

    monkeypatch.setattr(consent_jobs, "PAGE", 2)
    _, service, queue, repos = services()
    now = utcnow()
    for index in range(5):
        repos.store.insert(ConnectedUser(tenantId=DELEGATED, userId=f"p{index}", email=f"p{index}@d.example",
                                         secretName="rt-x", refreshDueAt=now - timedelta(minutes=1)))
    service.tick(TOKEN_REFRESH_TIMER)
    original, calls = repos.users_due_page, []

    def flaky(*args, **kwargs):
        calls.append(kwargs.get("continuation"))
        if len(calls) == 2:
            raise ConnectionError("storage hiccup on the second page")
        return original(*args, **kwargs)

    monkeypatch.setattr(repos, "users_due_page", flaky)
    outcomes, refreshes, seen_twice = [], [], None
    for _ in range(20):
        messages = list(queue.client.receive_messages(max_messages=32, visibility_timeout=1))
        if not messages:
            if queue.peek_count() == 0:
                break
            time.sleep(0.5)
            continue
        for message in messages:
            body = json.loads(message.content)
            if body["kind"] == "sweep.page" and body["sweep"] == "members":
                try:
                    outcomes.append(service.run(message.content))
                except ConnectionError:
                    continue  # not deleted: visible again in a second, as the queue retries it
                if body["page"] == 2 and seen_twice is None:
                    seen_twice = service.run(message.content)  # delivered again (a host died before deleting)
            elif body["kind"] == "refresh_member":
                refreshes.append(body["userId"])
            elif body["kind"] == "batch":  # the jobs visible in the same second, together
                refreshes += [job["userId"] for job in body["jobs"] if job["kind"] == "refresh_member"]
            queue.client.delete_message(message)
    assert outcomes == ["members page 1: 2 refresh job(s)", "members page 2: 2 refresh job(s)",
                        "members page 3: 1 refresh job(s) (last page)"]
    assert seen_twice == "skipped: page 2 of members already done"
    assert sorted(refreshes) == [f"p{index}" for index in range(5)]  # each member once
    assert len(calls) == 4  # pages 1, 2 (failed), 2 again, 3


def check(service, tenant_id: str) -> str:
    return service.run(json.dumps({"kind": "check_tenant", "tenantId": tenant_id, "enqueuedAt": utcnow().isoformat()}))


def consented_tenants(sandbox, *, with_our_app: bool = True) -> list[dict]:
    """The two domain tenants with our app consented; `with_our_app` False: our app registration
    deleted from the sandbox (every tenant, the home one too, then answers AADSTS700016)."""
    ours = SEED["apps"][0]["clientId"]
    grant = {ours: {"application": ["Calendars.ReadWrite"], "delegated": []}} if with_our_app else {}
    tenants = [dict(t, consented=grant) for t in TENANTS[:2]]
    apps = SEED["apps"] if with_our_app else [a for a in SEED["apps"] if a["clientId"] != ours]
    sandbox.reset({"apps": apps, "tenants": tenants})
    return tenants


def enabled_domain_tenants(repos, *ids: str) -> None:
    now = utcnow()
    for tenant_id in ids:
        repos.store.insert(Tenant(tenantId=tenant_id, organizationId="org-42", organizationName="Org", mode="domain",
                                  status="enabled", consentedAt=now, createdAt=now, updatedAt=now))


def test_our_own_app_gone_revokes_nobody_and_alerts_once(background, sandbox, caplog):
    _, service, _, repos = services()
    consented_tenants(sandbox)
    enabled_domain_tenants(repos, DOMAIN_A, DOMAIN_B)
    assert [check(service, DOMAIN_A), check(service, DOMAIN_B)] == ["healthy", "healthy"]
    consented_tenants(sandbox, with_our_app=False)  # our registration deleted (or APP_CLIENT_ID wrong)
    with caplog.at_level(logging.CRITICAL):
        outcomes = [check(service, DOMAIN_A), check(service, DOMAIN_B)]
    assert outcomes == ["alert: the app is not found in its home tenant either (AADSTS700016)"] * 2
    assert {repos.tenant(t).status for t in (DOMAIN_A, DOMAIN_B)} == {"enabled"}  # nobody revoked
    alerts = [r.getMessage() for r in caplog.records if "OPERATOR ALERT" in r.getMessage()]
    assert len(alerts) == 1 and "AADSTS700016" in alerts[0]  # one alert, naming the error
    consented_tenants(sandbox)  # the registration is back
    clear_caches()  # a minute later, or another instance: the home tenant is asked again
    _, service, _, _ = services()
    assert [check(service, DOMAIN_A), check(service, DOMAIN_B)] == ["healthy", "healthy"]
    sandbox.session().post(f"{sandbox.base_url}/_sandbox/tenants/{DOMAIN_B}/revoke").raise_for_status()
    assert [check(service, DOMAIN_A), check(service, DOMAIN_B)] == ["healthy", "consent_revoked"]
    assert (repos.tenant(DOMAIN_A).status, repos.tenant(DOMAIN_B).status) == ("enabled", "consent_revoked")


def test_a_revoked_tenant_is_checked_daily_and_enabled_when_the_consent_is_back(background, sandbox):
    from background.jobs import TOKEN_REFRESH_TIMER

    _, service, queue, repos = services()
    consented_tenants(sandbox)
    enabled_domain_tenants(repos, DOMAIN_A)
    sandbox.session().post(f"{sandbox.base_url}/_sandbox/tenants/{DOMAIN_A}/revoke").raise_for_status()
    assert check(service, DOMAIN_A) == "consent_revoked"
    drain(queue)

    def daily() -> list[str]:
        """The revoked sweep's page and the checks it queued, run."""
        done = []
        for _ in range(5):
            for message in queue.client.receive_messages(max_messages=32, visibility_timeout=30):
                body = json.loads(message.content)
                if body["kind"] == "check_tenant" or body.get("sweep") == "revoked":
                    done.append(service.run(message.content))
                queue.client.delete_message(message)
        return done

    assert service.tick(TOKEN_REFRESH_TIMER)["revoked"] == "started"
    assert daily() == ["revoked page 1: 1 revoked tenant check(s) (last page)", "still consent_revoked"]
    assert service.tick(TOKEN_REFRESH_TIMER)["revoked"] == "not due"  # once a day
    consented_tenants(sandbox)  # the admin consented again
    # A day later: MSAL keeps an identical request's HTTP 400 answer for 60 s (msal/throttled_http_client.py).
    clear_caches()
    _, service, _, repos = services()
    assert check(service, DOMAIN_A) == "consent_restored"
    assert repos.tenant(DOMAIN_A).status == "enabled"
    changes = background.get(f"/tenants/{DOMAIN_A}/changes").json()["changes"]
    assert [(c["cause"], c["status"]) for c in changes] == [("consent_revoked", "consent_revoked"),
                                                            ("consent_restored", "enabled")]
    assert check(service, DOMAIN_A) == "healthy"


def test_a_member_of_a_tenant_that_is_not_enabled_is_never_refreshed(background, sandbox):
    admin_consent(background, sandbox, DELEGATED, "boss@d.example", mode="delegated")
    connect_member(background, sandbox, DELEGATED, "ann@d.example")
    _, service, _, repos = services()
    user = repos.member(DELEGATED, "ann@d.example")

    def disabled(row: Tenant) -> Tenant:  # a disconnect that failed before the member's tokens went
        row.status = "disabled"
        return row

    repos.store.modify(Tenant, DELEGATED, "tenant", disabled)
    message = json.dumps({"kind": "refresh_member", "tenantId": DELEGATED, "userId": user.userId,
                          "enqueuedAt": utcnow().isoformat()})
    assert service.run(message) == "skipped: tenant not enabled"
    assert repos.user(DELEGATED, user.userId).secretVersion == user.secretVersion
