"""The help article's admin steps end to end, in headless Chromium: the web app asks for a consent
link, the browser opens it, the sandbox's Microsoft consent page is accepted, and the service's
callback page says it worked. Then the same for a member of a delegated tenant."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from tests.conftest import SANDBOX_SEED

RETURN = "http://127.0.0.1:3000/admin/integrations"
CONTOSO = "520e6fd5-c619-4c0f-b927-0af414daa899"  # in the seed: not consented, no admin listed
NORTHWIND = "f3278773-52f3-496a-b4a0-f958ba221f03"
GRACE = {"id": "0c8f6f3e-6f0e-4c1e-9d61-3a6c0d6b9e01", "mail": "grace@northwind.example",
         "displayName": "Grace Hopper", "timeZone": "Europe/London"}
NORA = {"id": "0c8f6f3e-6f0e-4c1e-9d61-3a6c0d6b9e02", "mail": "nora@northwind.example",
        "displayName": "Nora Admin", "isAdmin": True}
CAROL = {"id": "0c8f6f3e-6f0e-4c1e-9d61-3a6c0d6b9e03", "mail": "carol@contoso.example",
         "displayName": "Carol Admin", "isAdmin": True}


@pytest.fixture
def service(api, host, sandbox, app_env, monkeypatch):
    """The service with PUBLIC_BASE_URL = the running host, and that callback registered on the
    sandbox's app, so Microsoft's redirect comes back to the real service."""
    import json

    from tests.conftest import clear_caches

    monkeypatch.setenv("PUBLIC_BASE_URL", host.base_url)
    clear_caches()
    seed = json.loads(SANDBOX_SEED.read_text())
    app = copy.deepcopy(seed["apps"][0])
    app["redirectUris"].append(f"{host.base_url}/api/consent/callback")
    tenants: list[dict[str, Any]] = copy.deepcopy(seed["tenants"])
    for tenant in tenants:
        if tenant["tenantId"] == NORTHWIND:
            tenant["consented"] = {}
            tenant["users"] = [GRACE, NORA]
        if tenant["tenantId"] == CONTOSO:
            tenant["users"] = [*tenant["users"], CAROL]  # a Global Administrator to prove the consent
    sandbox.reset({"apps": [app, *seed["apps"][1:]], "tenants": tenants})  # the callers stay
    yield api
    sandbox.reset({"apps": seed["apps"], "tenants": seed["tenants"]})


def consent_page(browser: Browser, api, tenant: str, kind: str, login_hint: str | None = None) -> Page:
    link = api.post(f"/tenants/{tenant}/consent", json={"kind": kind, "returnUrl": RETURN, "loginHint": login_hint})
    assert link.status_code == 201, link.text
    page = browser.new_context().new_page()
    page.goto(link.json()["redirectUrl"])  # our redirect, then Microsoft's (the sandbox's) page
    assert page.locator("button").all_inner_texts() == ["Accept", "Cancel"]
    return page


def test_domain_admin_connects_the_organization(browser: Browser, service, host) -> None:
    """Accepting Microsoft's page starts the admin's sign-in session, so the service's proof sign-in
    (prompt=none) passes without another page; the link back carries the outcome."""
    service = service.acting_for("org-7")
    service.put(f"/tenants/{CONTOSO}", json={"organizationId": "org-7", "organizationName": "Contoso on 10KC",
                                             "mode": "domain"})
    page = consent_page(browser, service, CONTOSO, "admin")
    page.select_option("select[name=account]", CAROL["mail"])
    page.click("button[value=accept]")
    page.wait_for_url(f"{host.base_url}/api/consent/callback?**")
    assert page.title().startswith("Calendar integration is now enabled")
    assert "Contoso on 10KC" in page.inner_text("main")
    back = page.get_attribute("a", "href") or ""
    assert back.startswith(RETURN + "?consent=completed&tenantId=" + CONTOSO + "&consentRequestId=")
    assert service.get(f"/tenants/{CONTOSO}").json()["status"] == "enabled"
    cookies = {c["name"] for c in page.context.cookies()}
    assert "tenkc_consent" not in cookies  # the visit is over: the binding cookie was cleared


def test_a_consent_accepted_by_someone_who_is_not_an_admin_is_refused(browser: Browser, service, host) -> None:
    """Bob may accept Microsoft's page in the sandbox's Contoso only when it lists no admin; here it
    lists Carol, so Microsoft itself refuses him (AADSTS90094), and nothing changes."""
    service = service.acting_for("org-7")
    service.put(f"/tenants/{CONTOSO}", json={"organizationId": "org-7", "mode": "domain"})
    page = consent_page(browser, service, CONTOSO, "admin")
    page.select_option("select[name=account]", "bob@contoso.example")
    with page.expect_navigation(url=f"{host.base_url}/api/consent/callback?**") as navigation:
        page.click("button[value=accept]")
    response = navigation.value
    assert response is not None and response.status == 403
    assert "AADSTS90094" in page.inner_text("main")
    assert service.get(f"/tenants/{CONTOSO}").json()["status"] == "pending_consent"


def test_admin_cancels_and_nothing_changes(browser: Browser, service, host) -> None:
    service = service.acting_for("org-7")
    service.put(f"/tenants/{CONTOSO}", json={"organizationId": "org-7", "mode": "domain"})
    page = consent_page(browser, service, CONTOSO, "admin")
    with page.expect_navigation(url=f"{host.base_url}/api/consent/callback?**") as navigation:
        page.click("button[value=cancel]")
    response = navigation.value
    assert response is not None and response.status == 403
    assert "AADSTS65004" in page.inner_text("main")
    assert service.get(f"/tenants/{CONTOSO}").json()["status"] == "pending_consent"


def test_delegated_admin_then_a_member_connects(browser: Browser, service, host) -> None:
    service = service.acting_for("org-8")
    service.put(f"/tenants/{NORTHWIND}", json={"organizationId": "org-8", "organizationName": "Northwind",
                                               "mode": "delegated"})
    admin = consent_page(browser, service, NORTHWIND, "admin")
    admin.select_option("select[name=account]", NORA["mail"])
    admin.click("button[value=accept]")
    admin.wait_for_url(f"{host.base_url}/api/consent/callback?**")
    assert admin.title().startswith("Calendar integration is now enabled")
    assert service.get(f"/tenants/{NORTHWIND}").json()["status"] == "enabled"

    member = consent_page(browser, service, NORTHWIND, "user", login_hint=GRACE["mail"])
    assert member.locator("select[name=account] option:checked").get_attribute("value") == GRACE["mail"]
    member.click("button[value=accept]")
    member.wait_for_url(f"{host.base_url}/api/consent/callback?**")
    assert member.title().startswith("Your calendar is connected")
    assert "Northwind" in member.inner_text("main")

    status = service.get(f"/tenants/{NORTHWIND}/users/{GRACE['mail']}").json()
    assert status["status"] == "connected"
    assert status["userId"] == GRACE["id"]
    by_id = service.get(f"/tenants/{NORTHWIND}/users/{GRACE['id']}").json()
    assert by_id == status
    assert service.get(f"/tenants/{NORTHWIND}").json()["connectedUsers"] == 1

    from shared.clients import member_tokens, repositories, token_provider
    from shared.tokens import token_claims

    user = repositories().user(NORTHWIND, GRACE["id"])
    refresh_token = member_tokens().refresh_token(user)  # kept in Key Vault, under the row's secret
    assert refresh_token
    assert user.secretName.startswith("rt-") and "grace" not in user.secretName
    renewed = token_claims(token_provider().redeem_refresh_token(NORTHWIND, refresh_token)["access_token"])
    assert renewed["oid"] == GRACE["id"]
    assert "Calendars.ReadWrite" in renewed["scp"].split()
