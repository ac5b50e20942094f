"""JSON batching in the sandbox (learn.microsoft.com/graph/json-batching, /graph/throttling#throttling-and-batching):
at most 20 requests, unique ids, relative urls, Content-Type with a body, dependsOn and 424,
per-request statuses, headers and bodies inside a 200; each inner request authenticated and
throttled on its own."""

from __future__ import annotations

import pytest
import requests

from sandbox.server import RunningServer
from tests.support.days import day
from tests.support.graph_schema import graph_schema
from tests.support.sandbox_graph import (
    ANN,
    BEN,
    CLIENT_ID,
    DAN,
    FABRIKAM,
    Graph,
    error,
    ok,
    raw_token,
)

pytestmark = pytest.mark.integration

JSON = {"Content-Type": "application/json"}
EVENT = {"subject": "Batched", "start": {"dateTime": f"{day(3)}T10:00:00", "timeZone": "UTC"},
         "end": {"dateTime": f"{day(3)}T10:30:00", "timeZone": "UTC"}}


def batch(graph: Graph, requests_: list[dict], types: dict[str, str] | None = None) -> dict[str, dict]:
    """Post a batch; check the envelope, every error body, and the bodies of ``types`` ({id: type}:
    "graph.x" for an entity, "Collection(graph.x)" for a collection answer)."""
    response = graph.post("/$batch", json={"requests": requests_})
    body = ok(response, 200)
    assert set(body) == {"responses"}
    by_id = {r["id"]: r for r in body["responses"]}
    assert sorted(by_id) == sorted(r["id"] for r in requests_)
    for entry in body["responses"]:
        assert set(entry) <= {"id", "status", "headers", "body"} and isinstance(entry["headers"], dict)
        if entry["status"] >= 400:
            graph_schema().check_error(entry["body"])
        type_name = (types or {}).get(entry["id"])
        if type_name and type_name.startswith("Collection("):
            graph_schema().check_collection(entry["body"], type_name[len("Collection("):-1], selected=True)
        elif type_name:
            graph_schema().check(entry["body"], type_name)
    return by_id


def test_each_request_gets_its_own_answer(graph: Graph) -> None:
    answers = batch(graph, [
        {"id": "list", "method": "GET", "url": f"/users/{ANN['mail']}/events?$select=subject&$top=2"},
        {"id": "create", "method": "POST", "url": f"/users/{ANN['mail']}/events", "body": EVENT, "headers": JSON},
        {"id": "free-busy", "method": "POST", "url": f"users/{ANN['mail']}/calendar/getSchedule", "headers": JSON,
         "body": {"schedules": [BEN["mail"]], "startTime": {"dateTime": f"{day(0)}T08:00:00", "timeZone": "UTC"},
                  "endTime": {"dateTime": f"{day(0)}T09:00:00", "timeZone": "UTC"}}},
        {"id": "missing", "method": "GET", "url": "/users/nobody@fabrikam.example/events"},
        {"id": "policy", "method": "GET", "url": f"/users/{DAN['mail']}/events"},
        {"id": "me", "method": "GET", "url": "/me/events"},
    ], {"list": "Collection(graph.event)", "create": "graph.event",
        "free-busy": "Collection(graph.scheduleInformation)"})
    assert answers["list"]["status"] == 200
    assert len(answers["list"]["body"]["value"]) == 2
    assert answers["create"]["status"] == 201
    assert answers["create"]["headers"]["Content-Type"].startswith("application/json")
    assert answers["free-busy"]["status"] == 200
    assert answers["missing"]["status"] == 404 and answers["missing"]["body"]["error"]["code"] == "ErrorInvalidUser"
    assert answers["policy"]["status"] == 403
    assert answers["policy"]["body"]["error"]["message"] == "Access to OData is disabled."
    assert answers["me"]["status"] == 400


def test_depends_on_and_failed_dependencies(graph: Graph) -> None:
    answers = batch(graph, [
        {"id": "1", "method": "GET", "url": f"/users/{ANN['mail']}/events/AAMkAGI1AAAt9AHjAAAAAAAAAAAAAAAAAAA="},
        {"id": "2", "method": "POST", "url": f"/users/{ANN['mail']}/events", "headers": JSON,
         "body": {**EVENT, "subject": "Never created"}, "dependsOn": ["1"]},
        {"id": "3", "method": "GET", "url": f"/users/{ANN['mail']}/events", "dependsOn": ["2"]},
        {"id": "4", "method": "GET", "url": f"/users/{BEN['mail']}/events"},
        {"id": "5", "method": "DELETE", "url": f"/users/{BEN['mail']}/events/AAMkAGI1AAAt9AHjAAAAAAAAAAAAAAAAAAA=",
         "dependsOn": ["4"]},
    ], {"4": "Collection(graph.event)"})
    assert answers["1"]["status"] == 404
    assert answers["2"]["status"] == 424 and answers["3"]["status"] == 424
    assert answers["4"]["status"] == 200 and answers["5"]["status"] == 404
    # Nothing was created by the request that did not run.
    listed = ok(graph.get(f"/users/{ANN['mail']}/events", params={"$filter": "subject eq 'Never created'"}), 200,
                "graph.event", collection=True)
    assert listed["value"] == []


def test_malformed_batches_are_400(graph: Graph) -> None:
    one = {"method": "GET", "url": f"/users/{ANN['mail']}/events"}
    cases = [
        [{"id": str(i), **one} for i in range(21)],
        [{"id": "a", **one}, {"id": "A", **one}],
        [{"id": "1", "method": "POST", "url": f"/users/{ANN['mail']}/events", "body": EVENT}],
        [{"id": "1", "method": "GET", "url": "https://graph.microsoft.com/v1.0/me"}],
        [{"id": "1", "dependsOn": ["9"], **one}],
        [{"id": "1", "dependsOn": ["2"], **one}, {"id": "2", "dependsOn": ["1"], **one}],
        [],
    ]
    for requests_ in cases:
        error(graph.post("/$batch", json={"requests": requests_}), 400, "BadRequest")
    twenty = [{"id": str(i), **one} for i in range(20)]
    answers = batch(graph, twenty, {str(i): "Collection(graph.event)" for i in range(20)})
    assert {a["status"] for a in answers.values()} == {200}
    error(graph.post("/$batch", data="{", headers=JSON), 400, "BadRequest")
    error(graph.with_token(None).post("/$batch", json={"requests": [{"id": "1", **one}]}), 401,
          "InvalidAuthenticationToken")


def test_a_throttled_inner_request_gets_its_own_429(local: RunningServer) -> None:
    session = requests.Session()
    session.trust_env = False
    session.verify = str(local.sandbox.pki.ca_bundle_path)
    graph = Graph(local.base_url, raw_token(local, FABRIKAM), session)
    limiter = local.sandbox.calendars.limiter
    key = (FABRIKAM, CLIENT_ID, ANN["id"])
    for _ in range(4):
        assert limiter.try_acquire(key)
    try:
        answers = batch(graph, [{"id": "ann", "method": "GET", "url": f"/users/{ANN['mail']}/events"},
                                {"id": "ben", "method": "GET", "url": f"/users/{BEN['mail']}/events"}])
    finally:
        for _ in range(4):
            limiter.release(key)
    assert answers["ann"]["status"] == 429 and int(answers["ann"]["headers"]["Retry-After"]) >= 1
    assert answers["ann"]["body"]["error"] == {**answers["ann"]["body"]["error"], "code": "ApplicationThrottled",
                                               "message": "Application is over its MailboxConcurrency limit."}
    assert answers["ben"]["status"] == 200
