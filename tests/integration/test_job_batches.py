"""Jobs gathered into one queue message (shared/queues.py `Coalescer`, `pack`; consent/jobs.py
`run_batch`), on Azurite through the real queue SDK. The gathering is within one process by
nature (callers on one host's event loop waiting on one put), so one loop is the right proof here; the route
itself is exercised across processes by tests/integration/test_sync.py."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from shared.queues import BATCH, MESSAGE_BUDGET, Coalescer, pack


def run(main):
    """asyncio.run on a thread of its own: a session-wide browser (Playwright's sync API) keeps an
    event loop running on the test thread, where asyncio.run refuses to start another."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main).result()


def drain(queue) -> list[dict]:
    found = []
    while True:
        messages = list(queue.client.receive_messages(max_messages=32, visibility_timeout=60))
        if not messages:
            return found
        for message in messages:
            found.append(json.loads(message.content))
            queue.client.delete_message(message)


def jobs_in(messages: list[dict]) -> list[dict]:
    return [job for m in messages for job in (m["jobs"] if m["kind"] == BATCH else [m])]


def test_pack_keeps_every_job_and_each_message_within_the_queues_limit():
    jobs = [{"kind": "sync.notification", "eventId": f"AAMk{n:05d}" + "x" * 400} for n in range(400)]
    messages = pack(jobs)
    assert jobs_in(messages) == jobs
    assert len(messages) > 1
    # 64 KiB after base64 (4 bytes per 3): the JSON itself must stay under 48 KiB.
    assert all(len(json.dumps(m, separators=(",", ":"))) <= MESSAGE_BUDGET for m in messages)
    assert pack(jobs[:1]) == jobs[:1]  # a lone job is sent as itself
    assert pack([]) == []


def test_callers_arriving_during_a_put_share_the_next_message(app_env):
    from shared.clients import job_queue

    queue = job_queue()
    puts = []

    def slow_put(jobs):
        puts.append(len(jobs))
        time.sleep(0.05)  # a put in flight while other callers arrive
        for message in pack(jobs):
            queue.send(message)

    coalescer = Coalescer(slow_put, in_flight=1)
    callers = 60

    async def burst():
        async def caller(n):
            await asyncio.sleep(n * 0.002)  # arriving over ~120 ms, across several puts
            await coalescer.submit([{"kind": "t", "n": n}, {"kind": "t", "n": n, "second": 1}])

        await asyncio.gather(*(caller(n) for n in range(callers)))

    run(burst())
    messages = drain(queue)
    got = sorted((job["n"], job.get("second", 0)) for job in jobs_in(messages))
    assert got == sorted((n, s) for n in range(callers) for s in (0, 1))  # every job, once
    assert sum(puts) == 2 * callers
    assert 1 < len(puts) < callers / 3, puts  # gathered: far fewer puts than callers


def test_at_most_in_flight_puts_run_at_once_and_every_job_is_put_once():
    lock, running, most, put = threading.Lock(), [0], [0], []

    def slow_put(jobs):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.03)
        with lock:
            running[0] -= 1
            put.extend(jobs)

    coalescer = Coalescer(slow_put, in_flight=3)

    async def burst():
        async def caller(n):
            await asyncio.sleep(n * 0.001)
            await coalescer.submit([{"n": n}])

        await asyncio.gather(*(caller(n) for n in range(200)))

    run(burst())
    assert most[0] == 3  # three at once under a burst, never more
    assert sorted(job["n"] for job in put) == list(range(200))


def test_every_caller_waiting_on_a_failed_put_gets_the_error():
    started, release = threading.Event(), threading.Event()
    calls = []

    def failing_put(jobs):
        calls.append(list(jobs))
        if len(calls) == 1:
            started.set()
            release.wait()  # untimed: a timed wait hangs under libfaketime
        raise ConnectionError("queue unreachable")

    coalescer = Coalescer(failing_put, in_flight=1)
    errors = []

    async def submit(n):
        try:
            await coalescer.submit([{"n": n}])
        except ConnectionError as error:
            errors.append((n, str(error)))

    async def scene():
        first = asyncio.create_task(submit(0))
        while not started.is_set():
            await asyncio.sleep(0.01)
        others = [asyncio.create_task(submit(n)) for n in range(1, 6)]
        await asyncio.sleep(0.2)  # the five wait behind the first put
        release.set()
        await asyncio.gather(first, *others)

    run(scene())
    assert sorted(n for n, _ in errors) == list(range(6))  # nobody is told "queued"
    assert [len(c) for c in calls] == [1, 5]  # the waiting five were tried together


def test_a_caller_that_goes_away_does_not_stop_the_others_being_answered():
    release = threading.Event()
    put = []

    def slow_put(jobs):
        release.wait()
        put.extend(jobs)

    coalescer = Coalescer(slow_put, in_flight=1)

    async def scene():
        first = asyncio.create_task(coalescer.submit([{"n": 0}]))
        await asyncio.sleep(0.05)
        gone = asyncio.create_task(coalescer.submit([{"n": 1}]))
        stays = asyncio.create_task(coalescer.submit([{"n": 2}]))
        await asyncio.sleep(0.05)
        gone.cancel()  # its connection closed while it waited
        release.set()
        await asyncio.gather(first, stays)
        assert gone.cancelled()

    run(scene())
    # Its jobs were already gathered: they are queued all the same (Graph may deliver it again;
    # the consumers record a change once).
    assert sorted(job["n"] for job in put) == [0, 1, 2]


def test_a_batch_runs_each_job_once_and_requeues_a_failure_alone(app_env):
    from background.jobs import background as jobs_service
    from shared.clients import job_queue

    service = jobs_service()
    ran = []

    def dispatch(job):
        ran.append(job)
        if job.get("fail"):
            raise RuntimeError("passing failure")
        return f"done: {job['n']}"

    original = service.dispatch
    service.dispatch = dispatch
    try:
        body = json.dumps({"kind": BATCH, "jobs": [{"kind": "t", "n": 1}, {"kind": "t", "n": 1},
                                                   {"kind": "t", "n": 2, "fail": True}, {"kind": "t", "n": 3}]})
        outcome = service.run(body)
    finally:
        service.dispatch = original
    assert sorted(job["n"] for job in ran) == [1, 2, 3]  # the duplicate ran once
    assert outcome == "batch of 4: 2 done, 1 failed"
    assert drain(job_queue()) == [{"kind": "t", "n": 2, "fail": True}]  # queued again on its own


@pytest.mark.parametrize("body", [{"kind": BATCH}, {"kind": BATCH, "jobs": [1, 2]}, {"kind": BATCH, "jobs": "x"}])
def test_a_malformed_batch_goes_to_the_poison_queue(app_env, body):
    from background.jobs import background as jobs_service

    with pytest.raises(ValueError, match="malformed batch message"):
        jobs_service().run(json.dumps(body))


def test_a_burst_for_one_mailbox_reads_its_subscription_once_and_queues_every_item(app_env, monkeypatch):
    """32 deliveries at once on the route's loop, the subscription not read lately: one table
    read between them (not 32), and each item queued once, in few messages."""
    from shared.clients import job_queue, repositories
    from sync import inbox
    from sync.subscriptions import Recogniser, Subscription, state_hash

    tenant, key = "b0b0b0b0-0000-4000-8000-00000000be06", "0123456789abcdef"
    client_state = f"{tenant}.{key}.{'s' * 43}"
    store = repositories().store
    store.insert(Subscription(tenantId=tenant, mailboxKey=key, address="ann@x.example", path="ann@x.example",
                              mode="domain", clientStateHash=state_hash(client_state), status="active",
                              subscriptionId="sub-1"))
    reads, real_get = [], store.get

    def counted_get(*args, **kwargs):
        reads.append(args[1:3])
        return real_get(*args, **kwargs)

    monkeypatch.setattr(store, "get", counted_get)
    recogniser = Recogniser(repositories())
    bodies = [json.dumps({"value": [{"subscriptionId": "sub-1", "clientState": client_state, "changeType": "updated",
                                     "resourceData": {"id": f"AAMk-{n}"}}]}).encode() for n in range(32)]

    async def burst():
        return await asyncio.gather(*(inbox.accept(body, recogniser, job_queue()) for body in bodies))

    assert run(burst()) == [{"queued": 1, "dropped": 0}] * 32
    assert reads == [(tenant, "sub:" + key)]
    messages = drain(job_queue())
    assert sorted(job["eventId"] for job in jobs_in(messages)) == sorted(f"AAMk-{n}" for n in range(32))
    assert len(messages) < 32
