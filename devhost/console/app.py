"""The console's routes, under /console/ of the local host.

    GET  /console/                      the page (static/index.html), its CSS and JavaScript
    GET  /console/data/directory        the tenants and people the page offers, where things are
    GET  /console/data/week             people's calendars (the sandbox's) and working hours for a week
    GET  /console/data/subscription     whether the sandbox's Graph holds a subscription on a mailbox
    *    /console/api/tenants/...       the service's API, with the web app's caller token added
    POST /console/sandbox/respond       an attendee answers in Outlook (the sandbox's control route)
    POST /console/sandbox/delete        someone deletes the meeting in Outlook (ditto)
    POST /console/shortcut/consent      the sandbox shortcut through a consent link (shortcut.py)

Everything but the static files answers JSON, errors in the service's envelope. A loopback page
only: requests must name a loopback Host (a DNS-rebinding page cannot reach it), and everything
but the static files needs the header `X-Console: 1` and no foreign Origin, so that another site
open in the same browser cannot make the console act (a custom header forces a CORS preflight,
which the console never allows).
"""

from __future__ import annotations

import json
import logging
import mimetypes
import threading
import time
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import requests

from devhost.console import week
from devhost.console.config import LOOPBACK, ConsoleConfig, ConsoleError
from devhost.console.shortcut import ConsentShortcut
from devhost.httpserver import Reply

log = logging.getLogger("devhost.console")

PREFIX = "/console"
STATIC = Path(__file__).with_name("static")
FILES = {"": "index.html", "static/console.css": "console.css", "static/console.js": "console.js",
         "static/favicon.svg": "favicon.svg"}
PAGE_HEADERS = [
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                                "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
]
FORWARDED_TO_SERVICE = ("content-type", "x-organization-id", "idempotency-key", "if-match", "x-request-id")
FORWARDED_BACK = ("content-type", "x-request-id", "retry-after", "etag", "location", "www-authenticate")
METHODS = {"GET", "PUT", "POST", "PATCH", "DELETE"}
RESPONSES = {"accepted", "tentativelyAccepted", "declined"}
TIMEOUT = 60


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _json(status: int, value: Any, headers: list[tuple[str, str]] | None = None) -> Reply:
    body = json.dumps(value).encode("utf-8")
    return Reply(status, [("Content-Type", "application/json; charset=utf-8"), *PAGE_HEADERS, *(headers or [])], body)


def _error(status: int, code: str, message: str) -> Reply:
    return _json(status, {"error": {"code": code, "message": message}})


class CallerTokens:
    """The web app's caller token from the identity platform (client credentials), kept until 5
    minutes before it expires. The secret and the token stay in this process."""

    def __init__(self, config: ConsoleConfig, session: requests.Session) -> None:
        self.config, self.session = config, session
        self._lock = threading.Lock()
        self._token: tuple[str, float] | None = None

    def get(self) -> str:
        with self._lock:
            if self._token and self._token[1] - time.monotonic() > 300:
                return self._token[0]
            caller = self.config.caller
            try:
                answer = self.session.post(caller.token_url, timeout=30, data={
                    "grant_type": "client_credentials", "client_id": caller.client_id,
                    "client_secret": caller.client_secret, "scope": caller.scope})
            except requests.RequestException as error:
                raise ConsoleError(f"the sandbox's identity platform did not answer ({type(error).__name__})") from None
            if answer.status_code != 200:
                code = answer.json().get("error") if "json" in answer.headers.get("Content-Type", "") else None
                raise ConsoleError(f"the identity platform refused the web app's token: {answer.status_code} {code}")
            found = answer.json()
            self._token = (found["access_token"], time.monotonic() + float(found.get("expires_in", 3600)))
            return self._token[0]


class Console:
    """Dispatches the requests under /console of the local host (`dispatch(method, target, headers, body)`)."""

    def __init__(self, config: ConsoleConfig, service_url: Callable[[], str]) -> None:
        self.config = config
        self.service_url = service_url
        self.sandbox = requests.Session()
        self.sandbox.trust_env = False  # `verify` is the sandbox bundle, whatever REQUESTS_CA_BUNDLE says later
        self.sandbox.verify = config.verify
        self.service = requests.Session()
        self.service.trust_env = False  # plain http on loopback: no proxies
        self.tokens = CallerTokens(config, self.sandbox)

    # ----- dispatch -----

    def dispatch(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes) -> Reply:
        merged = {name.lower(): value for name, value in headers}
        url = urlsplit(target)
        path = url.path[len(PREFIX):].lstrip("/") if url.path.startswith(PREFIX) else None
        try:
            host = self._loopback_host(merged)
            if path is None:
                raise _Refused(404, "not_found", "no such console route")
            if url.path == PREFIX:
                return Reply(308, [("Location", f"{PREFIX}/"), *PAGE_HEADERS])
            if path in FILES:
                if method not in ("GET", "HEAD"):
                    raise _Refused(405, "method_not_allowed", "the console's files are read with GET")
                return self._file(FILES[path])
            self._same_origin(merged, host)
            query = dict(parse_qsl(url.query, keep_blank_values=True))
            if path.startswith("api/"):
                return self._forward(method, path[len("api/"):], url.query, merged, body)
            routes: dict[tuple[str, str], Callable[[], Reply]] = {
                ("GET", "data/directory"): lambda: self._directory(host),
                ("GET", "data/week"): lambda: self._week(query),
                ("GET", "data/subscription"): lambda: self._subscription(query),
                ("POST", "sandbox/respond"): lambda: self._respond(self._body(body)),
                ("POST", "sandbox/delete"): lambda: self._delete(self._body(body)),
                ("POST", "shortcut/consent"): lambda: self._shortcut(self._body(body), merged, host),
            }
            handler = routes.get((method, path))
            if handler is None:
                known = any(p == path for _, p in routes)
                raise _Refused(405 if known else 404, "method_not_allowed" if known else "not_found",
                               "no such console route" if not known else f"{method} is not allowed here")
            return handler()
        except _Refused as refused:
            return _error(refused.status, refused.code, refused.message)
        except ConsoleError as error:
            return _error(502, "console_error", str(error))
        except Exception:
            log.exception("console failed on %s %s", method, url.path)
            return _error(500, "console_failed", "the console failed; the local host's log has the details")

    @staticmethod
    def _loopback_host(headers: dict[str, str]) -> str:
        host = headers.get("host", "")
        if urlsplit(f"http://{host}").hostname not in LOOPBACK:
            raise _Refused(403, "forbidden", "the console answers only on a loopback address")
        return host

    @staticmethod
    def _same_origin(headers: dict[str, str], host: str) -> None:
        if headers.get("x-console") != "1":
            raise _Refused(403, "forbidden", "console calls come from the console's page (header X-Console: 1)")
        origin = headers.get("origin")
        if origin is not None and origin != f"http://{host}":
            raise _Refused(403, "forbidden", "the console takes calls from its own page only")
        if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            raise _Refused(403, "forbidden", "the console takes calls from its own page only")

    @staticmethod
    def _body(body: bytes) -> dict[str, Any]:
        try:
            value = json.loads(body or b"{}")
        except ValueError:
            raise _Refused(400, "invalid_request", "the body must be JSON") from None
        if not isinstance(value, dict):
            raise _Refused(400, "invalid_request", "the body must be a JSON object")
        return value

    @staticmethod
    def _file(name: str) -> Reply:
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if content_type.startswith("text/") or content_type.endswith("javascript"):
            content_type += "; charset=utf-8"
        return Reply(200, [("Content-Type", content_type), *PAGE_HEADERS], (STATIC / name).read_bytes())

    # ----- the service -----

    def _forward(self, method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> Reply:
        """The service's API as the web app calls it: its caller token, the organization it acts for."""
        if method not in METHODS:
            raise _Refused(405, "method_not_allowed", f"{method} is not a method of the service's API")
        if not path.startswith("tenants/") or ".." in path.split("/"):
            raise _Refused(404, "not_found", "the console forwards the service's /api/tenants/... routes only")
        send = {name: headers[name] for name in FORWARDED_TO_SERVICE if name in headers}
        send["Authorization"] = f"Bearer {self.tokens.get()}"
        target = f"{self.service_url()}/api/{path}" + (f"?{query}" if query else "")
        try:
            answer = self.service.request(method, target, headers=send, data=body or None, timeout=TIMEOUT,
                                          allow_redirects=False)
        except requests.RequestException as error:
            raise ConsoleError(f"the service did not answer ({type(error).__name__})") from None
        back = [(name, answer.headers[name]) for name in FORWARDED_BACK if name in answer.headers]
        return Reply(answer.status_code, [*back, *PAGE_HEADERS], answer.content)

    def _service_call(self, method: str, path: str, organization: str, body: Any = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.tokens.get()}", "X-Organization-Id": organization}
        try:
            answer = self.service.request(method, f"{self.service_url()}/api/{path}", json=body, headers=headers,
                                          timeout=TIMEOUT, allow_redirects=False)
        except requests.RequestException as error:
            raise ConsoleError(f"the service did not answer ({type(error).__name__})") from None
        try:
            return answer.status_code, answer.json()
        except ValueError:
            return answer.status_code, None

    # ----- the page's data -----

    def _directory(self, host: str) -> Reply:
        tenants = [{"tenantId": t["tenantId"], "domain": t.get("domain"), "displayName": t.get("displayName")
                    or t.get("domain"),
                    "users": [{"mail": u["mail"], "displayName": u["displayName"], "timeZone": u["timeZone"],
                               "isAdmin": u["isAdmin"], "workingHours": u["workingHours"]} for u in t["users"]]}
                   for t in self.config.directory.tenants()]
        return _json(200, {
            "organization": self.config.organization,
            "serviceUrl": self.service_url(),
            "sandboxUrl": self.config.sandbox_url,
            "callerClientId": self.config.caller.client_id,
            "returnUrl": self.config.return_url(f"http://{host}"),
            "suggestedWeek": week.next_monday().isoformat(),
            "tenants": tenants,
        })

    def _week(self, query: dict[str, str]) -> Reply:
        tenant = query.get("tenant", "")
        people = [p.strip().lower() for p in query.get("people", "").split(",") if p.strip()]
        if self.config.directory.tenant(tenant) is None:
            raise _Refused(404, "not_found", "no such tenant in the sandbox seed")
        if not 1 <= len(people) <= 20:
            raise _Refused(400, "invalid_request", "people: 1 to 20 e-mail addresses, comma-separated")
        try:
            start_day = date.fromisoformat(query.get("start", ""))
        except ValueError:
            raise _Refused(400, "invalid_request", "start: a date, YYYY-MM-DD") from None
        zone_name = query.get("zone") or "UTC"
        try:
            shown = week.window(start_day, zone_name)
        except ConsoleError as error:
            raise _Refused(400, "invalid_request", str(error)) from None
        start = datetime.fromisoformat(shown["start"])
        end = datetime.fromisoformat(shown["end"])
        found = []
        for email in people:
            user = self.config.directory.user(tenant, email)
            person: dict[str, Any] = {"email": email, "displayName": user["displayName"] if user else email,
                                      "timeZone": user["timeZone"] if user else None,
                                      "working": week.working_hours(user, start, end) if user else [],
                                      "events": [], "calendar": "ok"}
            status, answer = self._sandbox_call("GET", f"/_sandbox/users/{quote(email, safe='')}/events")
            if status == 200:
                person["events"] = week.calendar(answer.get("value", []), start, end)
            else:
                person["calendar"] = "not_found" if status == 404 else f"error {status}"
            found.append(person)
        week.link_copies(found)
        return _json(200, {**shown, "people": found})

    def _subscription(self, query: dict[str, str]) -> Reply:
        """The Graph subscriptions on a person's mailbox (the service makes one within seconds of the
        organizer's first upcoming booking; before that, Outlook's changes are not notified)."""
        user = self.config.directory.user(query.get("tenant", ""), query.get("mailbox", ""))
        if user is None:
            raise _Refused(404, "not_found", "no such person in the sandbox seed")
        status, answer = self._sandbox_call("GET", "/_sandbox/subscriptions")
        if status != 200:
            raise ConsoleError(f"the sandbox answered {status} for its subscriptions")
        names = {f"users/{name}/events" for name in (user["mail"], user["userPrincipalName"], user["id"])}
        found = [{k: s.get(k) for k in ("id", "resource", "changeType", "notificationUrl", "expirationDateTime",
                                        "paused")}
                 for s in answer.get("value", [])
                 if str(s.get("mailboxId", "")).lower() == user["id"] or str(s.get("resource", "")).lower() in names]
        return _json(200, {"mailbox": user["mail"], "subscriptions": found})

    # ----- the sandbox -----

    def _sandbox_call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        try:
            answer = self.sandbox.request(method, f"{self.config.sandbox_url}{path}", json=body, timeout=TIMEOUT)
        except requests.exceptions.SSLError:
            raise ConsoleError("the sandbox certificate is not trusted: REQUESTS_CA_BUNDLE must hold its CA") from None
        except requests.RequestException as error:
            raise ConsoleError(f"the sandbox did not answer ({type(error).__name__})") from None
        try:
            return answer.status_code, answer.json() if answer.content else None
        except ValueError:
            return answer.status_code, None

    def _event_target(self, body: dict[str, Any]) -> str:
        email, event_id = body.get("email"), body.get("eventId")
        if not isinstance(email, str) or not email or not isinstance(event_id, str) or not event_id:
            raise _Refused(400, "invalid_request", 'the body must name "email" and "eventId"')
        return f"/_sandbox/users/{quote(email, safe='')}/events/{quote(event_id, safe='')}"

    def _respond(self, body: dict[str, Any]) -> Reply:
        if body.get("response") not in RESPONSES:
            raise _Refused(400, "invalid_request", "response: accepted, tentativelyAccepted or declined")
        status, answer = self._sandbox_call("POST", self._event_target(body) + "/respond",
                                            {"response": body["response"]})
        return _json(status, answer)

    def _delete(self, body: dict[str, Any]) -> Reply:
        status, answer = self._sandbox_call("DELETE", self._event_target(body))
        return _json(status, answer)

    # ----- the sandbox shortcut -----

    def _shortcut(self, body: dict[str, Any], headers: dict[str, str], host: str) -> Reply:
        tenant, kind, account = body.get("tenantId"), body.get("kind"), body.get("account")
        organization = headers.get("x-organization-id") or self.config.organization
        if not isinstance(tenant, str) or kind not in ("admin", "user") or not isinstance(account, str):
            raise _Refused(400, "invalid_request", 'the body must be {"tenantId", "kind": "admin" | "user", "account"}')
        if self.config.directory.user(tenant, account) is None:
            raise _Refused(400, "invalid_request", f"{account} is not a person of that tenant in the sandbox seed")
        request = {"kind": kind, "returnUrl": self.config.return_url(f"http://{host}"),
                   "loginHint": account if kind == "user" else None}
        status, link = self._service_call("POST", f"tenants/{quote(tenant, safe='')}/consent", organization, request)
        exchanges = [{"method": "POST", "path": f"/api/tenants/{tenant}/consent", "organization": organization,
                      "body": request, "status": status, "answer": link}]
        if status != 201:
            return _json(200, {"exchanges": exchanges, "steps": [], "page": None, "consent": None})
        browser = ConsentShortcut(service_url=self.service_url(), sandbox_url=self.config.sandbox_url,
                                  verify=self.config.verify)
        walked = browser.run(link["redirectUrl"], account)
        path = f"tenants/{quote(tenant, safe='')}/consent/{quote(link['consentRequestId'], safe='')}"
        status, consent = self._service_call("GET", path, organization)
        exchanges.append({"method": "GET", "path": f"/api/{path}", "organization": organization, "body": None,
                          "status": status, "answer": consent})
        return _json(200, {"exchanges": exchanges, **walked, "consent": consent})
