"""Sign-in sessions, as the identity platform keeps them in the browser (SANDBOX.md, "Sign-in
sessions, as Microsoft keeps them").

Microsoft's sign-in page leaves a session cookie (``ESTSAUTH`` and its kin, on
login.microsoftonline.com: Secure, HttpOnly, SameSite=None) that lets a later ``/authorize``
with ``prompt=none`` sign the user in without a page: "If the request can't be completed silently
by using single-sign on, the Microsoft identity platform returns an interaction_required error",
and ``login_required`` when "a single user couldn't be found. This error may mean there are
multiple users active in the session, or no users. This error takes into account the tenant
chosen" (learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow, the ``prompt``
parameter and "Error codes for authorization endpoint errors").

The sandbox's session cookie is ``SESSION_COOKIE`` (``sandbox_estsauth``: a name of its own, so that
it never meets a cookie of the service on the same 127.0.0.1, since cookie jars ignore ports), set
``Path=/; Secure; HttpOnly; SameSite=None`` when a consent or sign-in form is accepted with an
account of the tenant (``sandbox.consent``), and never on Cancel. Its value is an opaque random id,
kept here only by its SHA-256, mapped to the accounts signed in through that browser: a second
account signed in with the cookie present joins the session, as Microsoft's session holds every
account signed in (and then ``prompt=none`` without a ``login_hint`` finds more than one user). Each
sign-in issues a new id and forgets the old one (no session id outlives a sign-in). The session
has no lifetime of its own here (the browser keeps the cookie until it closes, as a cookie without
``Expires``); it ends when the sandbox is reset (``SandboxState.reset``), and an account leaves
every session when its sessions are revoked (``POST /_sandbox/users/{email}/revoke``, as Graph's
``revokeSignInSessions`` "invalidates all the refresh tokens ... and session cookies in a user's
browser", learn.microsoft.com/graph/api/user-revokesigninsessions).
"""

from __future__ import annotations

import hashlib
import secrets
import threading

SESSION_COOKIE = "sandbox_estsauth"
COOKIE_ATTRIBUTES = "Path=/; Secure; HttpOnly; SameSite=None"

Account = tuple[str, str]  # (tenant id, user id)


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


def set_cookie_header(session_id: str) -> tuple[str, str]:
    """The ``Set-Cookie`` header that gives the browser this session."""
    return ("Set-Cookie", f"{SESSION_COOKIE}={session_id}; {COOKIE_ATTRIBUTES}")


class SignInSessions:
    """Session id (by hash) -> the accounts signed in with it, in sign-in order. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[str, list[Account]] = {}

    def sign_in(self, current: str | None, tenant_id: str, user_id: str) -> str:
        """Record a sign-in through a browser that sent session ``current`` (or none); answers the
        new session id, which holds the accounts of ``current`` (if known) and this one, last."""
        account = (tenant_id.lower(), user_id.lower())
        with self._lock:
            accounts = self._sessions.pop(_digest(current), []) if current else []
            accounts = [a for a in accounts if a != account] + [account]
            session_id = secrets.token_urlsafe(32)
            self._sessions[_digest(session_id)] = accounts
        return session_id

    def accounts(self, session_id: str | None) -> list[Account]:
        """The accounts of a session; none for a missing or unknown id."""
        if not session_id:
            return []
        with self._lock:
            return list(self._sessions.get(_digest(session_id), []))

    def end_for_user(self, tenant_id: str, user_id: str) -> int:
        """Sign one account out of every session; answers how many sessions held it."""
        account = (tenant_id.lower(), user_id.lower())
        count = 0
        with self._lock:
            for key, accounts in list(self._sessions.items()):
                if account in accounts:
                    count += 1
                    remaining = [a for a in accounts if a != account]
                    if remaining:
                        self._sessions[key] = remaining
                    else:
                        del self._sessions[key]
        return count

    def clear(self) -> None:
        with self._lock:
            self._sessions.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)
