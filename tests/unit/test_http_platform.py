"""Health, the catch-all (404 / 405 in the envelope) and x-request-id, through the functions the
FunctionApp registers (no server)."""

import json

import azure.functions as func
import pytest


@pytest.fixture(scope="module")
def functions():
    import function_app
    from shared.platform_routes import app_functions

    return {f.get_function_name(): f.get_user_function() for f in app_functions(function_app.app)}


def request(method: str, path: str, headers: dict | None = None, route_params: dict | None = None):
    return func.HttpRequest(method=method, url=f"http://127.0.0.1:7071/api/{path}", headers=headers or {},
                            route_params=route_params or {}, body=b"")


def test_health_answers_ok_with_a_request_id(functions):
    response = functions["health"](request("GET", "health"))
    assert response.status_code == 200
    assert json.loads(response.get_body()) == {"status": "ok", "version": "0.1.0"}
    assert len(response.headers["x-request-id"]) == 36


def test_caller_request_id_is_echoed_only_when_plain(functions):
    response = functions["health"](request("GET", "health", {"x-request-id": "req-42.a"}))
    assert response.headers["x-request-id"] == "req-42.a"
    response = functions["health"](request("GET", "health", {"x-request-id": "bad\r\nid"}))
    assert response.headers["x-request-id"] != "bad\r\nid"


def test_unknown_route_is_404_in_the_envelope(functions):
    response = functions["not_found"](request("GET", "nope", route_params={"path": "nope"}))
    assert response.status_code == 404
    assert json.loads(response.get_body()) == {"error": {"code": "not_found", "message": "No such route."}}
    assert response.headers["x-request-id"]


def test_known_route_with_another_method_is_405(functions):
    response = functions["not_found"](request("POST", "health", route_params={"path": "health"}))
    assert response.status_code == 405
    body = json.loads(response.get_body())
    assert body["error"]["code"] == "method_not_allowed"
    assert response.headers["Allow"] == "GET"


def test_every_http_function_is_wrapped_for_request_ids(functions):
    import function_app
    from shared.platform_routes import app_functions

    for function in app_functions(function_app.app):
        bindings = json.loads(function.get_function_json())["bindings"]
        if any(b["type"] == "httpTrigger" for b in bindings):
            assert hasattr(function.get_user_function(), "__wrapped__"), function.get_function_name()


def test_unexpected_exception_is_a_plain_500_envelope(caplog):
    from shared.http import endpoint

    @endpoint
    def broken(req):
        raise RuntimeError("secret detail that must not leak")

    response = broken(request("GET", "x"))
    assert response.status_code == 500
    body = response.get_body().decode()
    assert "secret detail" not in body
    assert json.loads(body)["error"]["code"] == "internal_error"
