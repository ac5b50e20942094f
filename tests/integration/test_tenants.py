"""Tenants and members through the HTTP API, on Azurite and the sandbox's Key Vault."""

import uuid

import pytest

from shared.storage import SecretRef
from tests.support.consent_pages import admin_consent

TENANT = "2b9e56f8-499e-4153-949c-a7aeb479f07e"


def register(api, tenant=TENANT, **body):
    return api.put(f"/tenants/{tenant}", json={"organizationId": "org-42", "mode": "domain"} | body)


def own(api, sandbox, mode="domain"):
    """org-42 owns Fabrikam: its admin (Ann) consents through the real pages."""
    admin_consent(api, sandbox, TENANT, "ann@fabrikam.example", mode=mode)


def test_register_defaults_then_update(api):
    created = register(api)
    assert created.status_code == 201
    view = created.json()
    assert view == view | {"tenantId": TENANT, "organizationId": "org-42", "organizationName": "org-42",
                           "mode": "domain", "status": "pending_consent", "securityGroupId": None,
                           "defaultTimeZone": "UTC", "consentedAt": None, "connectedUsers": 0,
                           "usersNeedingReconnect": 0}
    assert view["updatedAt"].endswith("Z")
    updated = register(api, organizationName="Contoso on 10KC", defaultTimeZone="Europe/London",
                       securityGroupId="72D67C36-C17B-4A80-8C6B-B677302E7AAF")
    assert updated.status_code == 200
    assert updated.json()["securityGroupId"] == "72d67c36-c17b-4a80-8c6b-b677302e7aaf"
    got = api.get(f"/tenants/{TENANT}")
    assert got.status_code == 200
    assert got.json()["organizationName"] == "Contoso on 10KC"
    assert got.headers["x-request-id"]


def test_another_organization_gets_409_once_the_tenant_is_owned(api, sandbox):
    other = api.acting_for("org-99")
    assert register(other, organizationId="org-99").status_code == 201  # a claim blocks nobody
    own(api, sandbox)
    answer = register(other, organizationId="org-99")
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "tenant_owned_elsewhere"
    assert api.get(f"/tenants/{TENANT}").json()["organizationId"] == "org-42"


def test_the_organization_is_the_headers_and_the_body_may_only_repeat_it(api):
    created = api.put(f"/tenants/{TENANT}", json={"mode": "domain"})
    assert created.status_code == 201
    assert created.json()["organizationId"] == created.json()["organizationName"] == "org-42"
    other = api.put(f"/tenants/{TENANT}", json={"organizationId": "org-99", "mode": "domain"})
    assert other.status_code == 400
    assert other.json()["error"]["target"] == "organizationId"
    assert api.get(f"/tenants/{TENANT}").json()["organizationId"] == "org-42"


def test_changing_mode_goes_back_to_pending_consent(api, sandbox):
    own(api, sandbox)
    assert api.get(f"/tenants/{TENANT}").json()["status"] == "enabled"
    assert register(api, mode="domain").json()["status"] == "enabled"  # same mode: unchanged
    assert register(api, mode="delegated").json()["status"] == "pending_consent"


def test_security_group_is_for_domain_tenants_only(api):
    answer = register(api, mode="delegated", securityGroupId=str(uuid.uuid4()))
    assert answer.status_code == 409
    assert answer.json()["error"] == {"code": "wrong_mode", "message": answer.json()["error"]["message"],
                                      "target": "securityGroupId"}


@pytest.mark.parametrize(
    ("body", "target"),
    [
        ({"organizationId": "org-99", "mode": "domain"}, "organizationId"),
        ({"organizationId": 42, "mode": "domain"}, "organizationId"),
        ({"organizationId": "org 42", "mode": "domain"}, "organizationId"),
        ({"organizationId": "o" * 129, "mode": "domain"}, "organizationId"),
        ({"organizationId": "org-42"}, "mode"),
        ({"organizationId": "org-42", "mode": "everyone"}, "mode"),
        ({"organizationId": "org-42", "mode": "domain", "defaultTimeZone": "Mars/Olympus"}, "defaultTimeZone"),
        ({"organizationId": "org-42", "mode": "domain", "defaultTimeZone": 5}, "defaultTimeZone"),
        ({"organizationId": "org-42", "mode": "domain", "securityGroupId": "group"}, "securityGroupId"),
        ({"organizationId": "org-42", "mode": "domain", "organizationName": ""}, "organizationName"),
        ({"organizationId": "org-42", "mode": "domain", "surprise": 1}, "surprise"),
    ],
)
def test_bad_tenant_bodies_are_400_naming_the_field(api, body, target):
    answer = api.put(f"/tenants/{TENANT}", json=body)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "invalid_request"
    assert answer.json()["error"]["target"] == target


@pytest.mark.parametrize("raw", [b"", b"{", b"[]", b"\xff\xfe", b"null", b"[" * 100000])
def test_malformed_json_is_400(api, raw):
    answer = api.put(f"/tenants/{TENANT}", data=raw, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "invalid_request"


@pytest.mark.parametrize("tenant", ["not-a-guid", "2b9e56f8499e4153949ca7aeb479f07e0", "{2b9e56f8-499e}"])
def test_tenant_id_must_be_a_guid(api, tenant):
    for method in ("GET", "PUT", "DELETE"):
        answer = api.request(method, f"/tenants/{tenant}", json={})
        assert answer.status_code == 400
        assert answer.json()["error"]["target"] == "tenantId"


def test_unknown_tenant_is_404(api):
    other = str(uuid.uuid4())
    for method, path in [("GET", f"/tenants/{other}"), ("DELETE", f"/tenants/{other}"),
                         ("GET", f"/tenants/{other}/users/ada@contoso.example"),
                         ("POST", f"/tenants/{other}/consent")]:
        answer = api.request(method, path, json={"kind": "admin", "returnUrl": "http://127.0.0.1:3000/x"})
        assert answer.status_code == 404, (method, path)
        assert answer.json()["error"]["code"] == "tenant_not_found"


def test_method_not_allowed_on_tenant_routes(api):
    answer = api.post(f"/tenants/{TENANT}", json={})
    assert answer.status_code == 405
    assert set(answer.headers["Allow"].split(", ")) == {"GET", "PUT", "DELETE"}


def test_disconnect_deletes_every_token_keeps_the_rest_and_is_idempotent(api, sandbox):
    own(api, sandbox, mode="delegated")
    from shared.clients import member_tokens, repositories, secret_store

    members = member_tokens()
    ada = members.connect(TENANT, "OID-ADA", "Ada@Fabrikam.example", "rt-ada-1")
    members.connect(TENANT, "oid-bob", "bob@fabrikam.example", "rt-bob-1")
    names = [ref.secretName for ref in repositories().secret_refs(TENANT)]
    assert len(names) == 2
    assert secret_store().get(ada.secretName) == "rt-ada-1"
    assert api.get(f"/tenants/{TENANT}").json()["connectedUsers"] == 2

    assert api.delete(f"/tenants/{TENANT}").status_code == 204
    view = api.get(f"/tenants/{TENANT}").json()
    assert (view["status"], view["connectedUsers"]) == ("disabled", 0)
    from shared.errors import SecretNotFound

    for name in names:
        with pytest.raises(SecretNotFound):
            secret_store().get(name)
    refs = list(repositories().secret_refs(TENANT, include_deleted=True))
    assert len(refs) == 2
    assert all(isinstance(r, SecretRef) and r.deletedAt for r in refs)
    assert api.delete(f"/tenants/{TENANT}").status_code == 204  # twice: still 204
    assert api.get(f"/tenants/{TENANT}/users/oid-ada").json()["status"] == "not_connected"


def test_members_status_by_oid_or_email_and_disconnect(api, sandbox):
    own(api, sandbox, mode="delegated")
    from shared.clients import member_tokens, secret_store

    first = member_tokens().connect(TENANT, "oid-ada", "ada@fabrikam.example", "rt-1")
    second = member_tokens().connect(TENANT, "oid-ada", "ada@fabrikam.example", "rt-2")  # connects again
    assert first.secretName != second.secretName
    from shared.errors import SecretNotFound

    with pytest.raises(SecretNotFound):
        secret_store().get(first.secretName)  # the old connection's token is gone
    by_oid = api.get(f"/tenants/{TENANT}/users/OID-ADA").json()
    by_mail = api.get(f"/tenants/{TENANT}/users/ADA@fabrikam.example").json()
    assert by_oid == by_mail
    assert by_oid["status"] == "connected" and by_oid["email"] == "ada@fabrikam.example"
    never = api.get(f"/tenants/{TENANT}/users/grace@fabrikam.example")
    assert never.status_code == 200
    assert never.json()["status"] == "not_connected"
    assert api.delete(f"/tenants/{TENANT}/users/ada@fabrikam.example").status_code == 204
    assert api.delete(f"/tenants/{TENANT}/users/ada@fabrikam.example").status_code == 204
    assert api.get(f"/tenants/{TENANT}/users/oid-ada").json()["status"] == "not_connected"
    with pytest.raises(SecretNotFound):
        secret_store().get(second.secretName)
    bad = api.get(f"/tenants/{TENANT}/users/not%20valid")
    assert bad.status_code == 400
    assert bad.json()["error"]["target"] == "userId"


def test_members_list_by_email_in_pages_with_a_status_filter(api, sandbox):
    own(api, sandbox, mode="delegated")
    from shared.clients import member_tokens

    members = member_tokens()
    for n, email in enumerate(["zed@fabrikam.example", "Amy@fabrikam.example", "kim@fabrikam.example",
                               "bo@fabrikam.example", "lee@fabrikam.example"]):
        members.connect(TENANT, f"oid-{n}", email, f"rt-{n}")
    members.mark_needs_reconnect(members.repos.user(TENANT, "oid-2"))  # kim
    members.disconnect(TENANT, "oid-4")  # lee

    seen, cursor, pages = [], None, 0
    while True:
        answer = api.get(f"/tenants/{TENANT}/users", params={"limit": 2} | ({"cursor": cursor} if cursor else {}))
        assert answer.status_code == 200, answer.text
        page = answer.json()
        assert len(page["users"]) <= 2
        seen += page["users"]
        pages += 1
        cursor = page["next"]
        if cursor is None:
            break
    assert pages == 3
    assert [u["email"] for u in seen] == ["amy@fabrikam.example", "bo@fabrikam.example", "kim@fabrikam.example",
                                          "lee@fabrikam.example", "zed@fabrikam.example"]
    assert {u["status"] for u in seen} == {"connected", "needs_reconnect", "not_connected"}
    assert set(seen[0]) == {"userId", "email", "status", "connectedAt", "lastRefreshAt"}

    reconnect = api.get(f"/tenants/{TENANT}/users?status=needs_reconnect").json()
    assert [u["email"] for u in reconnect["users"]] == ["kim@fabrikam.example"] and reconnect["next"] is None
    connected = api.get(f"/tenants/{TENANT}/users?status=connected&limit=500").json()
    assert [u["userId"] for u in connected["users"]] == ["oid-1", "oid-3", "oid-0"]

    # A cursor belongs to its filter; bad values are 400 naming the parameter.
    first = api.get(f"/tenants/{TENANT}/users?limit=1").json()
    mixed = api.get(f"/tenants/{TENANT}/users", params={"status": "connected", "cursor": first["next"]})
    assert mixed.status_code == 400 and mixed.json()["error"]["target"] == "cursor"
    for query, target in (("status=gone", "status"), ("limit=0", "limit"), ("limit=501", "limit"),
                          ("limit=ten", "limit"), ("limit=-1", "limit"), ("cursor=%25%25", "cursor"),
                          ("cursor=eyJ4IjoxfQ", "cursor")):
        bad = api.get(f"/tenants/{TENANT}/users?{query}")
        assert bad.status_code == 400, query
        assert bad.json()["error"] == bad.json()["error"] | {"code": "invalid_request", "target": target}


def test_members_list_of_an_unknown_or_claimed_tenant(api):
    assert api.get(f"/tenants/{uuid.uuid4()}/users").status_code == 404
    register(api, mode="delegated")  # a claim: no members yet
    assert api.get(f"/tenants/{TENANT}/users").json() == {"users": [], "next": None}
