"""Command line: ``python -m sandbox --port 8443 --state-dir .local/sandbox``.

Prints exactly one line to stdout once it listens (``sandbox listening on https://127.0.0.1:<port>``);
one line per request goes to stderr (method, path, status, duration; never bodies, queries or
tokens) unless ``--quiet``. SIGINT and SIGTERM stop it.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from tools.waits import sleep_unless

from .seed import SeedError
from .server import LOOPBACK, Sandbox, SandboxHTTPServer


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sandbox",
                                     description="Local HTTPS stand-in for Microsoft's cloud.")
    parser.add_argument("--port", type=int, default=8443, help="TCP port on 127.0.0.1 (default 8443)")
    parser.add_argument("--state-dir", type=Path, default=Path(".local/sandbox"),
                        help="where the CA, keys, CA bundle and vault are kept (default .local/sandbox)")
    parser.add_argument("--seed", type=Path, default=None,
                        help="seed file (default: the demo seed, sandbox/seed.json with next week's calendars)")
    parser.add_argument("--host", default=LOOPBACK, choices=[LOOPBACK, "localhost"],
                        help="the sandbox binds only to the loopback address 127.0.0.1")
    parser.add_argument("--quiet", action="store_true", help="no per-request lines on stderr")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not 1 <= args.port <= 65535:
        print(f"sandbox: --port must be 1-65535, not {args.port}", file=sys.stderr)
        return 2
    if args.seed is None:
        from sandbox.demo import write_demo_seed

        args.seed = args.state_dir / "demo-seed.json"
        write_demo_seed(args.seed)
    try:
        sandbox = Sandbox(args.state_dir, args.seed, args.port, log_stream=None if args.quiet else sys.stderr)
    except SeedError as exc:
        print(f"sandbox: the seed {args.seed} is not valid:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    except (OSError, json.JSONDecodeError) as exc:
        print(f"sandbox: cannot load the seed or state: {exc}", file=sys.stderr)
        return 2
    try:
        server = SandboxHTTPServer(sandbox, args.host)
    except OSError as exc:
        print(f"sandbox: cannot listen on {LOOPBACK}:{args.port}: {exc}", file=sys.stderr)
        return 1

    stop = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    thread.start()
    print(f"sandbox listening on {sandbox.base_url}", flush=True)
    while not sleep_unless(stop, 0.5):  # not stop.wait(): libfaketime hangs timed waits (tools/waits.py)
        pass
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
