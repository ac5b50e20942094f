import pytest

from shared.routing import RouteTemplate, allowed_methods


def test_parameters_and_literals():
    template = RouteTemplate.parse("tenants/{tenantId}/bookings/{bookingId}")
    assert template.match("tenants/abc/bookings/b-1") == {"tenantId": "abc", "bookingId": "b-1"}
    assert template.match("TENANTS/abc/Bookings/b-1") == {"tenantId": "abc", "bookingId": "b-1"}
    assert template.match("tenants/abc/bookings") is None
    assert template.match("tenants/abc/bookings/b-1/extra") is None
    assert template.match("tenants//bookings/b-1") is None


def test_percent_encoded_segments_are_decoded():
    template = RouteTemplate.parse("tenants/{tenantId}/users/{userId}")
    assert template.match("tenants/t/users/ada%40contoso.com") == {"tenantId": "t", "userId": "ada@contoso.com"}


def test_catch_all_takes_the_rest_including_nothing():
    template = RouteTemplate.parse("{*path}")
    assert template.match("") == {"path": ""}
    assert template.match("a/b/c") == {"path": "a/b/c"}
    with pytest.raises(ValueError, match="last"):
        RouteTemplate.parse("{*path}/x")


def test_precedence_literal_then_parameter_then_catch_all():
    templates = [RouteTemplate.parse(t) for t in ("{*path}", "tenants/{id}", "tenants/new", "health")]
    ordered = [t.template for t in sorted(templates, key=lambda t: t.precedence)]
    assert ordered.index("tenants/new") < ordered.index("tenants/{id}")
    assert ordered[-1] == "{*path}"


def test_allowed_methods_ignores_the_catch_all():
    routes = [
        (RouteTemplate.parse("tenants/{id}"), frozenset({"GET", "PUT"})),
        (RouteTemplate.parse("tenants/{id}"), frozenset({"DELETE"})),
        (RouteTemplate.parse("{*path}"), frozenset({"GET", "POST"})),
    ]
    assert allowed_methods(routes, "tenants/x") == {"GET", "PUT", "DELETE"}
    assert allowed_methods(routes, "nothing/here") == set()
