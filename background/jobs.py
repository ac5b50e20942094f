"""The background work's one plumbing: every job kind, every periodic sweep, and how they run.

Two timers (their schedules are app settings) and one queue function (function_app registers
them from background/functions.py). A timer does a bounded amount of work: for each of its
sweeps that is due it queues the sweep's first page job, and nothing else. Each page job does one
page (at most a few hundred rows) and queues the next page with its continuation, so no function
runs near its timeout at any size and no sweep waits for another. Everything else a feature wants
done later is a job on the same queue.

Adding work: a job kind is one line in `KINDS` (kind -> "module:function", imported on first
use, so a cold start imports nothing a request does not need); a periodic sweep is one line in
`SWEEPS` (its timer, its page function, and optionally the least time between two runs).

At least once: a queue message can run twice (a host dies before deleting it), so every job is
idempotent, and a page job first checks its run's progress row: a page already done in that run
is skipped, so a page and its successors are not done twice. A failing job raises; the queue
retries it and after `maxDequeueCount` (host.json) moves it to `<queue>-poison`.
"""

from __future__ import annotations

import importlib
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any, ClassVar

from shared.errors import AlreadyExists, ConcurrencyConflict
from shared.queues import BATCH
from shared.storage import Record, utcnow

log = logging.getLogger(__name__)

PAGE = "sweep.page"
TOKEN_REFRESH_TIMER = "token_refresh_timer"  # noqa: S105 (a function name)
RECONCILER_TIMER = "booking_reconciler"
RUNS_KEPT = timedelta(days=7)

# Every job kind: kind -> "module:function(message) -> outcome" (besides PAGE, the plumbing's own).
KINDS: dict[str, str] = {
    "refresh_member": "consent.jobs:refresh_member_job",
    "check_tenant": "consent.jobs:check_tenant_job",
    "sync.notification": "sync.jobs:run",
    "sync.lifecycle": "sync.jobs:run",
    "sync.mailbox": "sync.jobs:run",
    "sync.tenant": "sync.jobs:run",
    "sync.reconcile": "sync.reconcile:reconcile_tenant_job",
    "webhook.pump": "sync.webhooks:pump_job",
    "webhook.deliver": "sync.webhooks:deliver_job",
    "erase.person": "booking.erasure:erase_job",
}


@dataclass(frozen=True)
class Sweep:
    timer: str
    page: str  # "module:function(run: Run) -> (outcome, continuation or None)"
    gap: str | None = None  # "module:function() -> timedelta": the least time between two runs


# Every periodic sweep, by name.
SWEEPS: dict[str, Sweep] = {
    "members": Sweep(TOKEN_REFRESH_TIMER, "consent.jobs:members_page"),
    "tenants": Sweep(TOKEN_REFRESH_TIMER, "consent.jobs:tenants_page"),
    "cleanup": Sweep(TOKEN_REFRESH_TIMER, "consent.jobs:cleanup_page"),
    "tenant-counts": Sweep(TOKEN_REFRESH_TIMER, "consent.jobs:tenant_counts_page"),
    "runs": Sweep(TOKEN_REFRESH_TIMER, "background.jobs:forgotten_runs_page"),
    "retention": Sweep(TOKEN_REFRESH_TIMER, "booking.retention:retention_page", gap="booking.retention:retention_gap"),
    "erasures": Sweep(TOKEN_REFRESH_TIMER, "booking.erasure:stalled_page"),
    "revoked": Sweep(TOKEN_REFRESH_TIMER, "consent.jobs:revoked_page", gap="consent.jobs:one_day"),
    "stuck-bookings": Sweep(RECONCILER_TIMER, "booking.background:stuck_page"),
    "stuck-scan": Sweep(RECONCILER_TIMER, "booking.background:stuck_scan_page", gap="consent.jobs:one_day"),
    "subscriptions": Sweep(RECONCILER_TIMER, "sync.jobs:subscriptions_page"),
    "reconcile": Sweep(RECONCILER_TIMER, "sync.reconcile:tenants_page", gap="sync.reconcile:pass_gap"),
    "webhooks": Sweep(RECONCILER_TIMER, "sync.webhooks:pending_page"),
}


@cache
def _resolve(target: str) -> Callable[..., Any]:
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


@dataclass
class Run:
    """A page job's view of its sweep's run: when the run started (`at`), which page this is, and
    where the previous page stopped (`continuation`, JSON; None on the first page)."""

    sweep: str
    run_id: str
    at: datetime
    page: int
    continuation: Any = None
    # Set by a page function that wants to hand on state other than a continuation.
    extra: dict[str, Any] | None = None


@dataclass
class SweepState(Record):
    """When a sweep with a gap last started (one row per sweep), taken with its ETag."""

    TABLE: ClassVar[str] = "background"
    sweep: str
    startedAt: datetime | None = None

    @property
    def partition_key(self) -> str:
        return "sweep"

    @property
    def row_key(self) -> str:
        return self.sweep


@dataclass
class RunProgress(Record):
    """The pages of one sweep run done so far."""

    TABLE: ClassVar[str] = "background"
    sweep: str
    runId: str
    done: int = 0
    at: datetime | None = None

    @property
    def partition_key(self) -> str:
        return "run:" + self.sweep

    @property
    def row_key(self) -> str:
        return self.runId


class Background:
    def __init__(self, repos: Any, queue: Any, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.repos = repos
        self.queue = queue
        self.clock = clock

    # -- the timers -----------------------------------------------------------------------------

    def tick(self, timer: str) -> dict[str, str]:
        """Queue the first page of each of the timer's sweeps that is due; what was done per sweep."""
        now = self.clock()
        done: dict[str, str] = {}
        for name, sweep in SWEEPS.items():
            if sweep.timer != timer:
                continue
            if sweep.gap is not None and not self._take_turn(name, now, _resolve(sweep.gap)()):
                done[name] = "not due"
                continue
            run_id = now.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(4)
            self.queue.send({"kind": PAGE, "sweep": name, "run": run_id, "at": now.isoformat(), "page": 1})
            done[name] = "started"
        log.info("timer %s: %s", timer, ", ".join(f"{name} {what}" for name, what in done.items()))
        if timer == RECONCILER_TIMER:
            self._log_queue_depths()
        return done

    def _log_queue_depths(self) -> None:
        """For the workbook and the poison-queue alert (README, "Operations")."""
        from azure.core.exceptions import ResourceNotFoundError

        from shared.clients import poison_queue

        for queue in (self.queue, poison_queue()):
            try:
                depth = queue.peek_count()
            except Exception as error:
                if not isinstance(error, ResourceNotFoundError):
                    log.warning("queue depth of %s unknown (%s)", queue.name, type(error).__name__)
                    continue
                depth = 0  # a poison queue not made yet holds nothing
            log.info("queue depth %s: %d", queue.name, depth)

    def _take_turn(self, name: str, now: datetime, gap: timedelta) -> bool:
        state = self.repos.store.get(SweepState, "sweep", name)
        if state is not None and state.startedAt is not None and now - state.startedAt < gap:
            return False
        try:
            if state is None:
                self.repos.store.insert(SweepState(sweep=name, startedAt=now))
            else:
                state.startedAt = now
                self.repos.store.update(state)  # with its ETag: one instance takes the turn
        except (AlreadyExists, ConcurrencyConflict):
            return False
        return True

    # -- the queue ------------------------------------------------------------------------------

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

    def dispatch(self, message: dict[str, Any]) -> str:
        kind = message.get("kind")
        if kind == PAGE:
            return self.run_page(message)
        target = KINDS.get(kind) if isinstance(kind, str) else None
        if target is None:
            log.error("unknown job kind; dropping it to the poison queue")
            raise ValueError(f"unknown job kind {kind!r}")
        from shared.logs import tenant_context

        tenant = message.get("tenantId")
        with tenant_context(tenant if isinstance(tenant, str) else None):
            return _resolve(target)(message)

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
                log.warning("a job of a batch failed (%s); queued again on its own", type(error).__name__)
                self.queue.send(job)
                outcome = "failed: queued again"
            outcome = outcome.split(":")[0]
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        return f"batch of {len(jobs)}: " + ", ".join(f"{n} {what}" for what, n in sorted(outcomes.items()))

    def run_page(self, message: dict[str, Any]) -> str:
        try:
            name, run_id, number = message["sweep"], str(message["run"]), int(message["page"])
            sweep = SWEEPS[name]
            at = datetime.fromisoformat(message["at"])
        except (KeyError, ValueError, TypeError):
            raise ValueError("malformed page job") from None
        progress = self.repos.store.get(RunProgress, "run:" + name, run_id)
        if progress is not None and progress.done >= number:
            return f"skipped: page {number} of {name} already done"
        run = Run(name, run_id, at, number, message.get("continuation"), message.get("extra"))
        outcome, continuation = _resolve(sweep.page)(run)
        if continuation is not None:
            self.queue.send({**message, "page": number + 1, "continuation": continuation,
                             **({"extra": run.extra} if run.extra is not None else {})})
        self._mark_done(name, run_id, number, at)
        return f"{name} page {number}: {outcome}" + ("" if continuation is not None else " (last page)")

    def _mark_done(self, name: str, run_id: str, number: int, at: datetime) -> None:
        def advance(row: Any) -> Any:
            if row.done >= number:
                return None
            row.done = number
            return row

        if self.repos.store.modify(RunProgress, "run:" + name, run_id, advance) is None:
            try:
                self.repos.store.insert(RunProgress(sweep=name, runId=run_id, done=number, at=at))
            except AlreadyExists:
                self.repos.store.modify(RunProgress, "run:" + name, run_id, advance)

    def forget_runs(self, now: datetime, limit: int = 500) -> int:
        """Delete progress rows of runs started more than `RUNS_KEPT` ago (the cleanup sweep)."""
        old = self.repos.store.query(RunProgress, "PartitionKey ge 'run:' and PartitionKey lt 'run;' and at lt @cutoff",
                                     {"cutoff": now - RUNS_KEPT}, page_size=min(limit, 1000))
        deleted = 0
        for row in old:
            if deleted >= limit:
                break
            if self.repos.store.delete(row, if_unchanged=False):
                deleted += 1
        return deleted


@cache
def background() -> Background:
    from shared.clients import job_queue, repositories

    return Background(repositories(), job_queue())


def forgotten_runs_page(run: Run) -> tuple[str, Any]:
    """The `runs` sweep: progress rows of runs older than `RUNS_KEPT`, a page at a time."""
    deleted = background().forget_runs(utcnow(), limit=500)
    return f"{deleted} old run row(s) deleted", ({"more": True} if deleted == 500 else None)
