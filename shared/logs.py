"""Logging: the request id, the tenant id and the Functions invocation id on every line, and quiet
SDK loggers.

What reaches Application Insights (azure-functions-python-worker, dispatcher.py): the worker's
own handler sends the host each record's formatted message, level, logger name and the
invocation id, nothing else, so a field set with `extra=` or by a filter never becomes a
dimension on that path. It does through OpenTelemetry: with the app setting
PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY=true the worker calls `configure_azure_monitor()`
(azure-monitor-opentelemetry) at start, whose handler on the root logger turns every attribute a
record has beyond the standard ones into a custom dimension (AppTraces.Properties), and the host
(host.json `telemetryMode: OpenTelemetry`) stops forwarding the worker's lines, so none is
written twice.

So a log record factory puts `requestId`, `tenantId` and `invocationId` on every record made
while they are known (an unknown one is left off, never written as None), whatever handler
comes first. `contextvars` carry them across helper calls and into threads started with
`contextvars.copy_context().run`. The tenant id is the only customer identifier logged this way:
an Entra directory id, checked to be a GUID, never personal data.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import logging
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_tenant_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("tenant_id", default=None)
_invocation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("invocation_id", default=None)

# The dimension names, as they appear in AppTraces.Properties (and customDimensions).
REQUEST_ID, TENANT_ID, INVOCATION_ID = "requestId", "tenantId", "invocationId"

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# The worker's invocation ids are GUIDs; the local host's too. Anything else is not logged.
_INVOCATION = re.compile(r"^[A-Za-z0-9-]{1,64}$")

# The Azure SDK logs request headers at INFO and MSAL logs token-cache details at DEBUG.
NOISY_LOGGERS = ("azure", "azure.core.pipeline.policies.http_logging_policy", "msal", "urllib3")


def current_request_id() -> str:
    return _request_id.get()


def current_tenant_id() -> str | None:
    return _tenant_id.get()


def current_invocation_id() -> str | None:
    return _invocation_id.get()


@contextlib.contextmanager
def request_context(request_id: str) -> Iterator[None]:
    token = _request_id.set(request_id)
    try:
        yield
    finally:
        _request_id.reset(token)


@contextlib.contextmanager
def tenant_context(tenant_id: str | None) -> Iterator[None]:
    """The tenant the work is for, on every line inside. A value that is not a GUID is not
    logged (the lines go on without a tenant), so a mistake can never log an address or a name."""
    value = tenant_id.lower() if isinstance(tenant_id, str) and _GUID.match(tenant_id) else None
    if value is None:
        yield
        return
    token = _tenant_id.set(value)
    try:
        yield
    finally:
        _tenant_id.reset(token)


@contextlib.contextmanager
def invocation_context(context: Any) -> Iterator[None]:
    """The Functions invocation id of the `context` argument the worker passes, on every line
    inside; None (a test calling a function directly) leaves it off."""
    invocation_id = getattr(context, "invocation_id", None)
    if not isinstance(invocation_id, str) or not _INVOCATION.match(invocation_id):
        yield
        return
    token = _invocation_id.set(invocation_id)
    try:
        yield
    finally:
        _invocation_id.reset(token)


def takes_context(wrapper: Callable[..., Any], wrapped: Callable[..., Any]) -> None:
    """Give `wrapper` the signature of `wrapped` plus an optional `context` parameter. The worker
    (and the local host) bind a function's arguments by its signature and pass `context` only to
    a function that declares it; azure-functions' own MCP decorator sets `__signature__` the same
    way. The annotations stay the wrapped function's."""
    signature = inspect.signature(wrapped)
    if "context" in signature.parameters:
        wrapper.__signature__ = signature  # type: ignore[attr-defined]
        return
    context = inspect.Parameter("context", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None)
    wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*signature.parameters.values(), context])


def with_invocation(function: Callable[..., Any]) -> Callable[..., Any]:
    """For a trigger function that is not HTTP (timer, queue): the invocation id of the worker's
    `context` on every line of the call. Put it right above the `def`, under the trigger's
    decorators; the function itself keeps its one argument."""
    import functools

    @functools.wraps(function)
    def invoked(*args: Any, context: Any = None, **kwargs: Any) -> Any:
        with invocation_context(context):
            return function(*args, **kwargs)

    takes_context(invoked, function)
    return invoked


def context_fields() -> dict[str, str]:
    """The dimensions known here and now (what the record factory puts on a record)."""
    fields = {REQUEST_ID: _request_id.get()}
    tenant, invocation = _tenant_id.get(), _invocation_id.get()
    if tenant is not None:
        fields[TENANT_ID] = tenant
    if invocation is not None:
        fields[INVOCATION_ID] = invocation
    return fields


def _stamped(factory: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        record.__dict__.update(context_fields())
        return record

    make.stamps_context = True  # type: ignore[attr-defined]
    return make


def install_record_factory() -> None:
    """Every record made from now on carries the context's dimensions; idempotent."""
    current = logging.getLogRecordFactory()
    if not getattr(current, "stamps_context", False):
        logging.setLogRecordFactory(_stamped(current))


class RequestIdFilter(logging.Filter):
    """For a handler whose format names `%(request_id)s` (the test suite's log file)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = getattr(record, REQUEST_ID, _request_id.get())
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, request id, tenant id and invocation id
    when known, message (and the exception's type and traceback when there is one). Messages are
    %-formatted by the caller's arguments only; nothing else of a record is written."""

    def format(self, record: logging.LogRecord) -> str:
        import json

        entry = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
                 "level": record.levelname, "logger": record.name,
                 REQUEST_ID: getattr(record, REQUEST_ID, _request_id.get())}
        for name in (TENANT_ID, INVOCATION_ID):
            if getattr(record, name, None) is not None:
                entry[name] = getattr(record, name)
        entry["message"] = record.getMessage()
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)

    converter = staticmethod(time.gmtime)


def configure_logging(level: str) -> None:
    """Stamp the context on every record and set levels; idempotent. The Functions worker owns
    the handlers on Azure (its own, and OpenTelemetry's when enabled), so none is replaced; a
    bare process (a script, the local host) gets one JSON-lines handler on stderr."""
    install_record_factory()
    root = logging.getLogger()
    root.setLevel(level)
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
