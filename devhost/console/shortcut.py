"""The sandbox shortcut for consent: a browser of the console's own, run by its server.

For a browser that does not trust the sandbox's CA. Given a consent link the service handed out,
it does what a person's browser does: opens the link (the service's redirect sets its cookie and
sends the browser to Microsoft's page, here the sandbox's), submits the sandbox's own form as the
chosen account with `action=accept`, and follows the service's redirects through the admin's
sign-in (`prompt=none`, answered at once thanks to the sign-in session the form started; a form
again if the sandbox asks) until the service answers its page. One cookie jar for both origins,
as a browser has; TLS verified with the sandbox CA.

It goes only to the service's and the sandbox's origins, and the steps it reports carry no query
strings (they hold `state` and authorization codes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from devhost.console.config import ConsoleError

MAX_HOPS = 8
TIMEOUT = 60  # the callback may retry up to 30 s while a new consent propagates


@dataclass
class _Page:
    title: str = ""
    action: str | None = None
    hidden: dict[str, str] = field(default_factory=dict)
    accounts: list[str] = field(default_factory=list)
    text: list[str] = field(default_factory=list)


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.page = _Page()
        self._in: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form" and self.page.action is None:
            self.page.action = a.get("action") or ""
        elif tag == "input" and a.get("type") == "hidden" and a.get("name"):
            self.page.hidden[a["name"] or ""] = a.get("value") or ""
        elif tag == "option":
            self.page.accounts.append(a.get("value") or "")
        self._in.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self._in:
            del self._in[len(self._in) - 1 - self._in[::-1].index(tag):]

    def handle_data(self, data: str) -> None:
        if "title" in self._in:
            self.page.title += data
        elif {"main", "body"} & set(self._in) and data.strip() and not {"script", "style"} & set(self._in):
            self.page.text.append(data.strip())


def parse(html_text: str) -> _Page:
    parser = _Parser()
    parser.feed(html_text)
    parser.page.title = parser.page.title.strip()
    return parser.page


def _where(url: str) -> str:
    """A URL without its query (state, codes) for the steps shown."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


class ConsentShortcut:
    def __init__(self, *, service_url: str, sandbox_url: str, verify: str | bool) -> None:
        self.service_url = service_url.rstrip("/")
        self.sandbox_url = sandbox_url.rstrip("/")
        self.verify = verify

    def _origin_of(self, url: str) -> str:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        if origin not in (self.service_url, self.sandbox_url):
            raise ConsoleError(f"the consent flow went to {origin}, neither the service nor the sandbox; stopped")
        return origin

    def run(self, redirect_url: str, account: str) -> dict[str, Any]:
        """Through a consent link as `account`; answers the steps and the service's last page."""
        steps: list[dict[str, Any]] = []
        browser = requests.Session()
        browser.trust_env = False  # no proxies; `verify` is the sandbox bundle, whatever the environment says
        browser.verify = self.verify
        try:
            url, method, data = redirect_url, "GET", None
            for _ in range(MAX_HOPS):
                origin = self._origin_of(url)
                answer = browser.request(method, url, data=data, allow_redirects=False, timeout=TIMEOUT)
                who = "service" if origin == self.service_url else "sandbox (Microsoft)"
                step: dict[str, Any] = {"method": method, "url": _where(url), "status": answer.status_code, "by": who}
                steps.append(step)
                if answer.status_code in (301, 302, 303, 307):
                    url, method, data = urljoin(url, answer.headers.get("Location", "")), "GET", None
                    step["to"] = _where(url)
                    continue
                page = parse(answer.text)
                step["title"] = page.title
                if origin == self.sandbox_url and answer.status_code == 200 and page.action is not None:
                    # Microsoft's page (consent, or the sign-in it asks for): the account, then Accept.
                    if account.lower() not in (a.lower() for a in page.accounts):
                        raise ConsoleError(f"{account} is not an account the sandbox's page offers "
                                           f"({', '.join(page.accounts)})")
                    step["note"] = f"the sandbox's form, submitted as {account} with Accept"
                    url, method = urljoin(url, page.action), "POST"
                    data = {**page.hidden, "account": account, "action": "accept"}
                    continue
                if origin == self.sandbox_url:
                    raise ConsoleError(f"the sandbox answered {answer.status_code}: {page.title or 'no page'}")
                return {"steps": steps, "page": {"status": answer.status_code, "title": page.title,
                                                 "text": " ".join(page.text)[:600]}}
            raise ConsoleError("the consent flow kept redirecting; stopped")
        except requests.RequestException as error:
            raise ConsoleError(f"the consent flow failed: {type(error).__name__}") from None
        finally:
            browser.close()
