"""The admin consent page in a real browser: headless Debian Chromium driven by Playwright.

Chromium trusts the sandbox CA through an NSS database in a temporary HOME (``certutil`` from
libnss3-tools, which ``make test`` installs with tools/ensure_chromium.sh), so TLS verification
stays on: the last test shows the same page refused without that database. The registered
redirect URI is a small local HTTP server that records what lands on it.
Behaviour checked: learn.microsoft.com/entra/identity-platform/v2-admin-consent (success:
``admin_consent=True&tenant&scope&state``; error: ``admin_consent=True`` beside ``error``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from playwright.sync_api import Browser, Error, Page, Playwright

from sandbox.testing import SandboxProcess
from tests.conftest import SANDBOX_SEED
from tests.e2e.conftest import launch, require_tools

pytestmark = pytest.mark.integration

BASE_SEED: dict[str, Any] = json.loads(SANDBOX_SEED.read_text())
APP = BASE_SEED["apps"][0]
TENANT = {"tenantId": "d4c3b2a1-4e5f-4a6b-8c7d-9e0f1a2b3c04", "domain": "contoso.example", "displayName": "Contoso",
          "users": [{"id": "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e05", "mail": "bob@contoso.example", "displayName": "Bob"},
                    {"id": "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e06", "mail": "ada@contoso.example",
                     "displayName": "Ada Admin", "isAdmin": True}]}


class Callback:
    """The app's redirect URI: a local HTTP server that records each request's query."""

    def __init__(self) -> None:
        self.hits: list[dict[str, str]] = []
        hits = self.hits

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if urlsplit(self.path).path != "/callback":  # the browser's own /favicon.ico, say
                    self.send_error(404)
                    return
                hits.append({k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()})
                body = b"<!DOCTYPE html><title>callback</title><p>back in the app</p>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/callback"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def callback() -> Iterator[Callback]:
    server = Callback()
    yield server
    server.stop()


@pytest.fixture
def consent_url(sandbox: SandboxProcess, callback: Callback) -> str:
    sandbox.reset({"apps": [{**APP, "redirectUris": [*APP["redirectUris"], callback.url]}], "tenants": [TENANT]})
    callback.hits.clear()
    query = urlencode({"client_id": APP["clientId"], "scope": "https://graph.microsoft.com/.default",
                       "redirect_uri": callback.url, "state": "browser-state-1"})
    return f"{sandbox.base_url}/{TENANT['tenantId']}/v2.0/adminconsent?{query}"


def open_consent(browser: Browser, url: str) -> Page:
    page = browser.new_context().new_page()
    page.goto(url)
    assert page.locator("form").count() == 1
    assert page.locator("button").all_inner_texts() == ["Accept", "Cancel"]
    return page


def test_admin_accepts_and_lands_on_the_redirect_uri(browser: Browser, consent_url: str, callback: Callback) -> None:
    page = open_consent(browser, consent_url)
    page.select_option("select[name=account]", "ada@contoso.example")
    page.click("button[value=accept]")
    page.wait_for_url(f"{callback.url}?**")
    landed = {k: v[0] for k, v in parse_qs(urlsplit(page.url).query).items()}
    assert landed["admin_consent"] == "True"
    assert landed["tenant"] == TENANT["tenantId"]
    assert "https://graph.microsoft.com/Calendars.ReadWrite" in landed["scope"].split()
    assert landed["state"] == "browser-state-1"
    assert "error" not in landed
    assert callback.hits == [landed]
    assert page.inner_text("p") == "back in the app"


def test_cancel_lands_with_access_denied(browser: Browser, consent_url: str, callback: Callback) -> None:
    page = open_consent(browser, consent_url)
    page.click("button[value=cancel]")
    page.wait_for_url(f"{callback.url}?**")
    landed = {k: v[0] for k, v in parse_qs(urlsplit(page.url).query).items()}
    assert landed["error"] == "access_denied"
    assert landed["admin_consent"] == "True"
    assert landed["error_description"].startswith("AADSTS65004: ")
    assert landed["state"] == "browser-state-1"
    assert callback.hits == [landed]


def test_without_the_sandbox_ca_chromium_refuses_the_page(playwright: Playwright, consent_url: str,
                                                          tmp_path: Path) -> None:
    require_tools()
    untrusting = launch(playwright, tmp_path)  # a HOME without the NSS database
    try:
        page = untrusting.new_context().new_page()
        with pytest.raises(Error, match="ERR_CERT_AUTHORITY_INVALID"):
            page.goto(consent_url)
    finally:
        untrusting.close()
