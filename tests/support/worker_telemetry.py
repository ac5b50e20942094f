"""What Application Insights receives from a function's log lines when the Functions worker runs
the Azure Monitor OpenTelemetry distro (app setting PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY).

Run as `python -m tests.support.worker_telemetry OUT.json` (by tests/unit/test_logs.py, in a
fresh process: the distro sets process-wide providers). It does what the worker does at start
(initialize_azure_monitor: the Functions resource detector, `configure_azure_monitor` with the
connection string and the root logger; the worker's own gRPC log handler on the root logger too),
loads the app's logging the way function_app.py does (shared.logs.configure_logging), then
invokes `@endpoint` functions the way the worker invokes a sync function (tests/support/
functions_worker.py). The ingestion endpoint of the connection string is a local HTTPS server
(the sandbox's certificate authority, trusted through REQUESTS_CA_BUNDLE): the envelopes the real
exporter posts to it, and the RpcLog fields the worker's handler would send the host, are written
to OUT.json. Any connection this process tries to open to an address that is not the loopback is
refused and listed there too.
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import ssl
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

BLOCKED: list[str] = []


def _loopback_only() -> None:
    original = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else str(address)
        if self.family in (socket.AF_INET, socket.AF_INET6) and host not in ("127.0.0.1", "::1", "localhost"):
            BLOCKED.append(str(host))
            raise OSError(f"this probe reaches the loopback only, not {host}")
        return original(self, address)

    socket.socket.connect = connect  # type: ignore[method-assign]


class _Ingestion(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []
    lock: ClassVar[threading.Lock] = threading.Lock()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        items: list[Any] = []
        if self.path.endswith("/track"):
            parsed = json.loads(body or b"[]")
            items = parsed if isinstance(parsed, list) else [parsed]
            with self.lock:
                self.received.extend(items)
        answer = json.dumps({"itemsReceived": len(items), "itemsAccepted": len(items), "errors": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


def _serve(state: Path) -> ThreadingHTTPServer:
    from sandbox.pki import ensure_pki

    pki = ensure_pki(state)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ingestion)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(pki.server_cert_path, pki.server_key_path)
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    os.environ["REQUESTS_CA_BUNDLE"] = str(pki.ca_bundle_path)
    return server


def _start_like_the_worker(ingestion: str) -> None:
    """azure_functions_worker's initialize_azure_monitor, with the app's settings."""
    from azure.monitor.opentelemetry import configure_azure_monitor

    os.environ["APPLICATIONINSIGHTS_CONNECTION_STRING"] = (
        f"InstrumentationKey={uuid.uuid4()};IngestionEndpoint={ingestion};LiveEndpoint={ingestion}")
    os.environ.setdefault("OTEL_EXPERIMENTAL_RESOURCE_DETECTORS", "azure_functions")
    configure_azure_monitor(connection_string=os.environ["APPLICATIONINSIGHTS_CONNECTION_STRING"],
                            logger_name=os.environ.get("PYTHON_APPLICATIONINSIGHTS_LOGGER_NAME", ""))


def _functions() -> dict[str, Any]:
    """Two HTTP functions through the app's own decorator: one that logs and answers, one that fails."""
    import logging

    import azure.functions as func

    from shared.http import endpoint

    log = logging.getLogger("booking.service")  # a feature module's logger, as the app's lines have

    @endpoint
    def confirm(req: func.HttpRequest) -> func.HttpResponse:
        log.info("booking confirmed")
        return func.HttpResponse(status_code=201)

    @endpoint
    def fails(req: func.HttpRequest) -> func.HttpResponse:
        raise RuntimeError("a fault of ours")

    return {"confirm": confirm, "fails": fails}


def main(out: Path) -> int:
    _loopback_only()
    with tempfile.TemporaryDirectory(prefix="worker-telemetry-") as state:
        server = _serve(Path(state))
        ingestion = f"https://127.0.0.1:{server.server_address[1]}/"
        _start_like_the_worker(ingestion)

        import logging

        import azure.functions as func
        from opentelemetry.instrumentation.requests import RequestsInstrumentor
        from opentelemetry.instrumentation.urllib3 import URLLib3Instrumentor

        from shared.logs import configure_logging
        from tests.support.functions_worker import Context, RpcLogHandler, invoke

        instrumented = [name for name, instrumentor in (("requests", RequestsInstrumentor()),
                                                       ("urllib3", URLLib3Instrumentor()))
                        if instrumentor.is_instrumented_by_opentelemetry]
        worker_handler = RpcLogHandler()  # the worker's gRPC handler, also on the root logger
        logging.getLogger().addHandler(worker_handler)
        configure_logging("INFO")  # what function_app.py does at import

        calls = []
        for name, function in _functions().items():
            invocation_id, trace_id = str(uuid.uuid4()), uuid.uuid4().hex
            tenant_id = "72F988BF-86F1-41AF-91AB-2D7CD011DB47"
            request = func.HttpRequest("POST", f"https://app.example/api/tenants/{tenant_id}/bookings",
                                       headers={"x-request-id": f"req-{name}"}, body=b"{}",
                                       route_params={"tenantId": tenant_id})
            context = Context(name, invocation_id, f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01")
            answer = invoke(function, {"req": request}, context, opentelemetry=True)
            calls.append({"function": name, "invocationId": invocation_id, "traceId": trace_id,
                          "tenantId": tenant_id, "status": answer.status_code})

        from opentelemetry._logs import get_logger_provider

        get_logger_provider().force_flush()  # type: ignore[attr-defined]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with _Ingestion.lock:
                logs = [e for e in _Ingestion.received if e.get("name") in
                        ("Microsoft.ApplicationInsights.Message", "Microsoft.ApplicationInsights.Exception")]
            if len(logs) >= 2:
                break
            time.sleep(0.1)
        with _Ingestion.lock:
            envelopes = list(_Ingestion.received)
        out.write_text(json.dumps({"calls": calls, "envelopes": envelopes, "rpc_logs": worker_handler.sent,
                                   "instrumented": instrumented, "blocked": sorted(set(BLOCKED))}))
    sys.stdout.flush()
    os._exit(0)  # the distro's exporter threads would hold the process open for their intervals


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
