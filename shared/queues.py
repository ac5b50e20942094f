"""The background jobs' Storage queue, on azure-storage-queue.

Messages are JSON, base64-encoded as the Functions host expects by default (`messageEncoding`
base64 in host.json). The queue is created on first use. A message can be hidden for a while
when sent (`delay`), which is how the timer paces work that has a rate limit behind it.
"""

from __future__ import annotations

import contextlib
import json
import threading
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

    def peek_count(self) -> int:
        return int(self.client.get_queue_properties().approximate_message_count)
