"""The HTTP front end: HTTP/1.1 on one asyncio event loop, answering with `Reply`s.

Routing and function calls live in `devhost.host`; this module only speaks HTTP/1.1 (keep-alive,
Content-Length, chunked request bodies, `Expect: 100-continue`, the 100 MB request limit of
Azure). One loop thread reads and writes every connection, as the Functions host's front end
does for its worker; what answers a request is either a coroutine run on that loop (the host's
`answer`, so async functions run there as on the Python worker's loop) or a plain function run
on an executor thread (the local console). A thread per connection, as `http.server` has, made
32 connections of one burst fight over the GIL for their parsing.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus

log = logging.getLogger("devhost.http")

MAX_REQUEST_BODY = 100 * 1024 * 1024  # Azure Functions rejects larger requests with 413
MAX_HEADER_BYTES = 64 * 1024  # request line and headers together; more is 431
MAX_HEADERS = 100  # as http.server: more is 431
IDLE_SECONDS = 300  # an idle keep-alive connection is closed after this long
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
AsyncDispatcher = Callable[[str, str, list[tuple[str, str]], bytes], Awaitable[Reply]]


class DevServer:
    """Listens at `address` from construction (a busy port raises OSError there); `serve_forever`
    runs the loop in the calling thread. `answer` is a coroutine function (run on the loop) or a
    plain `Dispatcher` (run on an executor thread)."""

    def __init__(self, address: tuple[str, int], answer: Dispatcher | AsyncDispatcher) -> None:
        self.answer = answer
        self._async = inspect.iscoroutinefunction(answer)
        # socketserver's backlog of 5 reset connections when dozens of clients connect at once (a
        # burst of Graph notifications); a real front end queues them.
        self.socket = socket.create_server(address, backlog=128)
        self.server_address = self.socket.getsockname()[:2]
        self.stopping = False
        self.loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._idle: set[asyncio.StreamWriter] = set()  # connections waiting for a request
        self._connections: set[asyncio.Task[None]] = set()
        self._stopped: asyncio.Event | None = None
        self._finished = False
        self._date = (0, "")

    # ----- lifecycle (the calls socketserver's servers take) -----

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._serve())
        finally:
            with contextlib.suppress(Exception):
                self.loop.run_until_complete(self.loop.shutdown_default_executor())
            self.loop.close()
            self.socket.close()

    async def _serve(self) -> None:
        self._server = await asyncio.start_server(self._connection, sock=self.socket, limit=MAX_HEADER_BYTES)
        self._stopped = asyncio.Event()
        if not self._finished:
            await self._stopped.wait()
        self._server.close()
        # Requests already running finish and answer; nothing new is read.
        while self._connections:
            await asyncio.wait(set(self._connections))

    def shutdown(self) -> None:
        """Stop accepting connections (those open are ended by `close_connections`)."""
        self._call(self._stop_accepting)

    def close_connections(self) -> None:
        """Idle keep-alive connections close, running requests still answer (then their
        connections close), and a request that still comes in on one gets 503 and the close."""
        self.stopping = True
        self._call(self._close_idle)

    def server_close(self) -> None:
        """Let the loop end once running requests have answered."""
        self._call(self._finish)

    def _call(self, callback: Callable[[], None]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is already closed
            self.loop.call_soon_threadsafe(callback)

    def _stop_accepting(self) -> None:
        if self._server is not None:
            self._server.close()

    def _close_idle(self) -> None:
        for writer in list(self._idle):
            writer.close()

    def _finish(self) -> None:
        self.stopping = self._finished = True
        self._close_idle()
        if self._stopped is not None:
            self._stopped.set()

    # ----- one connection -----

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:  # always, in a connection's callback
            self._connections.add(task)
        peer = writer.get_extra_info("peername")
        try:
            while not self.stopping and await self._exchange(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            log.debug("Connection from %s ended", peer)
        except Exception:
            log.exception("devhost failed on a connection from %s", peer)
        finally:
            self._idle.discard(writer)
            if task is not None:
                self._connections.discard(task)
            writer.close()

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Read one request and answer it; False when the connection is to close."""
        self._idle.add(writer)
        # An idle connection, or a request that stops coming in, is closed after IDLE_SECONDS.
        idle = self.loop.call_later(IDLE_SECONDS, writer.close)
        try:
            request = await self._read(reader, writer)
        finally:
            idle.cancel()
            self._idle.discard(writer)
        return request is not None and await self._answer(writer, *request)

    async def _read(self, reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter) -> tuple[str, str, list[tuple[str, str]], bytes, bool] | None:
        """(method, target, headers, body, close after answering), or None when the connection
        ends here (closed by the client, or answered with an error)."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            await self._write(writer, "GET", Reply(431), close=True)
            return None
        except asyncio.IncompleteReadError:
            return None  # closed by the client (or idle), between requests
        self._idle.discard(writer)
        try:
            method, target, version, headers = _parse_head(head)
        except _BadRequest as error:
            await self._write(writer, "GET", Reply(error.status), close=True)
            return None
        if self.stopping:
            await self._write(writer, method, Reply(503), close=True)
            return None
        fields = {name.lower(): value for name, value in headers}
        tokens = {t.strip().lower() for t in fields.get("connection", "").split(",")}
        close = "close" in tokens or (version == "HTTP/1.0" and "keep-alive" not in tokens)
        try:
            if fields.get("expect", "").lower() == "100-continue" and version != "HTTP/1.0":
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            body = await _read_body(reader, fields)
        except _BadRequest as error:
            await self._write(writer, method, Reply(error.status), close=True)
            return None
        return method, target, headers, body, close

    async def _answer(self, writer: asyncio.StreamWriter, method: str, target: str, headers: list[tuple[str, str]],
                      body: bytes, close: bool) -> bool:
        try:
            if self._async:
                reply = await self.answer(method, target, headers, body)  # type: ignore[misc]
            else:
                reply = await self.loop.run_in_executor(None, self.answer, method, target, headers, body)
        except Exception:
            log.exception("devhost failed on %s %s", method, target.split("?")[0])
            reply = Reply(500)
        log.debug("%s %s -> %s", method, target.split("?")[0], reply.status)  # no query: it may hold secrets
        await self._write(writer, method, reply, close=close or self.stopping)
        return not (close or self.stopping)

    async def _write(self, writer: asyncio.StreamWriter, method: str, reply: Reply, *, close: bool) -> None:
        body = reply.body if reply.status >= 200 and reply.status not in (204, 304) else b""
        try:
            phrase = HTTPStatus(reply.status).phrase
        except ValueError:
            phrase = ""
        lines = [f"HTTP/1.1 {reply.status} {phrase}", "Server: devhost", f"Date: {self._now()}"]
        lines += [f"{name}: {value}" for name, value in reply.headers if name.lower() not in _HOP_BY_HOP]
        lines.append(f"Content-Length: {len(body)}")
        if close:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
        # One write: head and body leave together, so Nagle's algorithm cannot hold the body back.
        writer.write(head + body if method != "HEAD" and body else head)
        await writer.drain()

    def _now(self) -> str:
        second = int(time.time())
        if self._date[0] != second:
            self._date = (second, formatdate(second, usegmt=True))
        return self._date[1]


def _parse_head(head: bytes) -> tuple[str, str, str, list[tuple[str, str]]]:
    """The request line and headers (obsolete line folding is refused, as RFC 9112 allows)."""
    lines = head[:-4].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[0].isalpha() or not parts[2].startswith("HTTP/1."):
        raise _BadRequest(400)
    if len(lines) - 1 > MAX_HEADERS:
        raise _BadRequest(431)
    headers = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip() or line[0] in " \t":
            raise _BadRequest(400)
        headers.append((name, value.strip(" \t")))
    return parts[0], parts[1], parts[2], headers


async def _read_body(reader: asyncio.StreamReader, fields: dict[str, str]) -> bytes:
    if "chunked" in fields.get("transfer-encoding", "").lower():
        return await _read_chunked(reader)
    try:
        length = int(fields.get("content-length") or 0)
    except ValueError:
        raise _BadRequest(400) from None
    if length < 0:
        raise _BadRequest(400)
    if length > MAX_REQUEST_BODY:
        raise _BadRequest(413)
    return await reader.readexactly(length) if length else b""


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    data = bytearray()
    while True:
        try:
            size = int((await reader.readline()).split(b";")[0].strip(), 16)
        except ValueError:
            raise _BadRequest(400) from None
        if size == 0:
            break
        if len(data) + size > MAX_REQUEST_BODY:
            raise _BadRequest(413)
        data += await reader.readexactly(size)
        await reader.readline()  # the CRLF after each chunk
    while (await reader.readline()) not in (b"\r\n", b"\n", b""):  # trailers
        pass
    return bytes(data)
