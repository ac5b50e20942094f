"""`LocalHost`: runs a `func.FunctionApp` the way the Azure Functions host would, for development.

Everything comes from the FunctionApp: `app.get_functions()` gives each function's bindings (the
function.json the worker would report) and its Python callable. HTTP triggers are routed with
`shared.routing.RouteTemplate`, timers follow their NCRONTAB schedule, queue triggers poll a storage
queue (`devhost.queues`), and `/admin/...` offers the host's admin API. Function keys and auth
levels are not checked, as under Core Tools.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import inspect
import json
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func
import azure.functions.queue as func_queue
import azure.functions.timer as func_timer

from devhost.config import (
    HostConfig,
    apply_settings,
    resolve_setting_expressions,
    storage_connection_string,
)
from devhost.httpserver import DevServer, Dispatcher, Reply
from devhost.ncrontab import CronSchedule
from devhost.queues import QueuePoller
from shared.routing import RouteTemplate
from tools.waits import join, sleep_unless

log = logging.getLogger("devhost")

_JSON = [("Content-Type", "application/json; charset=utf-8")]
_ADMIN_REASON = "This function was programmatically called via the host APIs."


@dataclass(frozen=True)
class Function:
    """One function of the app: its name, its bindings (function.json) and its Python callable."""

    name: str
    config: dict[str, Any]
    user_function: Callable[..., Any]

    @property
    def bindings(self) -> list[dict[str, Any]]:
        return self.config.get("bindings", [])

    @property
    def trigger(self) -> dict[str, Any]:
        return next((b for b in self.bindings if str(b.get("type", "")).endswith("Trigger")), {})

    @property
    def trigger_type(self) -> str:
        return str(self.trigger.get("type", "none"))

    @property
    def methods(self) -> frozenset[str] | None:
        """The HTTP methods of an httpTrigger (None: all methods)."""
        methods = self.trigger.get("methods")
        return frozenset(str(m).upper() for m in methods) if methods else None

    @property
    def route(self) -> str:
        return str(self.trigger.get("route") or self.name)

    @functools.cached_property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.user_function)

    @functools.cached_property
    def takes_context(self) -> bool:
        return "context" in inspect.signature(self.user_function).parameters


def worker_threads() -> int:
    """The Python worker's pool for sync functions: PYTHON_THREADPOOL_THREAD_COUNT (1 to 32), else
    Python's own default of min(32, CPUs + 4) (learn.microsoft.com/azure/azure-functions/
    python-scale-performance-reference, "Use multiple language worker processes" and "Set up
    max workers within a language worker process")."""
    try:
        count = int(os.environ.get("PYTHON_THREADPOOL_THREAD_COUNT", ""))
    except ValueError:
        return min(32, (os.cpu_count() or 1) + 4)
    return max(1, min(32, count))


def load_functions(app: func.FunctionApp) -> list[Function]:
    # get_functions() checks names against a cache that earlier calls filled (a second call would
    # reject every name as a duplicate): clear it before and after, so that loading is repeatable.
    app.functions_bindings = None
    try:
        items = app.get_functions()
    finally:
        app.functions_bindings = None
    return [Function(item.get_function_name(), json.loads(item.get_function_json()), item.get_user_function())
            for item in items]


def load_app(spec: str) -> func.FunctionApp:
    """Import `module` or `module:attribute` (default attribute `app`) from the current directory."""
    module_name, _, attribute = spec.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    app = getattr(importlib.import_module(module_name), attribute or "app", None)
    if not isinstance(app, func.FunctionApp):
        raise ValueError(f"{spec}: expected a func.FunctionApp named {attribute or 'app'!r}")
    return app


class _Context(func.Context):
    """The `context` argument the worker passes to functions that declare one."""

    def __init__(self, function_name: str, invocation_id: str) -> None:
        self._function_name = function_name
        self._invocation_id = invocation_id
        self._local = threading.local()

    invocation_id = property(lambda self: self._invocation_id)
    function_name = property(lambda self: self._function_name)
    function_directory = property(lambda self: os.getcwd())
    thread_local_storage = property(lambda self: self._local)
    trace_context = property(lambda self: None)
    retry_context = property(lambda self: None)


def _is_admin(path: str) -> bool:
    return path.lower() == "/admin" or path.lower().startswith("/admin/")


def disabled(name: str) -> bool:
    return os.environ.get(f"AzureWebJobs.{name}.Disabled", "").strip().lower() in ("true", "1")


class LocalHost:
    """Serves one FunctionApp: `start()` (returns once listening), `stop()`, `base_url`, `run_function()`.

    `settings` are app settings (local.settings.json `Values`): `start()` puts those not already in
    the environment into os.environ and `stop()` removes them again. `host_json` is the parsed
    host.json (or a `HostConfig`). `port=0` picks a free port. `mounts` serves local-only pages beside
    the app: each path prefix (`/console`) goes to its dispatcher, before the admin API and the routes.
    """

    def __init__(self, app: func.FunctionApp, *, settings: Mapping[str, str] | None = None,
                 host_json: Mapping[str, Any] | HostConfig | None = None, host: str = "127.0.0.1",
                 port: int = 7071, mounts: Mapping[str, Dispatcher] | None = None) -> None:
        self.app = app
        self.settings = dict(settings or {})
        self.config = host_json if isinstance(host_json, HostConfig) else HostConfig.from_json(host_json)
        self.host = host
        self.port = port
        self.functions = {function.name: function for function in load_functions(app)}
        # Local-only pages beside the app (the console): a path prefix -> its own dispatcher.
        self.mounts = {"/" + prefix.strip("/"): handler for prefix, handler in (mounts or {}).items()}
        for prefix in self.mounts:
            if prefix.lower() in ("/admin", f"/{self.config.route_prefix}".lower()):
                raise ValueError(f"a mount at {prefix} would hide the host's own routes")
        http = [f for f in self.functions.values() if f.trigger_type == "httpTrigger"]
        # ASP.NET-like precedence: literal segments, then parameters, then a catch-all (stable sort).
        self.routes = sorted(((RouteTemplate.parse(f.route), f) for f in http), key=lambda r: r[0].precedence)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._pollers: list[QueuePoller] = []
        self._timer_locks = {name: threading.Lock() for name, f in self.functions.items()
                             if f.trigger_type == "timerTrigger"}
        self._server: DevServer | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._added_settings: list[str] = []
        self._started_at = time.monotonic()
        for function in self.functions.values():
            self._warn_unsupported(function)

    # ----- lifecycle -----

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host  # noqa: S104 (compared, not bound)
        return f"http://{host}:{self.port}"

    def start(self) -> LocalHost:
        self._added_settings = apply_settings(self.settings)
        try:
            # A timer or queue function disabled by the app setting `AzureWebJobs.<name>.Disabled`
            # (true or 1) is not triggered (learn.microsoft.com/azure/azure-functions/disable-function).
            enabled = [f for f in self.functions.values() if not disabled(f.name)]
            timers = [(f, CronSchedule.parse(resolve_setting_expressions(str(f.trigger["schedule"]))))
                      for f in enabled if f.trigger_type == "timerTrigger"]
            self._pollers = [self._queue_poller(f) for f in enabled if f.trigger_type == "queueTrigger"]
            self._server = DevServer((self.host, self.port), self.answer)
        except Exception:
            self._restore_settings()
            raise
        self.port = self._server.server_address[1]
        self._started_at = time.monotonic()
        self._pool = ThreadPoolExecutor(worker_threads(), thread_name_prefix="devhost-worker")
        self._spawn(self._server.serve_forever, "devhost-http", 0.2)
        for function, schedule in timers:
            self._spawn(self._timer_loop, f"devhost-timer-{function.name}", function, schedule)
        for poller in self._pollers:
            poller.start()
        return self

    def stop(self, timeout: float = 4.0) -> None:
        """Stop serving, timers and pollers; wait for running functions until `timeout`, then abandon them."""
        deadline = time.monotonic() + timeout
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.close_connections()
            self._server.server_close()
            self._server = None
        if self._pool is not None:
            self._pool.shutdown(wait=False)  # running functions finish; the wait is below
            self._pool = None
        for poller in self._pollers:
            poller.stop(deadline)
        for thread in self._threads:
            join(thread, max(0.0, deadline - time.monotonic()))
        self._restore_settings()

    def banner(self) -> str:
        """The function list `func start` prints."""
        lines = ["", "Functions:", ""]
        for function in self.functions.values():
            if function.trigger_type == "httpTrigger":
                methods = ",".join(sorted(function.methods)) if function.methods else "ALL"
                lines.append(f"        {function.name}: [{methods}] {self._invoke_url(function)}")
            else:
                lines.append(f"        {function.name}: {function.trigger_type}")
            lines.append("")
        return "\n".join(lines)

    def _spawn(self, target: Callable[..., Any], name: str, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _restore_settings(self) -> None:
        for name in self._added_settings:
            os.environ.pop(name, None)
        self._added_settings = []

    def _queue_poller(self, function: Function) -> QueuePoller:
        queue_name = resolve_setting_expressions(str(function.trigger.get("queueName", ""))).lower()
        connection = storage_connection_string(function.trigger.get("connection"))
        return QueuePoller(self, function, queue_name, connection, self.config.queues)

    @staticmethod
    def _warn_unsupported(function: Function) -> None:
        if function.trigger_type not in ("httpTrigger", "timerTrigger", "queueTrigger"):
            log.warning("Function %s: devhost does not run %s functions by itself; use "
                        "POST /admin/functions/%s", function.name, function.trigger_type, function.name)
        for binding in function.bindings:
            if binding is function.trigger or (binding.get("type") == "http" and binding.get("name") == "$return"):
                continue
            log.warning("Function %s: devhost does not support its %s binding %r; only the trigger is passed",
                        function.name, binding.get("type"), binding.get("name"))

    # ----- invocation -----

    def invoke(self, function: Function, trigger_value: Any, reason: str) -> Any:
        """Call the user function with its trigger argument (and `context` if it takes one); an
        async one runs to its end on a loop of its own (HTTP ones run on the host's, `answer`)."""
        kwargs, invocation_id = self._arguments(function, trigger_value, reason)
        started = time.monotonic()
        try:
            result = function.user_function(**kwargs)
            if inspect.iscoroutine(result):
                result = asyncio.run(result)
        except Exception as error:
            self._failed(function, invocation_id, started, error)
            raise
        self._succeeded(function, invocation_id, started)
        return result

    async def invoke_async(self, function: Function, trigger_value: Any, reason: str) -> Any:
        """`invoke` for an async function, awaited on the running loop as the worker does."""
        kwargs, invocation_id = self._arguments(function, trigger_value, reason)
        started = time.monotonic()
        try:
            result = await function.user_function(**kwargs)
        except Exception as error:
            self._failed(function, invocation_id, started, error)
            raise
        self._succeeded(function, invocation_id, started)
        return result

    def _arguments(self, function: Function, trigger_value: Any, reason: str) -> tuple[dict[str, Any], str]:
        invocation_id = str(uuid.uuid4())
        kwargs = {str(function.trigger.get("name", "req")): trigger_value}
        if function.takes_context:
            kwargs["context"] = _Context(function.name, invocation_id)
        log.info("Executing 'Functions.%s' (Reason='%s', Id=%s)", function.name, reason, invocation_id)
        return kwargs, invocation_id

    @staticmethod
    def _failed(function: Function, invocation_id: str, started: float, error: Exception) -> None:
        log.error("Executed 'Functions.%s' (Failed, Id=%s, Duration=%dms)", function.name,
                  invocation_id, (time.monotonic() - started) * 1000, exc_info=error)

    @staticmethod
    def _succeeded(function: Function, invocation_id: str, started: float) -> None:
        log.info("Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%dms)", function.name, invocation_id,
                 (time.monotonic() - started) * 1000)

    def find_function(self, name: str) -> Function | None:
        return self.functions.get(name) or next(
            (f for n, f in self.functions.items() if n.lower() == name.lower()), None)

    def run_function(self, name: str, input: str | None = None) -> Any:
        """Run a non-HTTP function now, as `POST /admin/functions/{name}` does; returns its result.

        A timer gets `past_due=False`; a queue trigger gets `input` as the message body. The
        function's exception, if any, propagates.
        """
        function = self.find_function(name)
        if function is None:
            raise KeyError(name)
        if function.trigger_type == "httpTrigger":
            raise ValueError(f"{name} is an HTTP function; call it at {self._invoke_url(function)}")
        if function.trigger_type == "timerTrigger":
            with self._timer_locks[function.name]:
                return self.invoke(function, func_timer.TimerRequest(past_due=False), _ADMIN_REASON)
        if function.trigger_type == "queueTrigger":
            # What the queue extension builds from a string: no id or pop receipt, dequeue count 0.
            value: Any = func_queue.QueueMessage(body=input or "", dequeue_count=0)
        else:
            value = input
        return self.invoke(function, value, _ADMIN_REASON)

    def _timer_loop(self, function: Function, schedule: CronSchedule) -> None:
        log.info("Timer %s schedule '%s' (UTC): next %s", function.name, schedule.expression,
                 ", ".join(t.isoformat() for t in schedule.occurrences(datetime.now(UTC), 3)))
        last: datetime | None = None
        if function.trigger.get("runOnStartup"):
            last = self._fire(function, schedule, last, "Timer fired on startup (runOnStartup)")
        while not self._stop.is_set():
            due = schedule.next_occurrence(datetime.now(UTC))
            while (remaining := (due - datetime.now(UTC)).total_seconds()) > 0:
                if sleep_unless(self._stop, min(remaining, 60.0)):
                    return
            last = self._fire(function, schedule, last, f"Timer fired at {due.isoformat()}")

    def _fire(self, function: Function, schedule: CronSchedule, last: datetime | None, reason: str) -> datetime:
        now = datetime.now(UTC)
        status = {"Last": (last or now).isoformat(), "Next": schedule.next_occurrence(now).isoformat(),
                  "LastUpdated": now.isoformat()}
        request = func_timer.TimerRequest(past_due=False, schedule_status=status, schedule={"AdjustForDST": True})
        # One run at a time per timer (the host's singleton lock); invoke logged any failure and the
        # schedule goes on, as in the host.
        with self._timer_locks[function.name], contextlib.suppress(Exception):
            self.invoke(function, request, reason)
        return now

    # ----- HTTP -----

    def _invoke_url(self, function: Function) -> str:
        prefix = f"/{self.config.route_prefix}" if self.config.route_prefix else ""
        return f"{self.base_url}{prefix}/{function.route.strip('/')}"

    def _route_path(self, path: str) -> str | None:
        """The part of `path` after the route prefix (None: outside it)."""
        path = path.strip("/")
        prefix = self.config.route_prefix
        if not prefix:
            return path
        if path.lower() == prefix.lower():
            return ""
        if path.lower().startswith(prefix.lower() + "/"):
            return path[len(prefix) + 1:]
        return None

    async def answer(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes) -> Reply:
        """The front end's answer: an async HTTP function runs on the loop, as on the worker;
        anything else (sync functions, the admin API, mounts) on the worker's pool of threads."""
        path = urlsplit(target).path
        if self._mount(path) is None and not _is_admin(path):
            found = self._match(method, path)
            if found is not None and found[0].is_async:
                function, route_params = found
                request = self._request(method, target, headers, body, route_params)
                try:
                    result = await self.invoke_async(function, request, _ADMIN_REASON)
                except Exception:
                    return Reply(500)
                return self._reply(function, result)
        pool = self._pool
        if pool is None:
            return Reply(503)  # stopped
        return await asyncio.get_running_loop().run_in_executor(pool, self.dispatch, method, target, headers, body)

    def dispatch(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes) -> Reply:
        """Answer one HTTP request: a mount, the admin API, or the first matching HTTP function."""
        path = urlsplit(target).path
        mount = self._mount(path)
        if mount is not None:
            return mount(method, target, headers, body)
        if _is_admin(path):
            return self._admin(method, path, body)
        found = self._match(method, path)
        if found is None:
            return Reply(404)
        function, route_params = found
        request = self._request(method, target, headers, body, route_params)
        try:
            result = self.invoke(function, request, _ADMIN_REASON)
        except Exception:
            return Reply(500)
        return self._reply(function, result)

    def _mount(self, path: str) -> Dispatcher | None:
        return next((handler for prefix, handler in self.mounts.items()
                     if path == prefix or path.startswith(prefix + "/")), None)

    def _match(self, method: str, path: str) -> tuple[Function, dict[str, str]] | None:
        route_path = self._route_path(path)
        if route_path is None:
            return None
        for template, function in self.routes:
            route_params = template.match(route_path)
            if route_params is None:
                continue
            if function.methods is not None and method.upper() not in function.methods:
                continue  # falls through to a later route, e.g. a catch-all, as on Azure
            return function, route_params
        return None

    def _request(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes,
                 route_params: dict[str, str]) -> func.HttpRequest:
        merged: dict[str, str] = {}
        for name, value in headers:  # repeated headers are joined with ", ", as the host does
            key = name.lower()
            merged[key] = f"{merged[key]}, {value}" if key in merged else value
        params: dict[str, str] = {}
        for name, value in parse_qsl(urlsplit(target).query, keep_blank_values=True):
            params[name] = f"{params[name]},{value}" if name in params else value
        host = merged.get("host") or f"{self.host}:{self.port}"
        return func.HttpRequest(method=method.upper(), url=f"http://{host}{target}", headers=merged,
                                params=params, route_params=route_params, body=body)

    @staticmethod
    def _reply(function: Function, result: Any) -> Reply:
        if isinstance(result, str):
            return Reply(200, [("Content-Type", "text/plain; charset=utf-8")], result.encode("utf-8"))
        if not isinstance(result, func.HttpResponse):
            log.error("Function %s returned %s; an HTTP function must return func.HttpResponse or str",
                      function.name, type(result).__name__)
            return Reply(500)
        response_headers = list(result.headers.items())
        if not any(name.lower() == "content-type" for name, _ in response_headers):
            charset = f"; charset={result.charset}" if result.mimetype.startswith("text/") else ""
            response_headers.append(("Content-Type", f"{result.mimetype}{charset}"))
        return Reply(int(result.status_code), response_headers, result.get_body() or b"")

    # ----- admin API -----

    def _admin(self, method: str, path: str, body: bytes) -> Reply:
        parts = [part for part in path.split("/") if part][1:]
        if parts == ["host", "status"] and method == "GET":
            status = {"id": "devhost", "state": "Stopping" if self._stop.is_set() else "Running",
                      "version": "devhost", "processUptime": int((time.monotonic() - self._started_at) * 1000)}
            return Reply(200, list(_JSON), json.dumps(status).encode())
        if parts == ["functions"] and method == "GET":
            listing = [self._metadata(f) for f in self.functions.values()]
            return Reply(200, list(_JSON), json.dumps(listing).encode())
        if len(parts) != 2 or parts[0] != "functions" or method not in ("GET", "POST"):
            return Reply(404)
        function = self.find_function(parts[1])
        if function is None:
            return Reply(404)
        if method == "GET":
            return Reply(200, list(_JSON), json.dumps(self._metadata(function)).encode())
        try:
            invocation = json.loads(body or b"null")
        except ValueError:
            invocation = None
        if not isinstance(invocation, dict):
            return Reply(400)  # the host answers 400 to a missing or malformed {"input": ...} body
        if function.trigger_type == "httpTrigger":
            message = f"{function.name} is an HTTP function; call it at {self._invoke_url(function)}"
            return Reply(400, [("Content-Type", "text/plain; charset=utf-8")], message.encode())
        value = invocation.get("input")
        thread = threading.Thread(target=self._run_in_background, args=(function.name, value),
                                  name=f"devhost-admin-{function.name}", daemon=True)
        thread.start()
        return Reply(202)

    def _run_in_background(self, name: str, value: Any) -> None:
        with contextlib.suppress(Exception):  # invoke logged it
            self.run_function(name, value if value is None or isinstance(value, str) else json.dumps(value))

    def _metadata(self, function: Function) -> dict[str, Any]:
        is_http = function.trigger_type == "httpTrigger"
        return {
            "name": function.name,
            "language": "python",
            "config": function.config,
            "invoke_url_template": self._invoke_url(function) if is_http else None,
            "isDisabled": False,
        }
