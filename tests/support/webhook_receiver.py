"""The web app's webhook endpoint, for tests: a loopback HTTP server that keeps every POST (headers
and the exact body bytes) and answers 204, or what `answer_with` says while the web app is "down"."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tools.waits import join


class WebhookReceiver:
    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.refused: list[bytes] = []
        self.status = 204
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    status = receiver.status
                    if 200 <= status < 300:
                        receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    else:
                        receiver.refused.append(body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.2,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks/10kc"

    def answer_with(self, status: int) -> None:
        with self._lock:
            self.status = status

    def changes(self) -> list[dict]:
        with self._lock:
            return [json.loads(body) for _, body in self.received]

    def wait(self, count: int, within: float = 30.0) -> list[dict]:
        deadline = time.monotonic() + within
        while len(self.changes()) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.changes())} of {count} webhook(s) within {within:.0f}s")
            time.sleep(0.1)
        return self.changes()

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()
        join(self._thread, 5)


def verify(headers: dict[str, str], body: bytes, keys: list[str], *, tolerance: int = 300) -> list[bool]:
    """What a receiver does (shared/API.md): parse `t` and each `v1`, refuse a `t` more than
    `tolerance` seconds from now, and say for each key whether one `v1` is its HMAC."""
    parts = [part.split("=", 1) for part in headers["x-10kc-signature"].split(",")]
    stamps = [value for name, value in parts if name == "t"]
    signatures = [value for name, value in parts if name == "v1"]
    assert len(stamps) == 1 and signatures
    assert abs(int(time.time()) - int(stamps[0])) <= tolerance
    signed = stamps[0].encode() + b"." + body
    return [any(hmac.compare_digest(hmac.new(key.encode(), signed, hashlib.sha256).hexdigest(), s)
                for s in signatures) for key in keys]


@contextlib.contextmanager
def receiving(monkeypatch: Any) -> Iterator[WebhookReceiver]:
    """A receiver, WEBHOOK_URL pointing at it, and a signing secret of the test's own
    (`receiver.secret`, its value in `receiver.keys`) in the sandbox's vault, for a test that runs
    the service in process (the `app_env` fixture)."""
    from shared.clients import secret_store
    from tests.conftest import clear_caches

    with WebhookReceiver() as receiver:
        receiver.secret = f"webhook-{uuid.uuid4().hex[:12]}"  # the sandbox's vault outlives tests
        monkeypatch.setenv("WEBHOOK_URL", receiver.url)
        monkeypatch.setenv("WEBHOOK_SECRET_NAME", receiver.secret)
        clear_caches()
        receiver.keys = [f"first-key-{time.time_ns()}"]
        secret_store().set(receiver.secret, receiver.keys[0])
        yield receiver
