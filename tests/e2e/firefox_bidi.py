"""Debian's firefox-esr as Playwright's WebDriver BiDi Firefox (the "moz-firefox" channel).

Playwright 1.65 drives a stock Firefox over WebDriver BiDi, but every browser context it makes
first sends `emulation.setMediaFeaturesOverride`, a command Firefox 153 ESR does not have yet
(its emulation module has geolocation, locale, network conditions, screen orientation and
settings, time zone and user agent): "Protocol error (emulation.setMediaFeaturesOverride):
unknown command". The tests use no media emulation, so that call asks for no override at all.

This program stands in for the browser's executable: it starts firefox-esr with Playwright's
arguments, and puts a relay in front of the BiDi socket Firefox announces. The relay passes
every message through unchanged, except that a setMediaFeaturesOverride asking for no override
(every feature unset) is answered as done, which it is. Any real override is passed on, and
Firefox's "unknown command" reaches the test. Run: python firefox_bidi.py <firefox arguments>.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import re
import sys

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

FIREFOX = "/usr/bin/firefox-esr"
LISTENING = re.compile(rb"WebDriver BiDi listening on (ws://[^\s]+)")
NO_OVERRIDE = "emulation.setMediaFeaturesOverride"


def answered_here(text: str | bytes) -> str | None:
    """The reply to a no-op media override, or None for a message Firefox must see."""
    try:
        message = json.loads(text)
    except ValueError:
        return None
    if not isinstance(message, dict) or message.get("method") != NO_OVERRIDE:
        return None
    features = (message.get("params") or {}).get("features") or {}
    if any(value is not None for value in features.values()):
        return None
    return json.dumps({"type": "success", "id": message.get("id"), "result": {}})


async def relay(upstream_base: str, client: ServerConnection) -> None:
    async with connect(upstream_base + client.request.path, max_size=None, compression=None,
                       ping_interval=None) as browser:

        async def outward() -> None:
            async for text in client:
                reply = answered_here(text)
                await (browser.send(text) if reply is None else client.send(reply))

        async def inward() -> None:
            async for text in browser:
                await client.send(text)

        async def until_closed(direction) -> None:
            with contextlib.suppress(ConnectionClosed):
                await direction()

        tasks = [asyncio.create_task(until_closed(outward)), asyncio.create_task(until_closed(inward))]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()


async def main(args: list[str]) -> int:
    firefox = await asyncio.create_subprocess_exec(FIREFOX, *args, stderr=asyncio.subprocess.PIPE)
    assert firefox.stderr is not None
    server = None
    async for line in firefox.stderr:
        found = LISTENING.search(line) if server is None else None
        if found:
            server = await serve(functools.partial(relay, found.group(1).decode()), "127.0.0.1", 0, max_size=None,
                                 compression=None, ping_interval=None)
            port = server.sockets[0].getsockname()[1]
            line = line.replace(found.group(1), f"ws://127.0.0.1:{port}".encode())
        sys.stderr.buffer.write(line)
        sys.stderr.buffer.flush()
    code = await firefox.wait()
    if server is not None:
        server.close()
    return code


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
