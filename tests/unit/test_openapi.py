"""openapi.yaml: the routes it describes are the routes the FunctionApp registers, and every
example in it validates against its own schemas (JSON Schema 2020-12, as OpenAPI 3.1 uses)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from tests.support.days import at

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = yaml.safe_load((ROOT / "openapi.yaml").read_text())
METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


def registered_routes() -> set[tuple[str, str]]:
    import function_app
    from shared.platform_routes import app_functions

    routes = set()
    for function in app_functions(function_app.app):
        for binding in json.loads(function.get_function_json())["bindings"]:
            if binding.get("type") == "httpTrigger":
                route = binding.get("route") or function.get_function_name()
                if route == "{*path}":
                    continue  # the catch-all answers 404/405 for what is not a route: not one itself
                for method in binding.get("methods") or ["GET"]:
                    routes.add((method.upper(), "/" + route))
    return routes


def documented_routes() -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in DOCUMENT["paths"].items() for method in item if method in METHODS}


def test_document_and_app_have_the_same_routes():
    assert documented_routes() == registered_routes()


def validator(schema: dict) -> jsonschema.Draft202012Validator:
    """A validator for a schema of the document, its `#/components/...` references resolved."""
    registry = Registry().with_resource("urn:openapi", DRAFT202012.create_resource(DOCUMENT))
    rooted = json.loads(json.dumps(schema).replace('"#/components', '"urn:openapi#/components'))
    return jsonschema.Draft202012Validator(rooted, registry=registry, format_checker=jsonschema.FormatChecker())


def examples():
    found = []
    for path, item in DOCUMENT["paths"].items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            body = (operation.get("requestBody") or {}).get("content", {}).get("application/json")
            if body and "example" in body:
                found.append((f"{method} {path} request", body["schema"], body["example"]))
            for status, response in operation["responses"].items():
                response = resolve(response)
                content = (response.get("content") or {}).get("application/json")
                if content and "example" in content:
                    found.append((f"{method} {path} {status}", content["schema"], content["example"]))
                for name, named in ((content or {}).get("examples") or {}).items():
                    found.append((f"{method} {path} {status} {name}", content["schema"], named["value"]))
    return found


def resolve(node: dict) -> dict:
    if "$ref" in node:
        target = DOCUMENT
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        return target
    return node


@pytest.mark.parametrize(("name", "schema", "example"), examples(), ids=lambda v: v if isinstance(v, str) else "")
def test_examples_validate_against_their_schemas(name, schema, example):
    errors = sorted(validator(schema).iter_errors(example), key=str)
    assert not errors, f"{name}: {errors[0].message}"


def test_there_are_examples_for_every_body_kind():
    names = " ".join(name for name, _, _ in examples())
    for operation in ("put /tenants/{tenantId} request", "post /tenants/{tenantId}/availability 200",
                      "post /tenants/{tenantId}/bookings 201", "post /tenants/{tenantId}/consent 201"):
        assert operation in names


def test_schemas_reject_what_the_contract_refuses():
    booking = resolve({"$ref": "#/components/schemas/BookingInput"})
    good = {"organizer": "a@x.example", "attendees": ["b@x.example"], "start": at(0, "10:00:00-05:00"),
            "end": at(0, "10:30:00-05:00"), "subject": "s"}
    assert validator(booking).is_valid(good)
    for bad in ({**good, "subject": ""}, {**good, "attendees": []}, {**good, "start": at(0, "10:00:00")},
                {**good, "onlineMeeting": "yes"}, {**good, "extra": 1}):
        assert not validator(booking).is_valid(bad)


def test_the_document_is_served_by_the_app():
    import azure.functions as func

    import function_app
    from shared.platform_routes import app_functions

    handler = {f.get_function_name(): f.get_user_function() for f in app_functions(function_app.app)}["openapi"]
    response = handler(func.HttpRequest(method="GET", url="http://127.0.0.1:7071/api/openapi.yaml", body=b""))
    assert response.status_code == 200
    assert response.mimetype == "application/yaml"
    assert yaml.safe_load(response.get_body()) == DOCUMENT


def operations():
    for path, item in DOCUMENT["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, item, operation


def test_every_tenant_operation_needs_the_bearer_token_and_the_organization():
    tenant_operations = 0
    for path, method, item, operation in operations():
        security = operation.get("security", DOCUMENT["security"])
        if not path.startswith("/tenants/"):
            assert security == [], f"{method} {path}: a public route says security: []"
            continue
        tenant_operations += 1
        assert security == [{"entraId": []}], f"{method} {path}"
        parameters = [resolve(p) for p in [*item.get("parameters", []), *operation.get("parameters", [])]]
        header = [p for p in parameters if p["in"] == "header" and p["name"] == "X-Organization-Id"]
        assert len(header) == 1 and header[0]["required"] is True, f"{method} {path}"
        responses = operation["responses"]
        assert responses["401"] == {"$ref": "#/components/responses/Unauthenticated"}, f"{method} {path}"
        assert responses["403"] == {"$ref": "#/components/responses/Forbidden"}, f"{method} {path}"
        assert {"400", "500"} <= set(responses), f"{method} {path}"
    assert tenant_operations == sum(1 for method, path in registered_routes() if path.startswith("/tenants/"))


def test_the_bearer_scheme_and_its_refusals():
    scheme = DOCUMENT["components"]["securitySchemes"]["entraId"]
    assert {k: scheme[k] for k in ("type", "scheme", "bearerFormat")} == {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    assert "Calendar.Integration" in scheme["description"] and "client credentials" in scheme["description"]
    assert set(DOCUMENT["components"]["securitySchemes"]) == {"entraId"}  # no function keys
    for name in ("Unauthenticated", "Forbidden"):
        response = DOCUMENT["components"]["responses"][name]
        assert "WWW-Authenticate" in response["headers"]
        assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    codes = DOCUMENT["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"]
    assert {"unauthenticated", "forbidden"} <= set(codes)
    header = DOCUMENT["components"]["parameters"]["OrganizationId"]
    assert header["schema"]["pattern"] == "^[A-Za-z0-9_.@+-]{1,128}$"


def test_the_webhook_is_described_with_its_signature():
    import re

    from sync.webhooks import SIGNATURE_HEADER, sign

    hook = DOCUMENT["webhooks"]["change"]["post"]
    assert hook["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Change"}
    [header] = [p for p in hook["parameters"] if p["in"] == "header"]
    assert header["name"] == SIGNATURE_HEADER and header["required"] is True
    pattern = re.compile(header["schema"]["pattern"])
    assert pattern.fullmatch(sign(b"{}", [b"one"], 1_700_000_000))
    assert pattern.fullmatch(sign(b"{}", [b"new", b"old"], 1_700_000_000))  # a rotation: two v1
