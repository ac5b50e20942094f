"""The local console: a page of the local host (http://127.0.0.1:7071/console/) that plays the 10KC
web app against the service, so a newcomer sees the product work in a browser.

    python -m devhost --console [--console-seed .local/sandbox-seed.json]

`make run` starts the local host with it. Local only, sandbox only, never deployed (devhost is in
.funcignore): it refuses to start unless the identity platform it is given is the sandbox on
loopback, and the host must listen on loopback.

What it does, and through what:
- The service: only its public HTTP API, as the web app calls it. The browser calls
  `/console/api/<path>`; the console's server adds the 10KC web app's caller token (client
  credentials of the sandbox seed's caller app, minted here, never sent to the browser) and
  forwards `X-Organization-Id`, the body and the booking headers to `/api/<path>`.
- The sandbox, over HTTPS verified with its CA bundle (REQUESTS_CA_BUNDLE): its people and working
  hours (the seed file), each person's calendar (`GET /_sandbox/users/{email}/events`), and what
  people do in Outlook (the respond and delete control routes).
- The sandbox shortcut for consent: the server opens a consent link the service handed out and
  submits the sandbox's own consent (or sign-in) form as the account picked, following the
  service's redirects as a browser would. The real flow (a link the browser opens) is the default.

Modules: `config` (settings, the caller, the people), `week` (a week of calendars and working
hours as instants), `shortcut` (the consent shortcut), `app` (routes), `static/` (the page: plain
HTML, CSS and JavaScript, no build step).
"""

from devhost.console.app import Console
from devhost.console.config import ConsoleConfig, ConsoleError

__all__ = ["Console", "ConsoleConfig", "ConsoleError"]
