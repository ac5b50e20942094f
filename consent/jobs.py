"""Background work: keep delegated members' refresh tokens alive, and check domain tenants' consent.

The timer only enqueues (so one run stays short at any tenant count) and cleans up expired rows;
each queue message is one job, run by the queue function:

- `refresh_member`: redeem the member's refresh token through MSAL, write the new one to Key Vault
  as a new version of the same secret, move the member's row to that version with an ETag check
  (a re-consent meanwhile wins: our version is disabled instead), then disable the previous
  version. `invalid_grant` marks the member `needs_reconnect`.
- `check_tenant`: a new app-only token from the identity platform (not MSAL's cache) whose `roles`
  must hold the calendar permission. The tenant's doing (consent withdrawn, app deleted: AADSTS
  700016, 7000229, 65001, or the role gone) makes it `consent_revoked`; our own credential's fault
  (7000215, 7000222, 700027) changes no tenant and is logged as an operator alert.

Jobs are idempotent: a member refreshed since the job was enqueued is skipped, and a tenant check
changes nothing twice. Passing failures raise, so the queue retries them and, after
`maxDequeueCount`, moves them to the poison queue; nothing is dropped silently.

Pacing: Key Vault takes about 300 secret writes per 10 seconds per vault, and each refresh writes
one. The timer hides the i-th member job for i / REFRESH_JOBS_PER_SECOND seconds, so however many
instances run the queue function, the writes arrive at most at that rate.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from shared.errors import ConcurrencyConflict, SecretNotFound, SecretUnavailable
from shared.members import REFRESH_EVERY, MemberTokens
from shared.queues import BATCH, JobQueue
from shared.storage import ConnectedUser, Repositories, Tenant, utcnow
from shared.tokens import CALENDAR_ROLES, IdentityError, TokenProvider, token_claims

log = logging.getLogger(__name__)

REFRESH_MEMBER = "refresh_member"
CHECK_TENANT = "check_tenant"
PAGE = 200
CONSENT_OUTCOME_KEPT = timedelta(days=1)
SENDERS = 16


def _iso(value: datetime) -> str:
    return value.isoformat()


class Timer:
    """What one timer run does: enqueue the due jobs, delete what has expired."""

    def __init__(self, repos: Repositories, queue: JobQueue, *, jobs_per_second: int,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.repos = repos
        self.queue = queue
        self.jobs_per_second = jobs_per_second
        self.clock = clock

    def run(self) -> dict[str, int]:
        now = self.clock()
        members = self._enqueue_members(now)
        tenants = self._enqueue_tenants(now)
        cleaned = self._clean(now)
        log.info("timer: %d member refresh job(s), %d tenant check(s) enqueued; %d expired row(s) deleted",
                 members, tenants, cleaned)
        return {"members": members, "tenants": tenants, "cleaned": cleaned}

    def _send_all(self, messages: list[tuple[dict[str, Any], int]]) -> None:
        if not messages:
            return
        with ThreadPoolExecutor(max_workers=min(SENDERS, len(messages)), thread_name_prefix="enqueue") as pool:
            list(pool.map(lambda item: self.queue.send(item[0], delay=item[1]), messages))

    def _enqueue_members(self, now: datetime) -> int:
        count, token = 0, None
        while True:
            users, token = self.repos.users_due_page(now, page_size=PAGE, continuation=token)
            batch = []
            for user in users:
                # Staggered: the i-th job becomes visible after i / rate seconds (Key Vault's write limit).
                batch.append(({"kind": REFRESH_MEMBER, "tenantId": user.tenantId, "userId": user.userId,
                               "enqueuedAt": _iso(now)}, count // self.jobs_per_second))
                count += 1
            self._send_all(batch)
            if token is None:
                return count

    def _enqueue_tenants(self, now: datetime) -> int:
        count, token = 0, None
        while True:
            tenants, token = self.repos.tenants_page(status="enabled", mode="domain", page_size=PAGE,
                                                     continuation=token)
            self._send_all([({"kind": CHECK_TENANT, "tenantId": t.tenantId, "enqueuedAt": _iso(now)}, 0)
                            for t in tenants])
            count += len(tenants)
            if token is None:
                return count

    def _clean(self, now: datetime) -> int:
        # A request's outcome stays readable (status route) for a day after its link expired.
        expired = [*self.repos.expired_consent_requests(now - CONSENT_OUTCOME_KEPT),
                   *self.repos.expired_consent_states(now),
                   *self.repos.expired_idempotency_records(now)]
        for record in expired:
            # Changed since read (in use): the next run sees it again.
            with contextlib.suppress(ConcurrencyConflict):
                self.repos.store.delete(record)
        from sync.changes import ChangeLog

        return len(expired) + ChangeLog(self.repos, clock=self.clock).prune(now)


class Jobs:
    """One queue message, one job."""

    def __init__(self, repos: Repositories, members: MemberTokens, tokens: TokenProvider,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.repos = repos
        self.members = members
        self.tokens = tokens
        self.clock = clock

    def run(self, body: bytes | str) -> str:
        try:
            message = json.loads(body)
            kind = message["kind"]
        except (ValueError, KeyError, TypeError):
            log.error("a job message is not one of ours; dropping it to the poison queue")
            raise ValueError("malformed job message") from None
        if kind == BATCH:
            return self.run_batch(message.get("jobs"))
        return self.dispatch(message)

    def run_batch(self, jobs: Any) -> str:
        """Each job of a `batch` message once (identical ones, such as one notification
        delivered three times, run once). A job that fails is queued again on its own, so the
        queue's retries and poison queue apply to it alone; if that fails, the whole message is
        retried (every job is idempotent)."""
        if not isinstance(jobs, list) or not all(isinstance(job, dict) for job in jobs):
            log.error("a batch message is not one of ours; dropping it to the poison queue")
            raise ValueError("malformed batch message")
        unique = {json.dumps(job, sort_keys=True): job for job in jobs}
        outcomes: dict[str, int] = {}
        for job in unique.values():
            try:
                outcome = self.dispatch(job)
            except Exception as error:
                from shared.clients import job_queue

                log.warning("a job of a batch failed (%s); queued again on its own", type(error).__name__)
                job_queue().send(job)
                outcome = "failed: queued again"
            outcome = outcome.split(":")[0]
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        return f"batch of {len(jobs)}: " + ", ".join(f"{n} {what}" for what, n in sorted(outcomes.items()))

    def dispatch(self, message: dict[str, Any]) -> str:
        try:
            kind = message["kind"]
        except KeyError:
            raise ValueError("malformed job message") from None
        if kind == REFRESH_MEMBER:
            return self.refresh_member(message["tenantId"], message["userId"],
                                       datetime.fromisoformat(message["enqueuedAt"]))
        if kind == CHECK_TENANT:
            return self.check_tenant(message["tenantId"])
        if isinstance(kind, str) and kind.startswith("sync."):
            from sync import jobs as sync_jobs

            if kind in sync_jobs.KINDS:
                return sync_jobs.run(message)
        raise ValueError(f"unknown job kind {kind!r}")

    # -- a member's refresh token -------------------------------------------------------------

    def refresh_member(self, tenant_id: str, user_id: str, enqueued_at: datetime) -> str:
        user = self.repos.user(tenant_id, user_id)
        if user is None or user.status != "connected" or not user.secretName:
            return "skipped: not connected"
        if user.lastRefreshAt is not None and user.lastRefreshAt >= enqueued_at:
            return "skipped: already refreshed"
        try:
            current = self.members.refresh_token(user)
        except (SecretNotFound, SecretUnavailable):
            self.members.mark_needs_reconnect(user)
            return "needs_reconnect: token missing"
        try:
            result = self.tokens.redeem_refresh_token(tenant_id, current)
        except IdentityError as error:
            if error.error == "invalid_grant":
                self.members.mark_needs_reconnect(user)
                log.info("member's refresh token refused (%s): needs reconnect", error.aadsts)
                return "needs_reconnect"
            if error.is_credential_error:
                log.critical("OPERATOR ALERT: the identity platform refuses the app's own credential (%s); "
                             "rotate it (README, 'Rotating the app credential'). No member was changed.",
                             error.aadsts)
            raise
        new_token = result.get("refresh_token")
        if not new_token:
            raise RuntimeError("the identity platform answered without a refresh token")
        name, previous = user.secretName, user.secretVersion
        version = self.members.secrets.set(name, new_token, content_type="application/vnd.tenkc.refresh-token",
                                           tags={"kind": "refresh_token"})
        now = self.clock()

        def move(row: ConnectedUser) -> ConnectedUser | None:
            if row.secretName != name or row.status != "connected":
                return None  # reconnected or disconnected meanwhile: that newer state wins
            row.secretVersion, row.lastRefreshAt, row.refreshDueAt = version, now, now + REFRESH_EVERY
            return row

        moved = self.repos.store.modify(ConnectedUser, tenant_id, user.row_key, move)
        if moved is None or moved.secretVersion != version:
            self.members.secrets.disable(name, version)  # ours lost to a newer connection
            return "skipped: reconnected meanwhile"
        if previous and previous != version:
            self.members.secrets.disable(name, previous)
        return "refreshed"

    # -- a domain tenant's consent --------------------------------------------------------------

    def check_tenant(self, tenant_id: str) -> str:
        tenant = self.repos.tenant(tenant_id)
        if tenant is None or tenant.status != "enabled" or tenant.mode != "domain":
            return "skipped: not an enabled domain tenant"
        try:
            result = self.tokens.app_token(tenant_id, fresh=True)
        except IdentityError as error:
            if error.is_credential_error:
                log.critical("OPERATOR ALERT: the identity platform refuses the app's own credential (%s); "
                             "rotate it (README, 'Rotating the app credential'). No tenant was changed.",
                             error.aadsts)
                return "alert: app credential"
            if error.is_consent_error:
                self._revoked(tenant_id, error.aadsts or error.error)
                return "consent_revoked"
            raise
        roles = set(token_claims(result.get("access_token", "")).get("roles") or ())
        if not CALENDAR_ROLES.issubset(roles):
            self._revoked(tenant_id, "calendar role missing")
            return "consent_revoked"
        return "healthy"

    def _revoked(self, tenant_id: str, why: str) -> None:
        def mark(tenant: Tenant) -> Tenant | None:
            if tenant.status != "enabled":
                return None
            tenant.status, tenant.updatedAt = "consent_revoked", self.clock()
            return tenant

        changed = self.repos.store.modify(Tenant, tenant_id, "tenant", mark)
        log.warning("tenant's consent is gone (%s): marked consent_revoked", why)
        if changed is not None and changed.status == "consent_revoked":
            from sync.changes import record_tenant_status
            from sync.jobs import tenant_closed

            record_tenant_status(self.repos, changed, "consent_revoked")
            tenant_closed(tenant_id)
