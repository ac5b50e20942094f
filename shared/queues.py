"""The background jobs' Storage queue, on azure-storage-queue.

Messages are JSON, base64-encoded as the Functions host expects by default (`messageEncoding`
base64 in host.json). The queue is created on first use. A message can be hidden for a while
when sent (`delay`), which is how the timer paces work that has a rate limit behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import weakref
from collections.abc import Callable
from typing import Any

from shared.settings import StorageConnection

MAX_DELAY_SECONDS = 7 * 24 * 3600  # Azure's longest visibility timeout
# azure-core's per-operation options for a caller that must answer within Graph's 3 s: no
# retries, a second to connect, a second and a half to answer.
FAST = {"retry_total": 0, "connection_timeout": 1, "read_timeout": 1.5}


class JobQueue:
    def __init__(self, connection: StorageConnection, name: str) -> None:
        self._connection = connection
        self.name = name
        self._client: Any = None
        self._coalescers: weakref.WeakKeyDictionary[Any, Coalescer] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        return self._get()

    def _get(self, fast: bool = False) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._build(fast)
        return self._client

    def _build(self, fast: bool = False) -> Any:
        from azure.core.exceptions import ResourceExistsError
        from azure.storage.queue import BinaryBase64DecodePolicy, BinaryBase64EncodePolicy, QueueClient

        from shared.clients import azure_transport

        kwargs = {"message_encode_policy": BinaryBase64EncodePolicy(),
                  "message_decode_policy": BinaryBase64DecodePolicy(), "transport": azure_transport()}
        if self._connection.connection_string:
            client = QueueClient.from_connection_string(self._connection.connection_string, self.name, **kwargs)
        else:
            from shared.clients import azure_credential

            client = QueueClient(self._connection.queue_service_uri, self.name, credential=azure_credential(),
                                 **kwargs)
        with contextlib.suppress(ResourceExistsError):
            client.create_queue(**(FAST if fast else {}))
        return client

    def send(self, message: dict[str, Any], *, delay: int = 0, fast: bool = False) -> None:
        """Queue one message. `fast`: one try with short timeouts, for a caller that must answer
        in time (the Graph notification route) rather than wait out the SDK's retries."""
        body = json.dumps(message, separators=(",", ":")).encode("utf-8")
        self._get(fast).send_message(body, visibility_timeout=min(max(0, delay), MAX_DELAY_SECONDS) or None,
                                     **(FAST if fast else {}))

    async def send_together(self, jobs: list[dict[str, Any]]) -> None:
        """Queue jobs for a caller on an event loop that must answer fast, gathered with other
        callers' jobs into as few messages as fit (`Coalescer`, one per loop); returns once they
        are queued."""
        loop = asyncio.get_running_loop()
        with self._lock:
            coalescer = self._coalescers.get(loop)
            if coalescer is None:
                coalescer = self._coalescers[loop] = Coalescer(self._put_packed)
        await coalescer.submit(jobs)

    def _put_packed(self, jobs: list[dict[str, Any]]) -> None:
        for message in pack(jobs):
            self.send(message, fast=True)

    def peek_count(self) -> int:
        return int(self.client.get_queue_properties().approximate_message_count)


# A queue message is at most 64 KiB and ours are base64-encoded (4 bytes per 3), so the JSON of
# one message stays under 48 KiB; a little is left for the envelope.
MESSAGE_BUDGET = 46_000
BATCH = "batch"


def pack(jobs: list[dict[str, Any]], budget: int = MESSAGE_BUDGET) -> list[dict[str, Any]]:
    """Jobs packed into as few messages as fit the budget: a lone job is sent as itself, several
    as one `batch` message whose consumer runs each (consent/jobs.py)."""
    messages: list[list[dict[str, Any]]] = []
    size = budget
    for job in jobs:
        length = len(json.dumps(job, separators=(",", ":"))) + 1
        if size + length > budget:
            messages.append([])
            size = 40
        messages[-1].append(job)
        size += length
    return [group[0] if len(group) == 1 else {"kind": BATCH, "jobs": group} for group in messages]


class Coalescer:
    """Group commit for callers on one event loop that each must know their jobs are queued before
    they answer (the Graph notification route, an async function on the worker's loop). Up to
    `in_flight` puts run at once, each on a thread of the coalescer's own (the storage SDK blocks);
    the jobs of callers that arrive while they are all busy are gathered, and when a put ends the
    next one takes all of them in one message. Each caller returns only after the message holding
    its jobs was accepted by the queue, or raises its error, so nothing is acknowledged that is not
    queued. Under a burst, puts per second stop bounding deliveries per second; alone, a caller
    puts its own jobs at once. One put in flight by default: measured with bench/notifications.py,
    more answered no faster under a burst of 1,000 and cost more CPU per delivery (a put is about
    4 ms of the SDK's CPU)."""

    def __init__(self, put: Callable[[list[dict[str, Any]]], None], *, in_flight: int = 1) -> None:
        self._put = put
        self._limit = in_flight
        self._pending: list[tuple[list[dict[str, Any]], asyncio.Future[None]]] = []
        self._busy = 0
        self._threads: Any = None

    async def submit(self, jobs: list[dict[str, Any]]) -> None:
        if not jobs:
            return
        loop = asyncio.get_running_loop()
        queued: asyncio.Future[None] = loop.create_future()
        self._pending.append((jobs, queued))
        if self._busy < self._limit:
            self._start(loop)
        await queued

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._threads is None:
            from concurrent.futures import ThreadPoolExecutor

            self._threads = ThreadPoolExecutor(self._limit, thread_name_prefix="queue-put")
        taken, self._pending = self._pending, []
        self._busy += 1
        put = loop.run_in_executor(self._threads, self._put, [job for jobs, _ in taken for job in jobs])
        put.add_done_callback(lambda done: self._finish(loop, taken, done))

    def _finish(self, loop: asyncio.AbstractEventLoop, taken: list[tuple[list[dict[str, Any]], asyncio.Future[None]]],
                done: asyncio.Future[None]) -> None:
        self._busy -= 1
        error = done.exception()
        for _, queued in taken:
            if queued.done():  # its caller went away (the connection closed): nothing to tell
                continue
            if error is None:
                queued.set_result(None)
            else:
                queued.set_exception(error)
        if self._pending and self._busy < self._limit:
            self._start(loop)  # the jobs gathered meanwhile
