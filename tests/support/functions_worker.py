"""The parts of the Azure Functions Python worker that decide what a log line becomes, rebuilt
from its source (Azure/azure-functions-python-worker, azure_functions_worker/dispatcher.py and
functions.py; the same in the newer azure_functions_runtime) so tests can hand it our records:

- `RpcLogHandler`: the handler the worker puts on the root logger (AsyncLoggingHandler), with
  what Dispatcher.on_logging sends the host for a record: the formatted message, the level, the
  logger name as category, System or User, and the invocation id of the thread (or task) that
  logs. Nothing else of the record leaves the process on this path.
- `invoke`: how the worker calls a sync function: a `context` argument only if the function's
  signature names one (FunctionLoader.is_context_required), the invocation id put in the
  thread-local storage that `context.thread_local_storage` is, the call made on an executor
  thread (run_in_executor -> _run_sync_func), and, when OpenTelemetry is on, the invocation's
  trace context attached there first (configure_opentelemetry).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import azure.functions as func

SYSTEM_LOG_PREFIX = "azure_functions_worker"
SDK_LOG_PREFIX = "azure.functions"
AZURE_INVOCATION_ID = "__azure_function_invocation_id__"

# The worker's module-level thread-local: every Context's thread_local_storage is this object.
invocation_local = threading.local()


def current_invocation_id() -> str | None:
    """dispatcher.get_current_invocation_id: the running task's, else this thread's."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is not None:
        task = asyncio.current_task(loop)
        if task is not None and getattr(task, AZURE_INVOCATION_ID, None) is not None:
            return getattr(task, AZURE_INVOCATION_ID)
    return getattr(invocation_local, "invocation_id", None)


def _rpc_level(levelno: int) -> str:
    for threshold, name in ((logging.CRITICAL, "Critical"), (logging.ERROR, "Error"), (logging.WARNING, "Warning"),
                            (logging.INFO, "Information"), (logging.DEBUG, "Debug")):
        if levelno >= threshold:
            return name
    return "None"


class RpcLogHandler(logging.Handler):
    """AsyncLoggingHandler.emit + Dispatcher.on_logging: each record as the RpcLog fields the host
    receives (kept in `sent` instead of a gRPC queue)."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[dict[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = self.format(record)
        system = record.name.startswith(SYSTEM_LOG_PREFIX) or record.name.startswith(SDK_LOG_PREFIX)
        log = {"level": _rpc_level(record.levelno), "message": message, "category": record.name,
               "log_category": "System" if system else "User"}
        invocation_id = current_invocation_id()
        if invocation_id is not None:
            log["invocation_id"] = invocation_id
        self.sent.append(log)


@dataclass(frozen=True)
class TraceContext:
    trace_parent: str
    trace_state: str = ""
    attributes: dict[str, str] = field(default_factory=dict)


class Context(func.Context):
    """bindings.Context as the worker builds it for an invocation."""

    def __init__(self, function_name: str, invocation_id: str, trace_parent: str) -> None:
        self._function_name, self._invocation_id = function_name, invocation_id
        self._trace_context = TraceContext(trace_parent)

    invocation_id = property(lambda self: self._invocation_id)
    function_name = property(lambda self: self._function_name)
    function_directory = property(lambda self: ".")
    thread_local_storage = property(lambda self: invocation_local)
    trace_context = property(lambda self: self._trace_context)
    retry_context = property(lambda self: None)


def requires_context(function: Any) -> bool:
    """FunctionLoader.is_context_required: a parameter named `context` that no binding takes."""
    return "context" in inspect.signature(function).parameters


def _attach_trace_context(context: Context) -> None:
    """Dispatcher.configure_opentelemetry: the invocation's traceparent becomes the current context."""
    from opentelemetry import context as context_api
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier = {"traceparent": context.trace_context.trace_parent, "tracestate": context.trace_context.trace_state}
    context_api.attach(TraceContextTextMapPropagator().extract(carrier))


def invoke(function: Any, arguments: dict[str, Any], context: Context, *, opentelemetry: bool = False) -> Any:
    """Call a sync function the way the worker does (see the module's docstring)."""
    args = dict(arguments)
    context.thread_local_storage.invocation_id = context.invocation_id
    if requires_context(function):
        args["context"] = context

    def run_sync() -> Any:  # Dispatcher._run_sync_func
        context.thread_local_storage.invocation_id = context.invocation_id
        try:
            if opentelemetry:
                _attach_trace_context(context)
            return function(**args)
        finally:
            context.thread_local_storage.invocation_id = None

    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(run_sync).result()
    finally:
        # The worker leaves its own thread's value set; a test's next line must not inherit it.
        context.thread_local_storage.invocation_id = None
