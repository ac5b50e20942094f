"""Waiting without timed lock waits.

Under Debian's libfaketime 0.9.10 (how `make test-future` moves the clock), any timed wait on a
Python lock never returns: `threading.Event().wait(0.5)`, `Condition.wait(0.3)` and
`Thread.join(3)` all hang (`faketime -f +45d python -c "import threading;
threading.Event().wait(0.5)"`), while `time.sleep` keeps working. The local host, the sandbox and
their test helpers wait through these instead, so they behave the same with the clock moved.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

STEP = 0.02


def sleep_unless(stop: threading.Event, seconds: float) -> bool:
    """Sleep up to `seconds`; True as soon as `stop` is set (like `stop.wait(seconds)`)."""
    deadline = time.monotonic() + seconds
    while not stop.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(left, STEP))
    return True


def until(condition: Callable[[], bool], seconds: float, lock: threading.Condition | threading.Lock | None = None
          ) -> bool:
    """Poll `condition` (under `lock`, if given) until it holds or `seconds` pass; its last value."""
    deadline = time.monotonic() + seconds
    while True:
        if lock is not None:
            with lock:
                held = condition()
        else:
            held = condition()
        if held or time.monotonic() >= deadline:
            return held
        time.sleep(min(STEP, max(0.0, deadline - time.monotonic())))


def join(thread: threading.Thread, seconds: float) -> bool:
    """`thread.join(seconds)` without a timed lock wait; True if it ended."""
    return until(lambda: not thread.is_alive(), seconds)
