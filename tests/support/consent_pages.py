"""The sandbox's consent pages as a browser would use them, for tests: parse the one form, post it
with an account and a button, and follow Microsoft's redirect back to the service's callback."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import requests


@dataclass
class ConsentForm:
    """The one form of a consent page, as html.parser sees it."""

    method: str = ""
    action: str = ""
    hidden: dict[str, str] = field(default_factory=dict)
    other_inputs: list[dict[str, str | None]] = field(default_factory=list)
    select_name: str | None = None
    options: list[str] = field(default_factory=list)
    selected: list[str] = field(default_factory=list)
    buttons: list[dict[str, str]] = field(default_factory=list)
    forms: int = 0


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.form = ConsentForm()
        self._button: dict[str, str] | None = None
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            self.form.forms += 1
            self.form.method, self.form.action = (a.get("method") or "").lower(), a.get("action") or ""
        elif tag == "input":
            if a.get("type") == "hidden" and a.get("name"):
                self.form.hidden[a["name"] or ""] = a.get("value") or ""
            else:
                self.form.other_inputs.append(a)
        elif tag == "select":
            self.form.select_name = a.get("name")
        elif tag == "option":
            self.form.options.append(a.get("value") or "")
            if "selected" in a:
                self.form.selected.append(a.get("value") or "")
        elif tag == "button":
            self._button = {"name": a.get("name") or "", "value": a.get("value") or "", "type": a.get("type") or "",
                            "label": ""}
        elif tag == "textarea":
            self.form.other_inputs.append(a)

    def handle_endtag(self, tag: str) -> None:
        if tag == "button" and self._button is not None:
            self._button["label"] = self._button["label"].strip()
            self.form.buttons.append(self._button)
            self._button = None

    def handle_data(self, data: str) -> None:
        if self._button is not None:
            self._button["label"] += data
        self.text.append(data)


def parse_page(html_text: str) -> tuple[ConsentForm, str]:
    parser = _FormParser()
    parser.feed(html_text)
    return parser.form, " ".join(parser.text)




def click_through(session: requests.Session, url: str, account: str, action: str = "accept") -> str:
    """Open a consent page (admin consent or authorize) and press a button; the Location Microsoft
    redirects to (the service's callback with its query)."""
    page = session.get(url, allow_redirects=False)
    assert page.status_code == 200, page.text
    form, _ = parse_page(page.text)
    base = f"{urlsplit(url).scheme}://{urlsplit(url).netloc}"
    data = dict(form.hidden) | {"account": account, "action": action}
    answer = session.post(base + form.action, data=data, allow_redirects=False)
    assert answer.status_code == 302, answer.text
    return answer.headers["Location"]


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def admin_consent(api, sandbox, tenant_id: str, account: str, *, mode: str = "domain") -> None:
    """Register the tenant for the api's organization (X-Organization-Id) and complete admin
    consent through the sandbox's real pages: Microsoft's consent page, then the admin's sign-in."""
    registered = api.put(f"/tenants/{tenant_id}", json={"mode": mode})
    assert registered.status_code in (200, 201), registered.text
    link = api.post(f"/tenants/{tenant_id}/consent",
                    json={"kind": "admin", "returnUrl": "http://127.0.0.1:3000/admin"})
    assert link.status_code == 201, link.text
    answer = browse(api, microsoft_browser(sandbox), link.json()["redirectUrl"], account)
    assert answer.status_code == 200, answer.text
    status = api.get(f"/tenants/{tenant_id}").json()["status"]
    assert status == "enabled", status


def connect_member(api, sandbox, tenant_id: str, email: str) -> None:
    """A member of a delegated tenant connects through the authorization code flow."""
    link = api.post(f"/tenants/{tenant_id}/consent",
                    json={"kind": "user", "returnUrl": "http://127.0.0.1:3000/me", "loginHint": email})
    assert link.status_code == 201, link.text
    answer = browse(api, microsoft_browser(sandbox), link.json()["redirectUrl"], email)
    assert answer.status_code == 200, answer.text
    status = api.get(f"/tenants/{tenant_id}/users/{email}").json()["status"]
    assert status == "connected", status


def microsoft_browser(sandbox) -> requests.Session:
    """A new browser on the sandbox (its own cookie jar: no sign-in session yet)."""
    session = requests.Session()
    session.trust_env = False
    session.verify = str(sandbox.ca_bundle)
    return session


def service_path(url: str) -> str:
    """A URL of the service as the `api` session takes it (without the host and `/api`)."""
    parts = urlsplit(url)
    return parts.path.removeprefix("/api") + ("?" + parts.query if parts.query else "")


def browse(api, microsoft: requests.Session, redirect_url: str, account: str, *,
           sign_in_as: str | None = None, action: str = "accept") -> requests.Response:
    """One browser through a consent link, as a person clicks it: `api` is the browser on the
    service (it keeps the service's cookie), `microsoft` the same browser on the sandbox (it keeps
    the sign-in session). Opens the link, accepts Microsoft's page as `account`, then follows the
    service through the admin's sign-in (silent with the session; on a page, `sign_in_as` or
    `account` picks the account). Returns the service's last answer (the page)."""
    answer = api.get(service_path(redirect_url))
    assert answer.status_code == 302, answer.text
    back = click_through(microsoft, answer.headers["Location"], account, action)
    return follow(api, microsoft, back, sign_in_as or account)


def follow(api, microsoft: requests.Session, callback_url: str, account: str,
           action: str = "accept") -> requests.Response:
    """Take Microsoft's answer to the service's callback, and follow the service's redirects back
    to Microsoft (the admin's sign-in) until the service answers a page."""
    answer = api.get(service_path(callback_url))
    for _ in range(4):
        if answer.status_code != 302:
            return answer
        to_microsoft = answer.headers["Location"]
        sign_in = microsoft.get(to_microsoft, allow_redirects=False)
        if sign_in.status_code == 302:
            back = sign_in.headers["Location"]
        else:
            back = click_through(microsoft, to_microsoft, account, action)
        answer = api.get(service_path(back))
    raise AssertionError("the service kept redirecting")
