"""`python -m devhost.console`: the console on a port of its own, for when the service runs on another
host (Core Tools' `func start`); the local host serves it itself (`python -m devhost --console`).

    python -m devhost.console [--port 7072] [--service http://127.0.0.1:7071] \\
        [--settings local.settings.json] [--seed .local/sandbox-seed.json]
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from devhost.config import apply_settings, load_local_settings
from devhost.httpserver import DevServer, Reply
from tools.waits import sleep_unless

log = logging.getLogger("devhost.console")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devhost.console", description=__doc__)
    parser.add_argument("--port", type=int, default=7072)
    parser.add_argument("--service", default="http://127.0.0.1:7071", help="the service's base URL")
    parser.add_argument("--settings", default="local.settings.json", help="the service's local settings file")
    parser.add_argument("--seed", default=".local/sandbox-seed.json", help="the sandbox seed")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(levelname)s %(name)s: %(message)s")

    from devhost.console import Console, ConsoleConfig, ConsoleError

    apply_settings(load_local_settings(args.settings))
    try:
        console = Console(ConsoleConfig.from_environment(args.seed), service_url=lambda: args.service.rstrip("/"))
        server = DevServer(("127.0.0.1", args.port), _root(console))
    except (ConsoleError, OSError) as error:
        log.error("the console could not start: %s", error)
        return 1
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    threading.Thread(target=server.serve_forever, args=(0.2,), daemon=True).start()
    print(f"console listening on http://127.0.0.1:{args.port}/console/", flush=True)
    while not sleep_unless(stop, 0.5):  # not stop.wait(): libfaketime hangs timed waits (tools/waits.py)
        pass
    server.shutdown()
    server.server_close()
    return 0


def _root(console):
    def dispatch(method: str, target: str, headers: list[tuple[str, str]], body: bytes) -> Reply:
        if target == "/" or target.startswith("/console"):
            return console.dispatch(method, target if target != "/" else "/console", headers, body)
        return Reply(404)

    return dispatch


if __name__ == "__main__":
    sys.exit(main())
