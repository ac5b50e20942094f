"""No token, code, state or secret reaches a log line during a consent round trip."""

import logging
from urllib.parse import parse_qs, urlencode, urlsplit

FABRIKAM = "2b9e56f8-499e-4153-949c-a7aeb479f07e"


def test_consent_round_trip_logs_no_state_code_or_token(api, caplog):
    caplog.set_level(logging.DEBUG)
    api.put(f"/tenants/{FABRIKAM}", json={"organizationId": "org-42", "mode": "domain"})
    link = api.post(f"/tenants/{FABRIKAM}/consent", json={"kind": "admin", "returnUrl": "http://127.0.0.1:3000/x"})
    path = urlsplit(link.json()["redirectUrl"])
    location = api.get(path.path.removeprefix("/api") + "?" + path.query).headers["Location"]
    state = parse_qs(urlsplit(location).query)["state"][0]
    answer = api.get("/consent/callback?" + urlencode({"admin_consent": "True", "tenant": FABRIKAM, "state": state,
                                                       "code": "SECRET-CODE-VALUE"}))
    assert answer.status_code == 200
    from shared.clients import token_provider

    access_token = token_provider().app_token(FABRIKAM)["access_token"]
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert caplog.records  # the flow did log
    for secret in (state, "SECRET-CODE-VALUE", access_token, access_token[:40], "test~client-secret-value"):
        assert secret not in text
