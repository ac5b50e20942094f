"""Queue triggers: a poller per function that behaves like the host's storage-queue listener.

It receives up to `batchSize` messages (hidden for 10 minutes, as the host does), runs each in its
own thread, and fetches the next batch once no more than `newBatchThreshold` are still running.
Success deletes the message; failure makes it visible again after `visibilityTimeout`, and a
failure at `dequeueCount >= maxDequeueCount` moves it to `<queue>-poison`. An empty queue backs
polling off exponentially from 100 ms to `maxPollingInterval`; a message resets it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import threading
import time
from typing import TYPE_CHECKING

import azure.functions.queue as func_queue
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import QueueClient, QueueMessage

from devhost.config import QueueOptions
from tools.waits import join, sleep_unless, until

if TYPE_CHECKING:
    from devhost.host import Function, LocalHost

log = logging.getLogger("devhost.queues")

MIN_POLLING_INTERVAL = 0.1
RECEIVE_VISIBILITY_TIMEOUT = 600  # seconds a received message stays hidden while the function runs


def poison_queue_name(queue_name: str) -> str | None:
    """`<queue>-poison`, or None where the host has no poison queue (a poison queue, or a name too long)."""
    if queue_name.endswith("-poison") or len(queue_name) + len("-poison") > 63:
        return None
    return f"{queue_name}-poison"


def decode_body(text: str, encoding: str) -> bytes:
    """The message body as the host hands it to the worker; ValueError when base64 is not valid."""
    if encoding == "none":
        return text.encode("utf-8")
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as error:
        raise ValueError(str(error)) from None


class QueuePoller:
    def __init__(self, host: LocalHost, function: Function, queue_name: str, connection_string: str,
                 options: QueueOptions) -> None:
        self.host = host
        self.function = function
        self.queue_name = queue_name
        self.options = options
        # No SDK retries (the storage SDK waits 15 s before one): the poll loop backs off by itself,
        # and polling and stopping stay prompt.
        client_options = {"retry_total": 0, "connection_timeout": 5, "read_timeout": 30}
        self._client = QueueClient.from_connection_string(connection_string, queue_name, **client_options)
        poison = poison_queue_name(queue_name)
        self._poison = (QueueClient.from_connection_string(connection_string, poison, **client_options)
                        if poison else None)
        self._stop = threading.Event()
        self._idle = threading.Condition()
        self._in_flight = 0
        self._thread = threading.Thread(target=self._run, name=f"devhost-queue-{function.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, deadline: float) -> None:
        """Stop polling; wait for running functions until `deadline` (time.monotonic), then abandon them."""
        self._stop.set()
        join(self._thread, min(0.5, max(0.0, deadline - time.monotonic())))  # a poll in progress holds no work
        until(lambda: self._in_flight == 0, max(0.0, deadline - time.monotonic()), self._idle)
        with self._idle:
            if self._in_flight:
                log.warning("Abandoning %d running message(s) of %s; they reappear after their visibility timeout",
                            self._in_flight, self.function.name)

    def _run(self) -> None:
        delay = MIN_POLLING_INTERVAL
        queue_checked = failing = False
        while not self._stop.is_set():
            # Fetch a new batch only once few enough messages are still running.
            while not until(lambda: self._in_flight <= self.options.new_batch_threshold, 0.2, self._idle) \
                    and not self._stop.is_set():
                pass
            if self._stop.is_set():
                break
            try:
                if not queue_checked:
                    self._create_if_missing(self._client)
                    queue_checked = True
                batch = list(self._client.receive_messages(
                    messages_per_page=self.options.batch_size, max_messages=self.options.batch_size,
                    visibility_timeout=RECEIVE_VISIBILITY_TIMEOUT))
            except AzureError as error:
                queue_checked = False
                # Warn once per outage; the endpoint (host:port) helps, the connection string would leak a key.
                log.log(logging.DEBUG if failing else logging.WARNING, "Polling queue %s at %s for %s failed: %s",
                        self.queue_name, self._client.primary_hostname, self.function.name, type(error).__name__)
                failing = True
                batch = []
            else:
                if failing:
                    log.info("Polling queue %s for %s works again", self.queue_name, self.function.name)
                failing = False
            if batch:
                delay = MIN_POLLING_INTERVAL
                for message in batch:
                    with self._idle:
                        self._in_flight += 1
                    threading.Thread(target=self._process, args=(message,), daemon=True,
                                     name=f"devhost-queue-{self.function.name}-{message.id}").start()
                continue
            if sleep_unless(self._stop, delay):
                break
            delay = min(delay * 2, max(self.options.max_polling_interval, MIN_POLLING_INTERVAL))

    @staticmethod
    def _create_if_missing(client: QueueClient) -> None:
        with contextlib.suppress(ResourceExistsError):
            client.create_queue()

    def _process(self, message: QueueMessage) -> None:
        try:
            self._process_message(message)
        except AzureError as error:
            log.warning("Completing message %s of queue %s failed: %s", message.id, self.queue_name,
                        type(error).__name__)
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def _process_message(self, message: QueueMessage) -> None:
        max_dequeue = self.options.max_dequeue_count
        if message.dequeue_count > max_dequeue:  # e.g. the host died while running it last time
            self._move_to_poison(message, f"Message has reached MaxDequeueCount of {max_dequeue}.")
            return
        try:
            body = decode_body(message.content, self.options.message_encoding)
        except ValueError:
            self._move_to_poison(message, f"Message {message.id} is not valid base64 (messageEncoding is base64).")
            return
        trigger = func_queue.QueueMessage(
            id=message.id, body=body, dequeue_count=message.dequeue_count, expiration_time=message.expires_on,
            insertion_time=message.inserted_on, time_next_visible=message.next_visible_on,
            pop_receipt=message.pop_receipt)
        try:
            self.host.invoke(self.function, trigger, f"New queue message detected on '{self.queue_name}'.")
        except Exception:  # already logged by invoke, as the host logs a failed invocation
            if self._poison is None:
                return  # like the host: left invisible, to avoid a fast infinite loop
            if message.dequeue_count >= max_dequeue:
                self._move_to_poison(message, f"Message has reached MaxDequeueCount of {max_dequeue}.")
            else:
                self._client.update_message(message.id, pop_receipt=message.pop_receipt,
                                            visibility_timeout=int(self.options.visibility_timeout))
            return
        self._delete(message)

    def _move_to_poison(self, message: QueueMessage, reason: str) -> None:
        if self._poison is None:
            log.warning("%s Queue %s has no poison queue; the message stays invisible.", reason, self.queue_name)
            return
        log.warning("%s Moving message to queue '%s'.", reason, self._poison.queue_name)
        self._create_if_missing(self._poison)
        self._poison.send_message(message.content)  # the original queue text (base64 of the body)
        self._delete(message)

    def _delete(self, message: QueueMessage) -> None:
        try:
            self._client.delete_message(message.id, message.pop_receipt)
        except ResourceNotFoundError:  # already gone, or its pop receipt changed: nothing to do
            log.debug("Message %s of queue %s was already deleted", message.id, self.queue_name)
