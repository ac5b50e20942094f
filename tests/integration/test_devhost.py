"""devhost against the sample apps in tests/devhost_apps, with Azurite for the queue trigger."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient

from devhost.host import LocalHost
from tests.devhost_apps import jobs, minimal_app, sample_app
from tools.procs import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
# Azurite's well-known development account (public, documented by Microsoft).
WORK_QUEUE = "devhost-work"
HOST_JSON = {
    "version": "2.0",
    "extensions": {"queues": {"batchSize": 4, "maxPollingInterval": "00:00:01",
                              "visibilityTimeout": "00:00:00", "maxDequeueCount": 3}},
}


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


@pytest.fixture(scope="module")
def azurite(azurite) -> str:
    """The session's Azurite (tests/conftest.py), as the storage connection string."""
    return azurite.connection_string


def app_settings(connection: str) -> dict[str, str]:
    return {"DevhostStorage": connection, "WORK_QUEUE": WORK_QUEUE,
            "NIGHTLY_SCHEDULE": "0 0 3 * * *", "TICK_SCHEDULE": "*/1 * * * * *"}


@pytest.fixture(scope="module")
def host(azurite: str) -> Iterator[LocalHost]:
    local = LocalHost(sample_app.app, settings=app_settings(azurite), host_json=HOST_JSON, port=0).start()
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture
def web(host: LocalHost) -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def queue(connection: str, name: str) -> QueueClient:
    client = QueueClient.from_connection_string(connection, name)
    if name.endswith("-poison"):
        return client
    with contextlib.suppress(ResourceExistsError):
        client.create_queue()
    return client


# ----- HTTP routing -----


def test_route_params_query_and_headers(host: LocalHost, web: requests.Session) -> None:
    response = web.get(f"{host.base_url}/api/items/42?x=1&x=2&flag&name=a%20b", headers={"X-Test": "yes"})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    document = response.json()
    assert document["function"] == "get_item"
    assert document["method"] == "GET"
    assert document["route"] == {"item_id": "42"}
    assert document["params"] == {"x": "1,2", "flag": "", "name": "a b"}
    assert document["x_test"] == "yes"
    assert document["url"] == f"{host.base_url}/api/items/42?x=1&x=2&flag&name=a%20b"


def test_literal_route_wins_over_parameter(host: LocalHost, web: requests.Session) -> None:
    assert web.get(f"{host.base_url}/api/items/special").json()["function"] == "special_item"
    assert web.get(f"{host.base_url}/api/ITEMS/Special").json()["function"] == "special_item"
    assert web.get(f"{host.base_url}/api/items/spec%20ial").json()["route"] == {"item_id": "spec ial"}


def test_method_mismatch_falls_through_to_catch_all(host: LocalHost, web: requests.Session) -> None:
    response = web.post(f"{host.base_url}/api/items/42", data=b"x")
    assert response.status_code == 404
    assert response.json()["function"] == "catch_all"
    assert response.json()["route"] == {"path": "items/42"}
    deep = web.delete(f"{host.base_url}/api/no/such/thing")
    assert deep.json()["route"] == {"path": "no/such/thing"}


def test_outside_the_route_prefix_is_an_empty_404(host: LocalHost, web: requests.Session) -> None:
    response = web.get(f"{host.base_url}/items/42")
    assert response.status_code == 404
    assert response.content == b""


def test_bodies_and_response_headers(host: LocalHost, web: requests.Session) -> None:
    payload = bytes(range(256)) * 100
    response = web.put(f"{host.base_url}/api/echo", data=payload,
                        headers={"Content-Type": "application/x-test"})
    assert response.status_code == 201
    assert response.content == payload
    assert response.headers["Content-Type"] == "application/x-test"
    assert response.headers["X-Echo-Method"] == "PUT"
    assert response.raw.headers.getlist("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/"]
    assert response.headers["Content-Length"] == str(len(payload))


def test_chunked_request_body(host: LocalHost, web: requests.Session) -> None:
    response = web.post(f"{host.base_url}/api/echo", data=iter([b"one ", b"two ", b"three"]),
                         headers={"Content-Type": "text/plain"})
    assert response.status_code == 201
    assert response.content == b"one two three"


def test_text_response_gets_charset(host: LocalHost, web: requests.Session) -> None:
    response = web.get(f"{host.base_url}/api/text")
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.text == "héllo"


def test_exception_is_an_empty_500(host: LocalHost, web: requests.Session) -> None:
    response = web.get(f"{host.base_url}/api/boom")
    assert response.status_code == 500
    assert response.content == b""
    assert web.get(f"{host.base_url}/api/text").status_code == 200  # the host carries on


def test_async_function_and_context(host: LocalHost, web: requests.Session) -> None:
    assert web.get(f"{host.base_url}/api/async/ada").text == "hello ada"
    document = web.get(f"{host.base_url}/api/context").json()
    assert document["function_name"] == "context_probe"
    assert len(document["invocation_id"]) == 36


def test_async_functions_share_the_loop(host: LocalHost) -> None:
    """Eight requests wait in one async function until all eight are in it: they run at once on
    the host's loop (as on the worker's), not one after another or each with asyncio.run."""
    from concurrent.futures import ThreadPoolExecutor

    def get(_: int) -> tuple[int, str]:
        answer = requests.get(f"{host.base_url}/api/rendezvous/8", timeout=15)
        return answer.status_code, answer.text

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(get, range(8))) == [(200, "met on 1 loop(s)")] * 8


def test_protocol_edges(host: LocalHost) -> None:
    """What http.server did before the asyncio front end: 100-continue, HEAD without a body,
    HTTP/1.0 closing, a malformed request line, too many headers."""
    def exchange(raw: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", host.port), timeout=5) as sock:
            sock.sendall(raw)
            chunks = []
            while chunk := sock.recv(65536):  # every exchange here ends with the server closing
                chunks.append(chunk)
            return b"".join(chunks)

    continued = exchange(b"POST /api/echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n"
                         b"Connection: close\r\n\r\nhi")
    assert continued.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\n")
    assert continued.endswith(b"\r\n\r\nhi")
    head = exchange(b"HEAD /api/anything HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")  # the catch-all
    assert head.startswith(b"HTTP/1.1 404 ") and head.endswith(b"\r\n\r\n")  # its length, not its body
    assert int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0]) > 0
    old = exchange(b"GET /api/text HTTP/1.0\r\n\r\n")  # no keep-alive asked: answered, then closed
    assert old.startswith(b"HTTP/1.1 200 ") and b"Connection: close" in old
    assert exchange(b"NONSENSE\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    many = b"".join(b"X-%d: y\r\n" % n for n in range(101))
    assert exchange(b"GET /api/text HTTP/1.1\r\n" + many + b"\r\n").startswith(b"HTTP/1.1 431 ")


def test_keep_alive(host: LocalHost) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", host.port, timeout=5)
    try:
        connection.request("GET", "/api/text")
        first = connection.getresponse()
        assert first.read() == "héllo".encode()
        sock = connection.sock
        connection.request("POST", "/api/echo", body=b"again", headers={"Content-Type": "text/plain"})
        second = connection.getresponse()
        assert second.read() == b"again"
        assert connection.sock is sock  # same connection
        connection.request("GET", "/api/boom")
        assert connection.getresponse().read() == b""
        connection.request("GET", "/api/text")
        assert connection.getresponse().status == 200
        assert connection.sock is sock
    finally:
        connection.close()


def test_request_body_over_100_mb_is_413(host: LocalHost) -> None:
    with socket.create_connection(("127.0.0.1", host.port), timeout=5) as sock:
        sock.sendall(b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 104857601\r\n\r\n")
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 413 ")


def test_minimal_app_prefix_and_plain_404() -> None:
    local = LocalHost(minimal_app.app, host_json={"extensions": {"http": {"routePrefix": "v1"}}}, port=0).start()
    try:
        with requests.Session() as session:
            assert session.get(f"{local.base_url}/v1/hello/bob").text == "hello bob"
            assert session.delete(f"{local.base_url}/v1/ping").text == "pong"  # no methods: all methods
            for method, path in [("GET", "/api/hello/bob"), ("POST", "/v1/hello/bob"), ("GET", "/v1/nope")]:
                response = session.request(method, f"{local.base_url}{path}")
                assert (response.status_code, response.content) == (404, b"")
    finally:
        local.stop()


def test_stop_closes_keep_alive_connections_and_the_app_loads_again() -> None:
    local = LocalHost(minimal_app.app, port=0).start()
    connection = http.client.HTTPConnection("127.0.0.1", local.port, timeout=5)
    try:
        connection.request("GET", "/api/ping")
        assert connection.getresponse().read() == b"pong"
        local.stop()
        try:  # the connection is closed, or (if the request beat the close) answered 503 and closed
            connection.request("GET", "/api/ping")
            response = connection.getresponse()
            assert (response.status, response.getheader("Connection")) == (503, "close")
        except (http.client.HTTPException, OSError):
            pass
    finally:
        connection.close()
        local.stop()
    again = LocalHost(minimal_app.app, port=0).start()  # get_functions() twice on one app
    try:
        assert requests.get(f"{again.base_url}/api/ping", timeout=5).text == "pong"
    finally:
        again.stop()


# ----- admin API -----


def test_admin_functions(host: LocalHost, web: requests.Session) -> None:
    listing = web.get(f"{host.base_url}/admin/functions").json()
    by_name = {entry["name"]: entry for entry in listing}
    assert set(by_name) == {"get_item", "special_item", "echo", "text", "boom", "async_hello", "rendezvous",
                            "context_probe", "catch_all", "nightly", "ticker", "worker"}
    item = by_name["get_item"]
    assert item["invoke_url_template"] == f"http://127.0.0.1:{host.port}/api/items/{{item_id}}"
    assert item["config"]["bindings"][0] == {"direction": "IN", "type": "httpTrigger", "name": "req",
                                             "methods": ["GET"], "authLevel": "FUNCTION", "route": "items/{item_id}"}
    assert by_name["nightly"]["invoke_url_template"] is None
    assert by_name["nightly"]["config"]["bindings"][0]["schedule"] == "%NIGHTLY_SCHEDULE%"
    assert by_name["worker"]["config"]["bindings"][0]["queueName"] == "%WORK_QUEUE%"
    assert web.get(f"{host.base_url}/admin/functions/worker").json()["name"] == "worker"
    assert web.get(f"{host.base_url}/admin/host/status").json()["state"] == "Running"


def test_admin_runs_a_timer(host: LocalHost, web: requests.Session) -> None:
    before = len(jobs.records("nightly"))
    response = web.post(f"{host.base_url}/admin/functions/nightly", json={"input": ""})
    assert (response.status_code, response.content) == (202, b"")
    wait_for(lambda: len(jobs.records("nightly")) > before, timeout=5)
    assert jobs.records("nightly")[-1] == {"past_due": False}


def test_admin_errors(host: LocalHost, web: requests.Session) -> None:
    assert web.post(f"{host.base_url}/admin/functions/nope", json={"input": ""}).status_code == 404
    assert web.post(f"{host.base_url}/admin/functions/echo", json={"input": ""}).status_code == 400
    assert web.post(f"{host.base_url}/admin/functions/nightly").status_code == 400  # no body
    assert web.get(f"{host.base_url}/admin/nothing").status_code == 404


def test_timer_runs_on_startup_and_on_schedule(host: LocalHost) -> None:
    ticks = wait_for(lambda: len(jobs.records("ticker")) >= 3 and jobs.records("ticker"), timeout=5)
    assert all(tick["past_due"] is False for tick in ticks)
    assert "Next" in ticks[-1]["schedule_status"]


def test_run_function_in_process(host: LocalHost) -> None:
    host.run_function("worker", "direct")
    entry = jobs.records("worker")[-1]
    assert (entry["body"], entry["dequeue_count"], entry["id"]) == (b"direct", 0, None)
    with pytest.raises(ValueError, match="HTTP function"):
        host.run_function("echo")


# ----- queue trigger -----


def worker_entries(body: bytes) -> list[dict[str, Any]]:
    return [entry for entry in jobs.records("worker") if entry["body"] == body]


def test_queue_message_is_delivered_and_deleted(host: LocalHost, azurite: str) -> None:
    client = queue(azurite, WORK_QUEUE)
    client.send_message(base64.b64encode(b"hello queue").decode())
    entry = wait_for(lambda: worker_entries(b"hello queue"), timeout=10)[0]
    assert entry["dequeue_count"] == 1
    assert entry["id"] and entry["pop_receipt"]
    assert entry["insertion_time"] is not None
    wait_for(lambda: client.get_queue_properties().approximate_message_count == 0, timeout=5)
    assert len(worker_entries(b"hello queue")) == 1


def test_failing_message_goes_to_poison_after_max_dequeue_count(host: LocalHost, azurite: str) -> None:
    client = queue(azurite, WORK_QUEUE)
    original = base64.b64encode(b"FAIL please").decode()
    client.send_message(original)
    poison = queue(azurite, f"{WORK_QUEUE}-poison")

    def poisoned() -> list[str]:
        try:
            return [m.content for m in poison.peek_messages(max_messages=32) if m.content == original]
        except Exception:
            return []

    assert wait_for(poisoned, timeout=15) == [original]
    assert [e["dequeue_count"] for e in worker_entries(b"FAIL please")] == [1, 2, 3]  # maxDequeueCount 3
    wait_for(lambda: client.get_queue_properties().approximate_message_count == 0, timeout=5)


def test_invalid_base64_goes_to_poison_without_a_call(host: LocalHost, azurite: str) -> None:
    client = queue(azurite, WORK_QUEUE)
    client.send_message("this is not base64!")
    poison = queue(azurite, f"{WORK_QUEUE}-poison")
    wait_for(lambda: any(m.content == "this is not base64!" for m in poison.peek_messages(max_messages=32)),
             timeout=10)
    assert not worker_entries(b"this is not base64!")
    wait_for(lambda: client.get_queue_properties().approximate_message_count == 0, timeout=5)


def test_admin_runs_a_queue_function(host: LocalHost, web: requests.Session) -> None:
    response = web.post(f"{host.base_url}/admin/functions/worker", json={"input": "from admin"})
    assert response.status_code == 202
    entry = wait_for(lambda: worker_entries(b"from admin"), timeout=5)[0]
    assert entry["dequeue_count"] == 0


# ----- python -m devhost -----


def read_until(stream, marker: str, timeout: float) -> list[str]:
    lines: list[str] = []
    found = threading.Event()

    def reader() -> None:
        for line in stream:
            lines.append(line)
            if marker in line:
                found.set()
                return

    threading.Thread(target=reader, daemon=True).start()
    assert found.wait(timeout), f"{marker!r} not printed; output so far: {lines}"
    return lines


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_cli_serves_and_stops_on_signal(azurite: str, tmp_path: Path, signum: int) -> None:
    (tmp_path / "local.settings.json").write_text(json.dumps({"IsEncrypted": False,
                                                              "Values": app_settings(azurite)}))
    (tmp_path / "host.json").write_text(json.dumps(HOST_JSON))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in app_settings(azurite)}
    process = subprocess.Popen(
        [sys.executable, "-m", "devhost", "--app", "tests.devhost_apps.sample_app", "--port", str(port),
         "--settings", str(tmp_path / "local.settings.json"), "--host-json", str(tmp_path / "host.json")],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        output = read_until(process.stdout, "devhost listening on", timeout=15)
        banner = "".join(output)
        assert f"get_item: [GET] http://127.0.0.1:{port}/api/items/{{item_id}}" in banner
        assert "worker: queueTrigger" in banner
        assert output[-1].strip() == f"devhost listening on http://127.0.0.1:{port}"
        assert requests.get(f"http://127.0.0.1:{port}/api/async/cli", timeout=5).text == "hello cli"
        time.sleep(0.5)  # let the pollers and timers get going
        started = time.monotonic()
        process.send_signal(signum)
        assert process.wait(timeout=5) == 0
        assert time.monotonic() - started < 5
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_function_disabled_by_its_app_setting_is_not_triggered(azurite: str) -> None:
    """`AzureWebJobs.<name>.Disabled`: the queue is not polled; the other functions still run."""
    name = "devhost-disabled"
    settings = {**app_settings(azurite), "WORK_QUEUE": name, "AzureWebJobs.worker.Disabled": "true"}
    client = queue(azurite, name)
    client.send_message(base64.b64encode(b"left alone").decode())
    local = LocalHost(sample_app.app, settings=settings, host_json=HOST_JSON, port=0).start()
    try:
        assert requests.get(f"{local.base_url}/api/items/7", timeout=5).status_code == 200
        time.sleep(2.5)  # two polling intervals
        assert worker_entries(b"left alone") == []
        assert client.get_queue_properties().approximate_message_count == 1
    finally:
        local.stop()
        client.delete_queue()
