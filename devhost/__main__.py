"""`python -m devhost`: serve the project's FunctionApp locally, like `func start`."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from devhost.config import HostConfig, apply_settings, load_local_settings, local_http_port
from devhost.host import LocalHost, load_app
from devhost.httpserver import Dispatcher
from tools.waits import sleep_unless

log = logging.getLogger("devhost")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devhost", description=__doc__)
    parser.add_argument("--port", type=int, help="default: Host.LocalHttpPort of the settings file, else 7071")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--app", default="function_app", help="module[:attribute] of the FunctionApp")
    parser.add_argument("--settings", default="local.settings.json", help="local settings file")
    parser.add_argument("--host-json", default="host.json", help="host.json file")
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    parser.add_argument("--console", action="store_true",
                        help="also serve the local console at /console/ (sandbox only; loopback only)")
    parser.add_argument("--console-seed", default=".local/sandbox-seed.json",
                        help="the sandbox seed the console reads people from (default .local/sandbox-seed.json)")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="[%(asctime)s] %(levelname)s %(name)s: %(message)s")
    for noisy in ("azure", "urllib3"):  # the storage SDK logs every request at INFO
        logging.getLogger(noisy).setLevel(logging.WARNING)

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())

    try:
        if not Path(args.settings).exists():
            log.warning("%s not found; using the environment only", args.settings)
        # Before the import: the app may read its settings at import time, as it may on Azure.
        apply_settings(load_local_settings(args.settings))
        app = load_app(args.app)
        port = args.port if args.port is not None else local_http_port(args.settings) or 7071
        mounts, console_host = {}, []
        if args.console:
            console = _console(args, console_host)
            if console is not None:
                mounts["/console"] = console
        host = LocalHost(app, host_json=HostConfig.load(args.host_json), host=args.host, port=port,
                         mounts=mounts).start()
        console_host.append(host)
    except (ValueError, OSError) as error:  # a configuration error or a busy port: no traceback
        log.error("devhost could not start: %s", error)
        return 1

    print(host.banner())
    if "/console" in host.mounts:
        print(f"        console: {host.base_url}/console/\n")
    print(f"devhost listening on {host.base_url}", flush=True)
    while not sleep_unless(stop, 0.5):  # not stop.wait(): libfaketime hangs timed waits (tools/waits.py)
        pass
    log.info("Stopping devhost")
    host.stop(timeout=4.0)
    log.info("devhost stopped")
    return 0


def _console(args: argparse.Namespace, started: list[LocalHost]) -> Dispatcher | None:
    """The console's dispatcher (it calls the service at the host's own address once that listens),
    or None, said in the log, when it cannot run: the service starts all the same."""
    from devhost.console import Console, ConsoleConfig, ConsoleError

    if args.host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError("--console needs a loopback --host: the console acts with the web app's credentials")
    try:
        config = ConsoleConfig.from_environment(args.console_seed)
    except ConsoleError as error:
        log.error("the console is not served: %s", error)
        return None
    return Console(config, service_url=lambda: started[0].base_url).dispatch


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        os._exit(code)  # threads the app started must not keep a stopped host alive
    sys.exit(code)
