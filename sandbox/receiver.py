"""A webhook for tests: a small HTTP server on 127.0.0.1 that answers Graph's validation request
and records the change and lifecycle notifications the sandbox POSTs to it (http is allowed on
127.0.0.1 only; ``sandbox.graph.subscriptions``).

    with NotificationReceiver() as hook:
        url = hook.url("/notify")                      # http://127.0.0.1:<port>/notify
        ... create a subscription with notificationUrl=url ...
        [item] = hook.wait_for(1, "/notify")           # the changeNotification items received
        hook.answer("/notify", 500, 500)               # the next two POSTs answer 500, then 202 again
        hook.validation("/notify", "wrong")            # echo, wrong, encoded, html, status, slow

Validation modes: ``echo`` (200, text/plain, the decoded token: what Graph wants), ``wrong``
(another text), ``encoded`` (the token still URL-encoded), ``html`` (the token as text/html),
``status`` (500), ``slow`` (echo after ``delay`` seconds). Notifications are answered 202 unless
``answer`` queued other statuses; ``delay`` holds each answer that long.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from tools.waits import join


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def _reply(self, status: int, body: bytes = b"", content_type: str = "text/plain; charset=utf-8") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def do_POST(self) -> None:
        receiver = self.server.receiver
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        query = parse_qs(parts.query, keep_blank_values=True)
        if "validationToken" in query:
            token = query["validationToken"][0]
            mode, delay = receiver.validation_mode(parts.path)
            receiver.record_validation(parts.path, token, dict(self.headers))
            if mode == "slow":
                time.sleep(delay)
            if mode == "status":
                self._reply(500, b"no")
            elif mode == "wrong":
                self._reply(200, b"not the token")
            elif mode == "encoded":
                self._reply(200, quote(token, safe="").encode())
            elif mode == "html":
                self._reply(200, token.encode(), "text/html; charset=utf-8")
            else:
                self._reply(200, token.encode("utf-8"))
            return
        status, delay = receiver.next_answer(parts.path)
        try:
            body = json.loads(raw.decode("utf-8")) if raw else None
        except ValueError:
            body = None
        receiver.record(parts.path, parts.query, body, dict(self.headers), status)
        if delay:
            time.sleep(delay)
        with contextlib.suppress(OSError):  # the sandbox may have given up waiting
            self._reply(status)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    receiver: NotificationReceiver


class NotificationReceiver:
    def __init__(self) -> None:
        self._lock = threading.Condition()
        self.posts: list[dict[str, Any]] = []  # every notification POST: path, query, body, headers, status, at
        self.validations: list[dict[str, Any]] = []  # path, token, headers, at
        self._answers: dict[str, deque[int]] = {}
        self._delays: dict[str, float] = {}
        self._modes: dict[str, tuple[str, float]] = {}
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.receiver = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="notification-receiver", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str = "/notify") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    # -- behaviour ----------------------------------------------------------------------------

    def validation(self, path: str, mode: str, delay: float = 0.0) -> None:
        with self._lock:
            self._modes[path] = (mode, delay)

    def validation_mode(self, path: str) -> tuple[str, float]:
        with self._lock:
            return self._modes.get(path, ("echo", 0.0))

    def answer(self, path: str, *statuses: int, delay: float | None = None) -> None:
        """Queue the statuses of the next POSTs to ``path`` (then 202 again); ``delay`` holds every answer."""
        with self._lock:
            self._answers.setdefault(path, deque()).extend(statuses)
            if delay is not None:
                self._delays[path] = delay

    def next_answer(self, path: str) -> tuple[int, float]:
        with self._lock:
            queue = self._answers.get(path)
            status = queue.popleft() if queue else 202
            return status, self._delays.get(path, 0.0)

    # -- what arrived ----------------------------------------------------------------------------

    def record_validation(self, path: str, token: str, headers: dict[str, str]) -> None:
        with self._lock:
            self.validations.append({"path": path, "token": token, "headers": headers, "at": time.monotonic()})
            self._lock.notify_all()

    def record(self, path: str, query: str, body: Any, headers: dict[str, str], status: int) -> None:
        with self._lock:
            self.posts.append({"path": path, "query": query, "body": body, "headers": headers, "status": status,
                               "at": time.monotonic()})
            self._lock.notify_all()

    def items(self, path: str | None = None, *, accepted_only: bool = False) -> list[dict[str, Any]]:
        """Every notification item received (at ``path``), in arrival order."""
        with self._lock:
            return [item for post in self.posts if path in (None, post["path"])
                    and (not accepted_only or 200 <= post["status"] < 300)
                    for item in ((post["body"] or {}).get("value") or [])]

    def wait_for(self, count: int, path: str | None = None, *, timeout: float = 10.0,
                 accepted_only: bool = False) -> list[dict[str, Any]]:
        """Wait until at least ``count`` items arrived (at ``path``); answers them all."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                found = [item for post in self.posts if path in (None, post["path"])
                         and (not accepted_only or 200 <= post["status"] < 300)
                         for item in ((post["body"] or {}).get("value") or [])]
                remaining = deadline - time.monotonic()
                if len(found) >= count or remaining <= 0:
                    return found
                self._lock.release()  # not self._lock.wait(): libfaketime hangs timed waits (tools/waits.py)
                try:
                    time.sleep(min(remaining, 0.02))
                finally:
                    self._lock.acquire()

    def quiet(self, seconds: float, path: str | None = None) -> list[dict[str, Any]]:
        """Wait ``seconds`` and answer what arrived (at ``path``) by then (to see that nothing more does)."""
        time.sleep(seconds)
        return self.items(path)

    def clear(self) -> None:
        with self._lock:
            self.posts.clear()
            self.validations.clear()
            self._answers.clear()
            self._delays.clear()
            self._modes.clear()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        join(self._thread, 5)

    def __enter__(self) -> NotificationReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
