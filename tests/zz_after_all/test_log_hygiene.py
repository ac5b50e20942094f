"""Runs last (directory order): every log line the service wrote during the suite, searched for
the sandbox's tokens, codes and secrets. None may appear, nor any JWT, nor an event's body."""

from __future__ import annotations

import json
import re

from tests.conftest import SANDBOX_SEED, SUITE_LOG

SECRETS = [*(app["clientSecret"] for app in json.loads(SANDBOX_SEED.read_text())["apps"] if app.get("clientSecret")),
           "rotated~secret", "expired-secret-value",
           "Booked through 10KC"]  # the last: an event body the tests book with
PATTERNS = {
    "a JWT (access or ID token)": re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}"),
    "a sandbox authorization code": re.compile(r"1\.sbx\.[A-Za-z0-9_-]{20,}"),
    "a sandbox refresh token": re.compile(r"1\.sbx-rt\.[A-Za-z0-9_-]{20,}"),
    "a client_secret form field": re.compile(r"client_secret=[^&\s]+"),
    "an Authorization header": re.compile(r"Bearer\s+[A-Za-z0-9._-]{20,}"),
}


def test_no_token_code_or_secret_in_any_log_line_of_the_suite():
    text = SUITE_LOG.read_text(encoding="utf-8") if SUITE_LOG.exists() else ""
    assert text, "the suite wrote log lines (else this test proves nothing)"
    for secret in SECRETS:
        assert secret not in text, f"{secret[:6]}... appears in the logs"
    for what, pattern in PATTERNS.items():
        found = pattern.search(text)
        assert found is None, f"{what} appears in the logs: ...{text[max(0, found.start() - 80):found.start()]}"


def test_every_service_log_line_of_a_request_carries_its_request_id():
    lines = SUITE_LOG.read_text(encoding="utf-8").splitlines() if SUITE_LOG.exists() else []
    request_lines = [line for line in lines if line.split(" ", 2)[1:2] and
                     line.split(" ", 2)[1].startswith(("consent.", "availability.", "booking.", "shared.http"))]
    assert request_lines
    # A line outside any request says [-]; inside one, the request's id (or timer/job-<id>).
    tagged = [line for line in request_lines if line.split(" ", 3)[2] != "[-]"]
    assert len(tagged) / len(request_lines) > 0.9, request_lines[:5]
