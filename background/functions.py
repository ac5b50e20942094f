"""The background work's functions: two timers and the queue function (background/jobs.py says
what they run). Nothing is imported here that a request does not need: the work's modules load
on the first run."""

from __future__ import annotations

import logging

import azure.functions as func

from shared.logs import request_context, with_invocation

log = logging.getLogger(__name__)

bp = func.Blueprint()


# Timers run in UTC; each schedule is an app setting. Only one instance runs a timer at a time,
# and a run that is still going is not started again.
@bp.function_name("token_refresh_timer")
@bp.timer_trigger(schedule="%TOKEN_REFRESH_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
@with_invocation
def token_refresh_timer(timer: func.TimerRequest) -> None:
    """Token refresh, consent health, cleanup and retention (default every 6 hours)."""
    from background.jobs import TOKEN_REFRESH_TIMER, background

    with request_context("timer"):
        if timer.past_due:
            log.info("timer is past due; running now")
        background().tick(TOKEN_REFRESH_TIMER)


@bp.function_name("booking_reconciler")
@bp.timer_trigger(schedule="%BOOKING_RECONCILE_SCHEDULE%", arg_name="timer", run_on_startup=False,
                  use_monitor=True)
@with_invocation
def booking_reconciler(timer: func.TimerRequest) -> None:
    """Stuck bookings, subscriptions, reconciliation with Outlook, webhooks (default every 2 minutes)."""
    from background.jobs import RECONCILER_TIMER, background

    with request_context("reconciler"):
        background().tick(RECONCILER_TIMER)


@bp.function_name("background_job")
@bp.queue_trigger(arg_name="message", queue_name="%JOBS_QUEUE_NAME%", connection="SERVICE_STORAGE")
@with_invocation
def background_job(message: func.QueueMessage) -> None:
    from background.jobs import background

    with request_context(f"job-{message.id or 'local'}"):
        outcome = background().run(message.get_body())
        log.info("job done: %s (delivery %s)", outcome, message.dequeue_count)
