"""Background work of consent: keep delegated members' refresh tokens alive, check domain
tenants' consent, delete expired rows. The timer's sweeps (background/jobs.py) page through the
due members and the enabled domain tenants, a page at a time, and queue one job each:

- `refresh_member`: redeem the member's refresh token through MSAL, write the new one to Key Vault
  as a new version of the same secret, move the member's row to that version with an ETag check
  (a re-consent meanwhile wins: our version is disabled instead), then disable the previous
  version. `invalid_grant` marks the member `needs_reconnect`.
- `check_tenant`: a new app-only token from the identity platform (not MSAL's cache) whose `roles`
  must hold the calendar permission. The tenant's doing (consent withdrawn, app deleted: AADSTS
  700016, 7000229, 65001, or the role gone) makes it `consent_revoked`; our own credential's fault
  (7000215, 7000222, 700027) changes no tenant and is logged as an operator alert.

Jobs are idempotent: a member refreshed since the job was enqueued is skipped, a member of a tenant
that is not `enabled` is never refreshed, and a tenant check changes nothing twice. Passing
failures raise, so the queue retries them and, after `maxDequeueCount`, moves them to the poison
queue; nothing is dropped silently.

Pacing: Key Vault takes about 300 secret writes per 10 seconds per vault, and each refresh writes
one. The i-th member job of a run is hidden until i / REFRESH_JOBS_PER_SECOND seconds after the
run started, so however many
instances run the queue function, the writes arrive at most at that rate.
"""

from __future__ import annotations

import contextvars
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from shared.errors import SecretNotFound, SecretUnavailable
from shared.members import REFRESH_EVERY, MemberTokens
from shared.storage import ConnectedUser, Repositories, Tenant, utcnow
from shared.tokens import CALENDAR_ROLES, IdentityError, TokenProvider, token_claims

log = logging.getLogger(__name__)

REFRESH_MEMBER = "refresh_member"
CHECK_TENANT = "check_tenant"
PAGE = 200
CONSENT_OUTCOME_KEPT = timedelta(days=1)
# The errors a deleted registration or a wrong APP_CLIENT_ID also gives (learn.microsoft.com/entra/
# identity-platform/reference-error-codes): checked against the home tenant before a tenant changes.
APP_NOT_FOUND = frozenset({700016, 7000229})
HOME_CHECK_FOR = 60.0
_HOME_LOCK = threading.Lock()
_HOME_VERDICT: dict[str, Any] = {}
SENDERS = 16


def _iso(value: datetime) -> str:
    return value.isoformat()


class Jobs:
    """The consent feature's jobs: a member's refresh, a domain tenant's consent check."""

    def __init__(self, repos: Repositories, members: MemberTokens, tokens: TokenProvider,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.repos = repos
        self.members = members
        self.tokens = tokens
        self.clock = clock

    # -- a member's refresh token -------------------------------------------------------------

    def refresh_member(self, tenant_id: str, user_id: str, enqueued_at: datetime) -> str:
        user = self.repos.user(tenant_id, user_id)
        if user is None or user.status != "connected" or not user.secretName:
            return "skipped: not connected"
        tenant = self.repos.tenant(tenant_id)
        if tenant is None or tenant.status != "enabled":
            return "skipped: tenant not enabled"  # a disconnected or revoked tenant's tokens are not kept alive
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
        if tenant is None or tenant.mode != "domain" or tenant.status not in ("enabled", "consent_revoked"):
            return "skipped: not a domain tenant to check"
        revoked = tenant.status == "consent_revoked"  # the daily re-check: is the consent back?
        try:
            result = self.tokens.app_token(tenant_id, fresh=True)
        except IdentityError as error:
            if error.is_credential_error:
                log.critical("OPERATOR ALERT: the identity platform refuses the app's own credential (%s); "
                             "rotate it (README, 'Rotating the app credential'). No tenant was changed.",
                             error.aadsts)
                return "alert: app credential"
            if error.is_consent_error and revoked:
                return "still consent_revoked"
            if error.is_consent_error:
                if APP_NOT_FOUND & set(error.codes):
                    ours = self._our_fault()
                    if ours is not None:
                        return f"alert: the app is not found in its home tenant either ({ours})"
                self._revoked(tenant_id, error.aadsts or error.error)
                return "consent_revoked"
            raise
        roles = set(token_claims(result.get("access_token", "")).get("roles") or ())
        if not CALENDAR_ROLES.issubset(roles):
            if revoked:
                return "still consent_revoked"
            self._revoked(tenant_id, "calendar role missing")
            return "consent_revoked"
        if revoked:
            self._restored(tenant_id)
            return "consent_restored"
        return "healthy"

    def _our_fault(self) -> str | None:
        """AADSTS700016 and 7000229 are also what every tenant answers when our own registration is
        deleted or APP_CLIENT_ID is wrong: before a tenant is marked, the same credential asks for a
        token in the home tenant, where the app always is. The error when that fails too (ours:
        the operator alert, once per instance and minute), else None."""
        from shared.settings import get_settings

        now = time.monotonic()
        with _HOME_LOCK:
            cached = _HOME_VERDICT.get("at")
            if cached is not None and now - cached < HOME_CHECK_FOR:
                return _HOME_VERDICT.get("error")
            try:
                self.tokens.app_token(get_settings().home_tenant_id, fresh=True)
                error = None
            except IdentityError as failure:
                error = failure.aadsts or failure.error
            _HOME_VERDICT.update({"at": now, "error": error})
        if error is not None:
            log.critical("OPERATOR ALERT: the app is not found in its own home tenant either (%s): the app "
                         "registration is gone or APP_CLIENT_ID is wrong (README, 'Operations'). No tenant was "
                         "changed.", error)
        return error

    def _restored(self, tenant_id: str) -> None:
        def mark(tenant: Tenant) -> Tenant | None:
            if tenant.status != "consent_revoked":
                return None
            tenant.status, tenant.updatedAt = "enabled", self.clock()
            return tenant

        changed = self.repos.store.modify(Tenant, tenant_id, "tenant", mark)
        log.info("tenant's consent is back: enabled again")
        if changed is not None and changed.status == "enabled":
            from shared.clients import job_queue
            from sync.changes import record_tenant_status

            record_tenant_status(self.repos, changed, "consent_restored")
            # Its upcoming bookings are read again and their organizers subscribed again.
            from sync.reconcile import RECONCILE

            job_queue().send({"kind": RECONCILE, "tenantId": tenant_id, "at": self.clock().isoformat()})

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


@cache
def consent_jobs() -> Jobs:
    from shared.clients import member_tokens, repositories, token_provider

    return Jobs(repositories(), member_tokens(), token_provider())


# -- the queue's job kinds (background/jobs.py KINDS) ------------------------------------------------


def refresh_member_job(message: dict[str, Any]) -> str:
    return consent_jobs().refresh_member(message["tenantId"], message["userId"],
                                         datetime.fromisoformat(message["enqueuedAt"]))


def check_tenant_job(message: dict[str, Any]) -> str:
    return consent_jobs().check_tenant(message["tenantId"])


# -- the sweeps' pages (background/jobs.py SWEEPS) ----------------------------------------------------


def _send_all(messages: list[tuple[dict[str, Any], int]]) -> None:
    """Queue jobs, each visible after its delay: the jobs of one delay go together in as few
    messages as fit (shared/queues.py `pack`; a `batch` runs each of its jobs and queues a failed
    one again alone), so a page of 200 members is a handful of queue puts, not 200."""
    from shared.clients import job_queue
    from shared.queues import pack

    if not messages:
        return
    by_delay: dict[int, list[dict[str, Any]]] = {}
    for job, delay in messages:
        by_delay.setdefault(delay, []).append(job)
    sends = [(message, delay) for delay, jobs in by_delay.items() for message in pack(jobs)]
    queue = job_queue()
    with ThreadPoolExecutor(max_workers=min(SENDERS, len(sends)), thread_name_prefix="enqueue") as pool:
        # Each send in a copy of this context, so its log lines keep the request's ids.
        list(pool.map(lambda item: contextvars.copy_context().run(queue.send, item[0], delay=item[1]), sends))


def members_page(run: Any) -> tuple[str, Any]:
    """One page of connected members whose token is due: a refresh job each, the i-th of the run
    visible i / REFRESH_JOBS_PER_SECOND seconds after the run started (Key Vault's write limit)."""
    from shared.clients import repositories
    from shared.settings import get_settings

    rate = get_settings().refresh_jobs_per_second
    users, token = repositories().users_due_page(run.at, page_size=PAGE, continuation=run.continuation)
    first = (run.extra or {}).get("queued", 0)
    late = max(0.0, (utcnow() - run.at).total_seconds())
    _send_all([({"kind": REFRESH_MEMBER, "tenantId": user.tenantId, "userId": user.userId,
                 "enqueuedAt": _iso(run.at)}, max(0, math.ceil((first + i) / rate - late)))
               for i, user in enumerate(users)])
    run.extra = {"queued": first + len(users)}
    return f"{len(users)} refresh job(s)", token


def tenants_page(run: Any) -> tuple[str, Any]:
    """One page of enabled domain tenants: a consent check each."""
    from shared.clients import repositories

    tenants, token = repositories().tenants_page(status="enabled", mode="domain", page_size=PAGE,
                                                 continuation=run.continuation)
    _send_all([({"kind": CHECK_TENANT, "tenantId": t.tenantId, "enqueuedAt": _iso(run.at)}, 0) for t in tenants])
    return f"{len(tenants)} tenant check(s)", token


def cleanup_page(run: Any) -> tuple[str, Any]:
    """Delete up to a page of each kind of expired row; another page while any kind had a full page
    (the rows deleted are gone from the next query, so each page starts from the beginning)."""
    from shared.clients import repositories
    from sync.changes import ChangeLog

    repos, now = repositories(), utcnow()
    # A request's outcome stays readable (status route) for a day after its link expired.
    kinds = [repos.expired_consent_requests(now - CONSENT_OUTCOME_KEPT), repos.expired_consent_states(now),
             repos.expired_idempotency_records(now)]
    deleted, full = 0, False
    for rows in kinds:
        taken = list(itertools.islice(rows, PAGE))
        full = full or len(taken) == PAGE
        # A row changed since read (in use) stays: a later run sees it again.
        deleted += repos.store.delete_unchanged(taken)
    changes = ChangeLog(repos).prune(now, limit=PAGE)
    full = full or changes == PAGE
    return f"{deleted + changes} expired row(s) deleted", ({"more": True} if full else None)


TENANT_STATUSES = ("pending_consent", "enabled", "consent_revoked", "disabled")


def tenant_counts_page(run: Any) -> tuple[str, Any]:
    """Tenants by status, counted a page at a time; the last page logs one line per status (zero
    included) for the operations workbook (README, "Operations")."""
    from shared.clients import repositories
    from shared.storage import Tenant

    rows, token = repositories().store.page(Tenant, "RowKey eq 'tenant'", page_size=1000,
                                            continuation=run.continuation)
    counts = dict.fromkeys(TENANT_STATUSES, 0) | (run.extra or {})
    for tenant in rows:
        counts[tenant.status] = counts.get(tenant.status, 0) + 1
    run.extra = counts
    if token is None:
        for status, count in counts.items():
            log.info("tenants in status %s: %d", status, count)
    return f"{len(rows)} tenant(s) counted", token


def revoked_page(run: Any) -> tuple[str, Any]:
    """The daily re-check of `consent_revoked` domain tenants: a check each, which makes one
    `enabled` again (with a `consent_restored` change) when the consent is back."""
    from shared.clients import repositories

    tenants, token = repositories().tenants_page(status="consent_revoked", mode="domain", page_size=PAGE,
                                                 continuation=run.continuation)
    _send_all([({"kind": CHECK_TENANT, "tenantId": t.tenantId, "enqueuedAt": _iso(run.at)}, 0) for t in tenants])
    return f"{len(tenants)} revoked tenant check(s)", token


def one_day() -> timedelta:
    return timedelta(days=1)
