"""The background jobs a test's requests queued, run here one by one as the queue function would
run them (tests' own queue: see `app_env` in tests/conftest.py)."""

from __future__ import annotations

import json


def run_queued(kinds: set[str] | None = None, *, rounds: int = 5) -> list[tuple[str, str]]:
    """Take every message off the test's jobs queue and run it (jobs may queue more: up to
    `rounds` passes). Messages of other kinds are deleted unrun. Returns (kind, outcome) pairs."""
    from background.jobs import background as jobs_service
    from shared.clients import job_queue

    queue = job_queue()
    done: list[tuple[str, str]] = []
    for _ in range(rounds):
        messages = list(queue.client.receive_messages(max_messages=32, visibility_timeout=60))
        if not messages:
            break
        for message in messages:
            kind = json.loads(message.content)["kind"]
            if kinds is None or kind in kinds or kind == "batch":
                done.append((kind, jobs_service().run(message.content)))
            queue.client.delete_message(message)
    return done
