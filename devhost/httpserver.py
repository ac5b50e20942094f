"""The HTTP front end: a standard-library server that reads requests and writes `Reply`s.

Routing and function calls live in `devhost.host`; this module only speaks HTTP/1.1 (keep-alive,
Content-Length, chunked request bodies, the 100 MB request limit of Azure).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger("devhost.http")

MAX_REQUEST_BODY = 100 * 1024 * 1024  # Azure Functions rejects larger requests with 413
_HOP_BY_HOP = {"connection", "content-length", "transfer-encoding", "keep-alive"}


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


class _BadRequest(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


# (method, request target, headers as (name, value) pairs, body) -> Reply
Dispatcher = Callable[[str, str, list[tuple[str, str]], bytes], Reply]


class DevServer(ThreadingHTTPServer):
    daemon_threads = True  # open keep-alive connections must not hold up shutdown
    # socketserver's backlog of 5 resets connections when dozens of clients connect at once (a
    # burst of Graph notifications); a real front end queues them.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], dispatch: Dispatcher) -> None:
        self.dispatch = dispatch
        self.stopping = False
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: socket.socket, client_address: Any) -> None:
        # Headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm and
        # the client's delayed ACK hold the body back ~40 ms on every keep-alive answer.
        with contextlib.suppress(OSError):
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: socket.socket) -> None:
        with self._lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """End reading on open connections: idle keep-alive ones close, running requests still answer,
        and a request that still comes in on one gets 503 and the connection closed."""
        self.stopping = True
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RD)

    def handle_error(self, request: socket.socket, client_address: Any) -> None:
        """A broken connection (e.g. closed by the client): not worth socketserver's traceback on stderr."""
        log.debug("Connection from %s failed: %s", client_address, sys.exc_info()[1])


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 300  # idle keep-alive connections are closed after this many seconds
    server: DevServer

    def _handle(self) -> None:
        if self.server.stopping:
            self._write(Reply(503), close=True)
            return
        try:
            body = self._read_body()
        except _BadRequest as error:
            self._write(Reply(error.status), close=True)
            return
        try:
            reply = self.server.dispatch(self.command, self.path, list(self.headers.items()), body)
        except Exception:
            log.exception("devhost failed on %s %s", self.command, self.path.split("?")[0])
            reply = Reply(500)
        self._write(reply)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _handle

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise _BadRequest(400) from None
        if length < 0:
            raise _BadRequest(400)
        if length > MAX_REQUEST_BODY:
            raise _BadRequest(413)
        return self.rfile.read(length) if length else b""

    def _read_chunked(self) -> bytes:
        data = bytearray()
        while True:
            try:
                size = int(self.rfile.readline(1024).split(b";")[0].strip(), 16)
            except ValueError:
                raise _BadRequest(400) from None
            if size == 0:
                break
            if len(data) + size > MAX_REQUEST_BODY:
                raise _BadRequest(413)
            data += self.rfile.read(size)
            self.rfile.readline(1024)  # the CRLF after each chunk
        while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):  # trailers
            pass
        return bytes(data)

    def _write(self, reply: Reply, close: bool = False) -> None:
        body = reply.body if reply.status >= 200 and reply.status not in (204, 304) else b""
        self.send_response(reply.status)
        for name, value in reply.headers:
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def version_string(self) -> str:
        return "devhost"

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # Without the query string: it may carry secrets (an OAuth code, a SAS token).
        log.debug("%s %s -> %s", self.command, self.path.split("?")[0], code)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s - %s", self.address_string(), format % args)
