"""The real FunctionApp served by the local host over HTTP, as `make run` serves it."""

import pytest
import requests


def test_health_over_http(host):
    response = requests.get(f"{host.base_url}/api/health", timeout=5)
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.headers["x-request-id"]


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "PATCH"])
def test_unknown_routes_are_404_envelopes_for_every_method(host, method):
    response = requests.request(method, f"{host.base_url}/api/tenants/x/nothing", data=b"{}", timeout=5)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert response.headers["x-request-id"]


def test_wrong_method_on_a_route_is_405_with_allow(host):
    response = requests.delete(f"{host.base_url}/api/health", headers={"x-request-id": "t-405"}, timeout=5)
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert response.headers["Allow"] == "GET"
    assert response.headers["x-request-id"] == "t-405"


def test_admin_api_lists_the_apps_functions(host):
    functions = requests.get(f"{host.base_url}/admin/functions", timeout=5).json()
    names = {f["name"] for f in functions}
    assert {"health", "not_found"} <= names
    for function in functions:
        assert function["config"]["bindings"][0]["type"]
