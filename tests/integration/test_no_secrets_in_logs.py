"""No token, code, state, cookie or secret reaches a log line during a consent round trip (the
admin's consent page, then the admin's proof sign-in, each with its own state and code)."""

import logging
from urllib.parse import parse_qs, urlsplit

from tests.support.consent_pages import click_through, microsoft_browser, service_path

FABRIKAM = "2b9e56f8-499e-4153-949c-a7aeb479f07e"


def test_consent_round_trip_logs_no_state_code_cookie_or_token(api, sandbox, caplog):
    caplog.set_level(logging.DEBUG)
    api.put(f"/tenants/{FABRIKAM}", json={"organizationId": "org-42", "mode": "domain"})
    link = api.post(f"/tenants/{FABRIKAM}/consent", json={"kind": "admin", "returnUrl": "http://127.0.0.1:3000/x"})
    to_microsoft = api.get(service_path(link.json()["redirectUrl"]))
    cookie = to_microsoft.headers["Set-Cookie"].split(";", 1)[0].split("=", 1)[1]
    microsoft = microsoft_browser(sandbox)
    back = click_through(microsoft, to_microsoft.headers["Location"], "ann@fabrikam.example")
    to_sign_in = api.get(service_path(back))
    signed_in = microsoft.get(to_sign_in.headers["Location"], allow_redirects=False).headers["Location"]
    answer = api.get(service_path(signed_in))
    assert answer.status_code == 200, answer.text
    secrets = [cookie, "test~client-secret-value"]
    for url in (back, signed_in, to_sign_in.headers["Location"]):
        query = parse_qs(urlsplit(url).query)
        secrets += [value[0] for name, value in query.items() if name in ("state", "code", "nonce", "code_challenge")]
    assert len(secrets) >= 6
    from shared.clients import token_provider

    access_token = token_provider().app_token(FABRIKAM)["access_token"]
    secrets += [access_token, access_token[:40]]
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert caplog.records  # the flow did log
    for secret in secrets:
        assert secret not in text
