"""Logging: the request id on every line of a request, and quiet SDK loggers.

A `contextvars` variable carries the id, so it follows the request across helper calls (and
threads started with `contextvars.copy_context()`); a filter stamps it onto every record.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import time
from collections.abc import Iterator

_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

# The Azure SDK logs request headers at INFO and MSAL logs token-cache details at DEBUG.
NOISY_LOGGERS = ("azure", "azure.core.pipeline.policies.http_logging_policy", "msal", "urllib3")


def current_request_id() -> str:
    return _request_id.get()


@contextlib.contextmanager
def request_context(request_id: str) -> Iterator[None]:
    token = _request_id.set(request_id)
    try:
        yield
    finally:
        _request_id.reset(token)


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, request id, message (and the exception's
    type and traceback when there is one). Messages are %-formatted by the caller's arguments
    only; nothing else of a record is written."""

    def format(self, record: logging.LogRecord) -> str:
        import json

        entry = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
                 "level": record.levelname, "logger": record.name,
                 "requestId": getattr(record, "request_id", _request_id.get()), "message": record.getMessage()}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)

    converter = staticmethod(time.gmtime)


def configure_logging(level: str) -> None:
    """Install the request-id filter on the root handlers; idempotent. The Functions worker owns
    the handlers on Azure, so this adds a filter and sets levels, and never replaces handlers."""
    root = logging.getLogger()
    root.setLevel(level)
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
    for handler in root.handlers:
        if not any(isinstance(f, RequestIdFilter) for f in handler.filters):
            handler.addFilter(RequestIdFilter())
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
