"""A small local stand-in for the Azure Functions host (Core Tools' `func start`), for `make run` and tests.

    python -m devhost [--port 7071] [--host 127.0.0.1] [--app function_app] \\
        [--settings local.settings.json] [--host-json host.json]

In-process: `LocalHost(app, settings={...}, host_json={...}, port=0).start()`, then `.base_url`,
`.run_function(name, input)`, `.stop()`. A development tool only; never deployed.

Unlike the Azure host: no function keys or auth levels (as under Core Tools), no CORS, no
functionTimeout, no output or input bindings (only the trigger argument and `context` are passed),
HTTP, timer and queue triggers only, timers keep no schedule status (past_due is always false), a
running queue message's 10-minute invisibility is not renewed, HTTP is served in the worker's own
process (async HTTP functions on its loop, sync ones on its pool; queue messages and timers on a
thread each, async ones with asyncio.run), one worker process, and a missing queue is created.
"""

from devhost.config import HostConfig, QueueOptions, load_local_settings
from devhost.host import Function, LocalHost, load_app
from devhost.ncrontab import CronSchedule

__all__ = ["CronSchedule", "Function", "HostConfig", "LocalHost", "QueueOptions", "load_app", "load_local_settings"]
