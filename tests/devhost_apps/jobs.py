"""Timer and queue functions that record their invocations in RECORDS for the tests to inspect."""

from __future__ import annotations

import threading
from typing import Any

import azure.functions as func

bp = func.Blueprint()

RECORDS: dict[str, list[dict[str, Any]]] = {"nightly": [], "ticker": [], "worker": []}
_LOCK = threading.Lock()


def record(name: str, entry: dict[str, Any]) -> None:
    with _LOCK:
        RECORDS[name].append(entry)


def records(name: str) -> list[dict[str, Any]]:
    with _LOCK:
        return list(RECORDS[name])


@bp.timer_trigger(arg_name="timer", schedule="%NIGHTLY_SCHEDULE%", run_on_startup=False)
def nightly(timer: func.TimerRequest) -> None:
    record("nightly", {"past_due": timer.past_due})


@bp.timer_trigger(arg_name="timer", schedule="%TICK_SCHEDULE%", run_on_startup=True)
def ticker(timer: func.TimerRequest) -> None:
    record("ticker", {"past_due": timer.past_due, "schedule_status": timer.schedule_status})


@bp.queue_trigger(arg_name="msg", queue_name="%WORK_QUEUE%", connection="DevhostStorage")
def worker(msg: func.QueueMessage) -> None:
    body = msg.get_body()
    record("worker", {"id": msg.id, "body": body, "dequeue_count": msg.dequeue_count,
                      "pop_receipt": msg.pop_receipt, "insertion_time": msg.insertion_time})
    if b"FAIL" in body:
        raise RuntimeError("failing on purpose")
