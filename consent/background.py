"""The timer and the queue function of the background work (see consent/jobs.py)."""

from __future__ import annotations

import logging
from functools import lru_cache

import azure.functions as func

from shared.logs import request_context

log = logging.getLogger(__name__)

bp = func.Blueprint()


@lru_cache(maxsize=1)
def timer_service():
    from consent.jobs import Timer
    from shared.clients import job_queue, repositories
    from shared.settings import get_settings

    return Timer(repositories(), job_queue(), jobs_per_second=get_settings().refresh_jobs_per_second)


@lru_cache(maxsize=1)
def jobs_service():
    from consent.jobs import Jobs
    from shared.clients import member_tokens, repositories, token_provider

    return Jobs(repositories(), member_tokens(), token_provider())


# Timers run in UTC; the schedule is an app setting (default every 6 hours). Only one instance
# runs a timer at a time, and a run that is still going is not started again.
@bp.function_name("token_refresh_timer")
@bp.timer_trigger(schedule="%TOKEN_REFRESH_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
def token_refresh_timer(timer: func.TimerRequest) -> None:
    with request_context("timer"):
        if timer.past_due:
            log.info("timer is past due; running now")
        timer_service().run()


@bp.function_name("background_job")
@bp.queue_trigger(arg_name="message", queue_name="%JOBS_QUEUE_NAME%", connection="SERVICE_STORAGE")
def background_job(message: func.QueueMessage) -> None:
    with request_context(f"job-{message.id or 'local'}"):
        outcome = jobs_service().run(message.get_body())
        log.info("job done: %s (delivery %s)", outcome, message.dequeue_count)
