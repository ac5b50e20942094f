"""``transactionId`` in the sandbox: a repeat by the same app for the same mailbox is recognised
only within ``transactionIdWindowSeconds`` of the first create (default 120; 0 turns it off),
set by ``PATCH /_sandbox/graph`` or the seed's top-level ``graph`` object (SANDBOX.md).

Microsoft documents the property for client retries and no window at all
(https://learn.microsoft.com/en-us/graph/api/resources/event, transactionId): outside the
sandbox's window a repeat is a new event, so a client must not count on the dedupe.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
import requests

from sandbox.testing import SandboxProcess
from tests.support.days import day
from tests.support.sandbox_graph import ANN, BEN, Graph, error, graph_seed, ok

pytestmark = pytest.mark.integration

ANN_EVENTS = f"/users/{ANN['mail']}/events"


def meeting(transaction_id: str, **extra: Any) -> dict[str, Any]:
    return {"subject": "Retry me", "transactionId": transaction_id,
            "start": {"dateTime": f"{day(4)}T15:00:00", "timeZone": "UTC"},
            "end": {"dateTime": f"{day(4)}T15:30:00", "timeZone": "UTC"},
            "attendees": [{"emailAddress": {"address": BEN["mail"]}, "type": "required"}], **extra}


@pytest.fixture(autouse=True)
def seeded(sandbox: SandboxProcess, graph: Graph) -> None:
    sandbox.reset(graph_seed())  # also puts the window back to its default


def control(graph: Graph, method: str, body: Any = None, **kwargs: Any) -> requests.Response:
    if body is not None:
        kwargs["json"] = body
    return graph.session.request(method, f"{graph.base_url}/_sandbox/graph", timeout=30, **kwargs)


def with_transaction(graph: Graph, transaction_id: str) -> list[dict[str, Any]]:
    listed = ok(graph.get(ANN_EVENTS, params={"$filter": f"transactionId eq '{transaction_id}'"}), 200,
                "graph.event", collection=True)
    return listed["value"]


def create(graph: Graph, body: dict[str, Any]) -> dict[str, Any]:
    return ok(graph.post(ANN_EVENTS, json=body), 201, "graph.event")


def test_default_window_dedupes_a_prompt_retry(graph: Graph) -> None:
    assert ok(control(graph, "GET"), 200)["transactionIdWindowSeconds"] == 120
    transaction = str(uuid.uuid4())
    first = create(graph, meeting(transaction))
    again = create(graph, meeting(transaction, subject="changed on retry"))
    assert again["id"] == first["id"] and again["subject"] == "Retry me"
    assert len(with_transaction(graph, transaction)) == 1


def test_zero_turns_the_dedupe_off(graph: Graph) -> None:
    assert ok(control(graph, "PATCH", {"transactionIdWindowSeconds": 0}), 200)["transactionIdWindowSeconds"] == 0
    transaction = str(uuid.uuid4())
    first = create(graph, meeting(transaction))
    second = create(graph, meeting(transaction))
    assert second["id"] != first["id"] and second["iCalUId"] != first["iCalUId"]
    assert {e["id"] for e in with_transaction(graph, transaction)} == {first["id"], second["id"]}
    # Each create invited Ben: he has two copies.
    ben = ok(graph.get(f"/users/{BEN['mail']}/events", params={"$top": "100"}), 200, "graph.event",
             collection=True)["value"]
    assert {e["iCalUId"] for e in ben} >= {first["iCalUId"], second["iCalUId"]}


def test_a_repeat_after_the_window_is_a_new_event_with_its_own_window(graph: Graph) -> None:
    ok(control(graph, "PATCH", {"transactionIdWindowSeconds": 1}), 200)
    transaction = str(uuid.uuid4())
    first = create(graph, meeting(transaction))
    assert create(graph, meeting(transaction))["id"] == first["id"]  # within the second
    time.sleep(1.3)
    late = create(graph, meeting(transaction))
    assert late["id"] != first["id"]
    # The late one starts a window of its own: a prompt repeat answers it.
    assert create(graph, meeting(transaction))["id"] == late["id"]
    assert len(with_transaction(graph, transaction)) == 2
    # Widening the window applies to events already created.
    ok(control(graph, "PATCH", {"transactionIdWindowSeconds": 600}), 200)
    time.sleep(1.3)
    assert create(graph, meeting(transaction))["id"] == late["id"]


@pytest.mark.parametrize("body", [{"transactionIdWindowSeconds": -1}, {"transactionIdWindowSeconds": "30"},
                                  {"transactionIdWindowSeconds": True}, {"transactionIdWindowSeconds": None},
                                  {}, {"transactionIdWindowSecs": 30}, [30],
                                  {"transactionIdWindowSeconds": 30, "other": 1}])
def test_bad_settings_are_400_and_change_nothing(graph: Graph, body: Any) -> None:
    ok(control(graph, "PATCH", {"transactionIdWindowSeconds": 45}), 200)
    error(control(graph, "PATCH", body), 400, "BadRequest")
    assert ok(control(graph, "GET"), 200)["transactionIdWindowSeconds"] == 45


def test_not_json_is_400(graph: Graph) -> None:
    error(control(graph, "PATCH", data=b"{nope", headers={"Content-Type": "application/json"}), 400, "BadRequest")
    error(control(graph, "PATCH", data=b"NaN", headers={"Content-Type": "application/json"}), 400, "BadRequest")


def test_the_seed_sets_the_window_and_a_reset_without_it_restores_the_default(graph: Graph,
                                                                            sandbox: SandboxProcess) -> None:
    summary = sandbox.reset({**graph_seed(), "graph": {"transactionIdWindowSeconds": 0}})
    assert summary["graph"]["transactionIdWindowSeconds"] == 0
    assert ok(control(graph, "GET"), 200)["transactionIdWindowSeconds"] == 0
    transaction = str(uuid.uuid4())
    assert create(graph, meeting(transaction))["id"] != create(graph, meeting(transaction))["id"]
    summary = sandbox.reset(graph_seed())
    assert summary["graph"]["transactionIdWindowSeconds"] == 120
    assert ok(control(graph, "GET"), 200)["transactionIdWindowSeconds"] == 120
    bad = sandbox.session().post(f"{sandbox.base_url}/_sandbox/reset",
                                 json={**graph_seed(), "graph": {"transactionIdWindowSeconds": -5}})
    assert "/graph/transactionIdWindowSeconds" in error(bad, 400, "BadRequest")["message"]
    bad = sandbox.session().post(f"{sandbox.base_url}/_sandbox/reset",
                                 json={**graph_seed(), "graph": {"window": 5}})
    assert "/graph/window: unknown property" in error(bad, 400, "BadRequest")["message"]
