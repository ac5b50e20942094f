"""Every log line carries the request id, the tenant id and the Functions invocation id, and the
ones that reach Application Insights keep them as dimensions.

What leaves the process is checked at the handlers that carry it on Azure, rebuilt from the
worker's source (tests/support/functions_worker.py): the worker's own gRPC handler (message,
level, category and invocation id only), and the Azure Monitor OpenTelemetry distro the worker
starts with PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY, run for real in a fresh process against
a local HTTPS ingestion endpoint (tests/support/worker_telemetry.py)."""

from __future__ import annotations

import contextvars
import inspect
import json
import logging
import os
import re
import subprocess
import sys
import typing
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import azure.functions as func
import pytest

from shared.http import endpoint
from shared.logs import (
    INVOCATION_ID,
    REQUEST_ID,
    TENANT_ID,
    JsonFormatter,
    RequestIdFilter,
    current_request_id,
    install_record_factory,
    request_context,
    tenant_context,
    with_invocation,
)
from tests.support.functions_worker import Context, RpcLogHandler, invoke, requires_context

ROOT = Path(__file__).resolve().parents[2]
log = logging.getLogger("tests.logs")
TENANT = "72F988BF-86F1-41AF-91AB-2D7CD011DB47"


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def handlers():
    """The records as made, and the worker's gRPC handler, both on the root logger."""
    install_record_factory()
    records, worker = Records(), RpcLogHandler()
    root = logging.getLogger()
    previous = root.level
    root.setLevel(logging.INFO)
    root.addHandler(records)
    root.addHandler(worker)
    yield records, worker
    root.removeHandler(records)
    root.removeHandler(worker)
    root.setLevel(previous)


def mine(records: list[logging.LogRecord]) -> list[logging.LogRecord]:
    return [r for r in records if r.name == "tests.logs"]


def a_request(request_id: str = "abc-123") -> func.HttpRequest:
    return func.HttpRequest(method="GET", url=f"http://x/api/tenants/{TENANT}/bookings", body=b"",
                            headers={"x-request-id": request_id}, route_params={"tenantId": TENANT})


def test_every_line_of_a_request_carries_its_request_tenant_and_invocation_ids(handlers):
    records, _ = handlers

    @endpoint
    def handler(req):
        log.info("inside the request")
        return func.HttpResponse("ok")

    context = Context("handler", str(uuid.uuid4()), f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01")
    invoke(handler, {"req": a_request()}, context)
    log.info("after the request")

    inside, after = mine(records.records)
    assert (getattr(inside, REQUEST_ID), getattr(inside, TENANT_ID), getattr(inside, INVOCATION_ID)) == (
        "abc-123", TENANT.lower(), context.invocation_id)
    assert getattr(after, REQUEST_ID) == "-"
    assert not hasattr(after, TENANT_ID) and not hasattr(after, INVOCATION_ID)  # never written as None
    assert current_request_id() == "-"


def test_the_workers_own_handler_forwards_only_message_level_category_and_invocation_id(handlers):
    """Without OpenTelemetry, this is all the host gets (and writes to AppTraces, adding its own
    InvocationId and Category dimensions): our ids would be lost, hence the distro."""
    _, worker = handlers

    @endpoint
    def handler(req):
        log.warning("inside the request: %s", "a detail")
        return func.HttpResponse("ok")

    context = Context("handler", str(uuid.uuid4()), f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01")
    invoke(handler, {"req": a_request("req-9")}, context)

    sent = [entry for entry in worker.sent if entry["category"] == "tests.logs"]
    assert sent == [{"level": "Warning", "message": "inside the request: a detail", "category": "tests.logs",
                     "log_category": "User", "invocation_id": context.invocation_id}]


def test_application_insights_keeps_the_ids_as_dimensions_of_each_line(tmp_path):
    """The worker's start with the distro, our logging, two invocations, the real exporter posting
    to a local ingestion endpoint: each line's customDimensions (AppTraces.Properties, and
    AppExceptions.Properties for a line with a traceback) hold the three ids and nothing else of
    ours, and its operation id is the invocation's trace id (the host's request telemetry has the
    same, so ops can go from a failed request to its lines)."""
    bicep = (ROOT / "infra" / "main.bicep").read_text()
    disabled = re.search(r"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS: '([^']+)'", bicep)
    assert disabled, "main.bicep sets OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"
    # libfaketime (make test-future) breaks the exporter's timed waits, and the probe has nothing
    # to do with dates: it runs on the real clock. Statsbeat would call Microsoft: off here only.
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAKETIME") and k != "LD_PRELOAD"}
    env.update(OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=disabled.group(1), FUNCTIONS_WORKER_RUNTIME="python",
               APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL="true", PYTHONPATH=str(ROOT))
    out = tmp_path / "seen.json"
    done = subprocess.run([sys.executable, "-m", "tests.support.worker_telemetry", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(out.read_text())

    assert seen["blocked"] == [], "the probe tried to reach beyond the loopback"
    assert seen["instrumented"] == [], "the app setting leaves the HTTP client instrumentations off"
    calls = {call["function"]: call for call in seen["calls"]}
    assert calls["confirm"]["status"] == 201 and calls["fails"]["status"] == 500
    by_message = {}
    for envelope in seen["envelopes"]:
        base = envelope["data"]["baseData"]
        text = base.get("message") or base.get("exceptions", [{}])[0].get("message")
        by_message[text] = envelope

    for text, call, kind in (("booking confirmed", "confirm", "Message"),
                             ("unhandled error", "fails", "Exception"),
                             ("request failed: internal_error The service failed to handle the request.", "fails",
                              "Message")):
        envelope = by_message[text]
        assert envelope["name"] == f"Microsoft.ApplicationInsights.{kind}"
        properties = envelope["data"]["baseData"]["properties"]
        expected = {"requestId": f"req-{call}", "tenantId": TENANT.lower(),
                    "invocationId": calls[call]["invocationId"]}
        assert {k: properties.get(k) for k in expected} == expected, text
        assert set(properties) - set(expected) <= {"logger_name"}, properties  # nothing else of a record
        assert envelope["tags"]["ai.operation.id"] == calls[call]["traceId"]
    assert by_message["unhandled error"]["data"]["baseData"]["exceptions"][0]["typeName"] == "RuntimeError"


def test_a_tenant_that_is_not_a_guid_is_never_logged(handlers):
    records, _ = handlers
    with tenant_context("ada@contoso.com"):
        log.info("one")
    with tenant_context(None):
        log.info("two")
    assert all(not hasattr(r, TENANT_ID) for r in mine(records.records))


def test_threads_started_with_a_copied_context_keep_the_ids(handlers):
    records, _ = handlers
    with request_context("req-t"), tenant_context(TENANT), ThreadPoolExecutor(max_workers=2) as pool:
        done = [pool.submit(contextvars.copy_context().run, log.info, "in a thread") for _ in range(2)]
        for future in done:
            future.result()
    assert [(getattr(r, REQUEST_ID), getattr(r, TENANT_ID)) for r in mine(records.records)] == [
        ("req-t", TENANT.lower())] * 2


def test_timer_and_queue_functions_get_the_invocation_id_through_with_invocation(handlers):
    records, _ = handlers

    @with_invocation
    def timer_function(timer: func.TimerRequest) -> None:
        with request_context("timer"):
            log.info("timer ran")

    assert requires_context(timer_function)
    assert typing.get_type_hints(timer_function)["timer"] is func.TimerRequest  # the worker reads these
    context = Context("timer_function", str(uuid.uuid4()), f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01")
    invoke(timer_function, {"timer": object()}, context)
    timer_function(object())  # a test calling it directly, without a context
    with_id, without = mine(records.records)
    assert getattr(with_id, INVOCATION_ID) == context.invocation_id
    assert not hasattr(without, INVOCATION_ID)


def test_a_blueprint_timer_under_with_invocation_keeps_its_binding_and_takes_context(handlers):
    records, _ = handlers
    bp = func.Blueprint()

    @bp.function_name("a_timer")
    @bp.timer_trigger(schedule="0 */5 * * * *", arg_name="timer", run_on_startup=False, use_monitor=False)
    @with_invocation
    def a_timer(timer: func.TimerRequest) -> None:
        log.info("ran")

    app = func.FunctionApp()
    app.register_functions(bp)
    (function,) = app.get_functions()
    assert [b.name for b in function.get_bindings()] == ["timer"]
    context = Context("a_timer", str(uuid.uuid4()), f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01")
    invoke(function.get_user_function(), {"timer": object()}, context)
    assert getattr(mine(records.records)[0], INVOCATION_ID) == context.invocation_id


def test_the_worker_passes_context_to_every_function_of_the_app():
    """The worker (and the local host) pass `context` only to a function whose signature names it,
    bind every other parameter to the binding of that name, and read the annotations. HTTP
    functions take it through @endpoint; timers and the queue function through @with_invocation."""
    import function_app
    from shared.platform_routes import app_functions

    functions = app_functions(function_app.app)
    assert len(functions) >= 12
    for function in functions:
        user, name = function.get_user_function(), function.get_function_name()
        assert requires_context(user), f"{name} does not take the worker's context (shared.logs.with_invocation)"
        assert set(inspect.signature(user).parameters) - {"context"} <= {b.name for b in function.get_bindings()}, name
        typing.get_type_hints(user)


def test_json_lines_carry_time_level_logger_ids_and_message(handlers):
    records, _ = handlers
    with request_context("req-7"), tenant_context(TENANT):
        log.info("graph %s -> %s", "GET", 200)
    entry = json.loads(JsonFormatter().format(mine(records.records)[0]))
    assert (entry["requestId"], entry["tenantId"]) == ("req-7", TENANT.lower())
    assert "invocationId" not in entry
    assert entry["message"] == "graph GET -> 200"
    assert (entry["level"], entry["logger"]) == ("INFO", "tests.logs")
    assert entry["time"].endswith("Z") and "T" in entry["time"]


def test_the_suites_log_file_filter_names_the_request_id(handlers):
    records, _ = handlers
    with request_context("req-8"):
        log.info("x")
    record = mine(records.records)[0]
    RequestIdFilter().filter(record)
    assert record.request_id == "req-8"
