"""The HTML pages a browser sees at the consent redirect and callback.

Small and accessible: a title, one heading, one sentence in our own words naming the 10KC
organization, and a link back to the web app. Everything interpolated is escaped; nothing of
Microsoft's text is shown (at most an AADSTS code, and only after a valid state).
"""

from __future__ import annotations

from html import escape

import azure.functions as func

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}

_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · 10KC</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 36rem; margin: 4rem auto; padding: 0 1rem;
       color: #1b1b1b; line-height: 1.5; }}
h1 {{ font-size: 1.5rem; }}
a {{ color: #0b5cad; }}
</style>
</head>
<body>
<main>
<h1>{title}</h1>
<p>{sentence}</p>
{detail}{link}
</main>
</body>
</html>
"""


def page(status: int, title: str, sentence: str, *, return_url: str | None = None,
         detail: str | None = None, request_id: str | None = None) -> func.HttpResponse:
    link = f'<p><a href="{escape(return_url, quote=True)}">Back to 10KC</a></p>\n' if return_url else ""
    detail_html = f"<p>{escape(detail)}</p>\n" if detail else ""
    body = _TEMPLATE.format(title=escape(title), sentence=escape(sentence), detail=detail_html, link=link)
    headers = dict(SECURITY_HEADERS)
    if request_id:
        headers["x-request-id"] = request_id
    return func.HttpResponse(body, status_code=status, headers=headers, mimetype="text/html", charset="utf-8")


def admin_enabled(organization: str, return_url: str) -> func.HttpResponse:
    return page(200, "Calendar integration is now enabled",
                f"Calendar integration is now enabled for {organization}. You can close this tab and go back "
                "to the Integrations settings in 10KC.", return_url=return_url)


def member_connected(organization: str, return_url: str) -> func.HttpResponse:
    return page(200, "Your calendar is connected",
                f"Your Outlook calendar is now connected to {organization} on 10KC. You can close this tab.",
                return_url=return_url)


def forged_state() -> func.HttpResponse:
    return page(400, "This sign-in link is not valid",
                "We could not match this answer to a consent request from 10KC, so nothing was changed.")


def expired(return_url: str | None = None) -> func.HttpResponse:
    return page(410, "This link has expired",
                "This link has expired or was already used; start again from 10KC.", return_url=return_url)


def unknown_request() -> func.HttpResponse:
    return page(404, "Link not found", "This consent link does not exist; start again from 10KC.")


def declined(organization: str, return_url: str, code: str | None) -> func.HttpResponse:
    return page(403, "Calendar access was not granted",
                f"Microsoft did not grant 10KC access to calendars for {organization}, so nothing was changed. "
                "You can try again from 10KC.",
                return_url=return_url, detail=f"Microsoft error code: {code}" if code else None)


def wrong_tenant(organization: str, return_url: str) -> func.HttpResponse:
    return page(403, "Signed in to another organization",
                f"The Microsoft account used belongs to another organization than the one {organization} "
                "connected, so nothing was changed. Sign in with an account of your organization and try again.",
                return_url=return_url)


def owned_elsewhere(return_url: str) -> func.HttpResponse:
    return page(409, "Connected to another 10KC organization",
                "This Microsoft 365 organization is connected to another 10KC organization, so nothing was "
                "changed here. If that is wrong, ask your Microsoft 365 administrator to connect it again from "
                "your 10KC organization.", return_url=return_url)


def not_an_admin(organization: str, return_url: str) -> func.HttpResponse:
    return page(403, "An administrator must connect calendars",
                f"The account that signed in is not an administrator who may grant this access for {organization}, "
                "so nothing was changed. Ask a Global Administrator of your Microsoft 365 organization to connect "
                "it from 10KC.", return_url=return_url)


def upstream_failed(organization: str, return_url: str, code: str | None) -> func.HttpResponse:
    return page(502, "Microsoft could not complete the request",
                f"Microsoft could not complete the calendar connection for {organization}; nothing was changed. "
                "Please try again in a few minutes from 10KC.",
                return_url=return_url, detail=f"Microsoft error code: {code}" if code else None)
