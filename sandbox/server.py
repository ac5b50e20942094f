"""The HTTPS server: TLS, HTTP/1.1 keep-alive, dispatch by path, common headers, the request log.

``Sandbox`` is the application object every handler sees as ``req.sandbox``: base URL, PKI,
state (with its lock), vault and request log. ``AREAS`` lists the modules whose ``ROUTES`` make
the route table, in order; a new area (Graph, consent pages, faults) adds its module there.

Every answer carries ``request-id`` and ``client-request-id`` (the client's ``client-request-id``
or ``x-ms-client-request-id`` echoed, else a new GUID) and a correct ``Content-Length``.
An unknown path is a 404 with a Graph-style error body; a known path with another method a 405.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import sys
import threading
import time
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import unquote

from tools.waits import join

from . import consent, control, faults, graph, identity, keyvault
from .faults import Fault, FaultPlan, fault_response
from .keyvault import VaultStore
from .pki import ensure_pki
from .state import RequestLog, SandboxState
from .web import HttpError, Request, Response, Router, graph_error, utc_now_rfc3339

AREAS: tuple[ModuleType, ...] = (control, faults, identity, consent, keyvault, graph)
LOOPBACK = "127.0.0.1"
MAX_BODY_BYTES = 16 * 1024 * 1024
IDLE_CONNECTION_TIMEOUT = 60.0
# Query parameters whose values never reach the request log.
SENSITIVE_QUERY_KEYS = {"client_secret", "client_assertion", "code", "code_verifier", "refresh_token",
                        "access_token", "id_token", "assertion", "password", "secret", "sig"}


def build_router(areas: tuple[ModuleType, ...] = AREAS) -> Router:
    router = Router()
    for area in areas:
        router.extend(area.ROUTES)
    return router


class Sandbox:
    """The application: configuration and state shared by all handlers."""

    def __init__(self, state_dir: Path, seed_path: Path, port: int, *, log_stream: Any = None):
        self.state_dir = Path(state_dir)
        self.port = port
        self.base_url = f"https://{LOOPBACK}:{port}"
        self.pki = ensure_pki(self.state_dir)
        self.vault = VaultStore(self.state_dir / "vault.json")
        self.state = SandboxState.from_seed_file(Path(seed_path), self.vault)
        self.request_log = RequestLog()
        self.grants = consent.GrantStore()  # authorization codes and refresh tokens (sandbox/grants.py)
        self.faults = FaultPlan()
        self.calendars = graph.CalendarStore(self.state)  # Graph calendars; rebuilt after a reset (graph/store.py)
        # Change notifications: subscriptions and their deliveries (graph/subscriptions.py); threads start lazily.
        self.subscriptions = graph.SubscriptionStore(self.state, self.calendars)
        self.router = build_router()
        self.log_stream = log_stream  # where one line per request goes (stderr for the CLI), or None

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.pki.server_cert_path, self.pki.server_key_path)
        return context


def redact_query(query: str) -> str:
    parts = []
    for part in query.split("&") if query else []:
        key, sep, _ = part.partition("=")
        parts.append(f"{key}=REDACTED" if sep and unquote(key).lower() in SENSITIVE_QUERY_KEYS else part)
    return "&".join(parts)


class _BadBody(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class SandboxRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sandbox"
    sys_version = ""
    timeout = IDLE_CONNECTION_TIMEOUT
    server: SandboxHTTPServer

    def setup(self) -> None:
        # The TLS handshake runs here, in the connection's own thread, not in the accept loop.
        self.request.settimeout(10)
        self.request.do_handshake()
        super().setup()

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        """Silence http.server's own access log; ``_dispatch`` logs one line per request."""

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks, total = [], 0
            while True:
                line = self.rfile.readline(1024)
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise _BadBody(400, "malformed chunked body") from None
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY_BYTES:
                    raise _BadBody(413, "request body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)
        length_text = self.headers.get("Content-Length") or "0"
        try:
            length = int(length_text)
        except ValueError:
            raise _BadBody(400, "invalid Content-Length") from None
        if length < 0:
            raise _BadBody(400, "invalid Content-Length")
        if length > MAX_BODY_BYTES:
            raise _BadBody(413, "request body too large")
        return self.rfile.read(length) if length else b""

    def _dispatch(self) -> None:
        start = time.monotonic()
        started_at = utc_now_rfc3339()
        sandbox = self.server.sandbox
        raw_path, _, query = self.path.partition("?")
        if raw_path.startswith(("https://", "http://")):  # absolute-form request target
            raw_path = "/" + raw_path.split("/", 3)[3] if raw_path.count("/") >= 3 else "/"
        headers = {k.lower(): v for k, v in self.headers.items()}
        client_request_id = (headers.get("client-request-id") or headers.get("x-ms-client-request-id")
                             or str(uuid.uuid4()))
        req = Request(method=self.command, path=raw_path, query_string=query, headers=headers, body=b"",
                      sandbox=sandbox, request_id=str(uuid.uuid4()), client_request_id=client_request_id)
        try:
            req.body = self._read_body()
        except _BadBody as exc:
            self.close_connection = True
            response, fault = graph_error(req, exc.status, "BadRequest", exc.message), None
        else:
            response, fault = self._route_with_faults(req)
        # Logged before the answer leaves: a client that reads the log right after its answer
        # (another connection, another server thread) must find this request there.
        duration_ms = round((time.monotonic() - start) * 1000, 1)
        if not raw_path.startswith("/_sandbox/"):
            entry = {"method": self.command, "path": raw_path, "query": redact_query(query),
                     "status": response.status, "time": started_at, "durationMs": duration_ms,
                     "clientRequestId": client_request_id}
            if fault is not None:
                entry["fault"] = "drop" if fault.drop else ("status" if fault.status else "latency")
            sandbox.request_log.add(entry)
        if fault is not None and fault.drop:
            # The work is done; the answer never arrives (as when a connection breaks mid-reply).
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.request.shutdown(socket.SHUT_RDWR)
        else:
            try:
                self._send(req, response)
            except OSError:
                # The client went away (gave up, or died) before the answer: the request was still
                # received and done, so it is logged like any other.
                self.close_connection = True
        if sandbox.log_stream is not None:
            with contextlib.suppress(Exception):
                print(f"{started_at} {self.command} {raw_path} -> {response.status} ({duration_ms} ms)",
                      file=sandbox.log_stream, flush=True)

    def _route_with_faults(self, req: Request) -> tuple[Response, Fault | None]:
        """Route, unless a fault rule (``/_sandbox/faults``) takes this request."""
        fault = None if req.path.startswith("/_sandbox/") else req.sandbox.faults.take(req.method, req.path)
        if fault is None:
            return self._route(req), None
        if fault.latency_ms and not fault.latency_after_work:
            time.sleep(fault.latency_ms / 1000)
        if fault.status is not None:
            return fault_response(req, fault), fault
        response = self._route(req)
        if fault.latency_ms and fault.latency_after_work:
            time.sleep(fault.latency_ms / 1000)
        return response, fault

    def _route(self, req: Request) -> Response:
        handler, match, path_known = req.sandbox.router.resolve(req.method, req.path)
        try:
            if handler is None:
                if path_known:
                    return graph_error(req, 405, "MethodNotAllowed",
                                       f"The method {req.method} is not allowed for {req.path}.")
                return graph_error(req, 404, "NotFound", f"No sandbox route matches {req.method} {req.path}.")
            req.match = match
            return handler(req)
        except HttpError as exc:
            return exc.response
        except Exception:
            traceback.print_exc(file=sys.stderr)
            return graph_error(req, 500, "InternalServerError", "The sandbox failed to handle the request.")

    def _send(self, req: Request, response: Response) -> None:
        self.send_response(response.status)
        names = {name.lower() for name, _ in response.headers}
        for name, value in response.headers:
            self.send_header(name, value)
        if "request-id" not in names:
            self.send_header("request-id", req.request_id)
        if "client-request-id" not in names:
            self.send_header("client-request-id", req.client_request_id)
        if "x-ms-client-request-id" in req.headers and "x-ms-client-request-id" not in names:
            self.send_header("x-ms-client-request-id", req.headers["x-ms-client-request-id"])
        body = response.body if response.status not in (204, 304) else b""
        if response.status not in (204, 304):
            self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch


class SandboxHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, sandbox: Sandbox, host: str = LOOPBACK):
        if host not in (LOOPBACK, "localhost"):
            raise ValueError(f"the sandbox binds only to {LOOPBACK}, not {host!r}")
        self.sandbox = sandbox
        self._ssl_context = sandbox.ssl_context()
        super().__init__((LOOPBACK, sandbox.port), SandboxRequestHandler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = self.socket.accept()
        # Headers and body go out as separate TLS records: without TCP_NODELAY, Nagle plus the
        # client's delayed ACK would add ~40 ms to every answer.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self._ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ssl.SSLError, ConnectionError, TimeoutError, OSError)):
            return  # a client that went away or failed the TLS handshake: nothing to report
        super().handle_error(request, client_address)


class RunningServer:
    """A server running in a background thread of this process (see ``serve_in_thread``)."""

    def __init__(self, server: SandboxHTTPServer):
        self.server = server
        self.sandbox = server.sandbox
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="sandbox-server", daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return self.sandbox.base_url

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        join(self._thread, 5)


def serve_in_thread(state_dir: Path, seed_path: Path, port: int, *, log_stream: Any = None) -> RunningServer:
    """Start a sandbox inside this process (for in-process tests); ``.stop()`` it after."""
    return RunningServer(SandboxHTTPServer(Sandbox(state_dir, seed_path, port, log_stream=log_stream)))
