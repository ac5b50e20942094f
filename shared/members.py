"""Delegated members' refresh tokens: kept in Key Vault, pointed to by the member's Table row.

A connection writes the token under a fresh secret name (names are never reused, see
`shared.secrets`), indexes the name under the tenant first (so no secret is ever unfindable, even
after a crash), then moves the member's row to it with an ETag check, and only then deletes the
previous connection's secret. A refresh writes a new version of the same name.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

from shared.errors import AlreadyExists, ConcurrencyConflict, SecretNotFound, SecretUnavailable, UserNotConnected
from shared.secrets import SecretStore, refresh_token_secret_name
from shared.storage import ConnectedUser, Repositories, SecretRef, utcnow

log = logging.getLogger(__name__)

# Refresh tokens live 90 days (Microsoft's default); refreshing weekly keeps a wide margin.
REFRESH_EVERY = timedelta(days=7)


class MemberTokens:
    def __init__(self, repos: Repositories, secrets: SecretStore, tokens: Any = None) -> None:
        self.repos = repos
        self.secrets = secrets
        self.tokens = tokens
        self._access: dict[tuple[str, str], tuple[str, float]] = {}
        self._lock = threading.Lock()

    def access_token(self, tenant_id: str, person: str) -> str:
        """A delegated Graph access token for a connected member (see `connected`)."""
        return self.connected(tenant_id, person)[1]

    def connected(self, tenant_id: str, person: str) -> tuple[ConnectedUser, str]:
        """A connected member (the organizer), named by object id, UPN or e-mail, and a delegated
        Graph access token: from memory while it has more than 5 minutes left, else redeemed from
        the member's refresh token. A member who is not connected, whose refresh token Microsoft
        refuses, or whose stored token is gone or disabled for good, is 409 `user_not_connected`
        (and a refused or lost one is marked `needs_reconnect`)."""
        user = self.repos.member(tenant_id, person)
        if user is None or user.status != "connected" or not user.secretName:
            raise UserNotConnected("The organizer has not connected an Outlook calendar to 10KC.", target="organizer")
        key = (tenant_id, user.userId)
        cached = self._access.get(key)
        if cached and cached[1] - time.monotonic() > 300:
            return user, cached[0]
        from shared.tokens import IdentityError

        try:
            result = self.tokens.redeem_refresh_token(tenant_id, self._stored_token(user))
        except IdentityError as error:
            if error.error == "invalid_grant":
                self.mark_needs_reconnect(user)
                raise UserNotConnected("The organizer must reconnect the Outlook calendar to 10KC.",
                                       target="organizer") from None
            raise
        with self._lock:
            self._access[key] = (result["access_token"], time.monotonic() + float(result.get("expires_in", 3600)))
        return user, result["access_token"]

    def _stored_token(self, user: ConnectedUser) -> str:
        """The member's refresh token. A version disabled by a refresh between reading the row and
        Key Vault is read again from the moved row; a token that is gone for good (a disconnect
        that failed half-way) marks the member `needs_reconnect`: 409, never a 500."""
        for _ in range(2):
            try:
                return self.refresh_token(user)
            except (SecretNotFound, SecretUnavailable):
                current = self.repos.user(user.tenantId, user.userId)
                if (current is None or current.status != "connected" or not current.secretName
                        or (current.secretName, current.secretVersion) == (user.secretName, user.secretVersion)):
                    break
                user = current
        self.mark_needs_reconnect(user)
        raise UserNotConnected("The organizer must reconnect the Outlook calendar to 10KC.", target="organizer")

    def mark_needs_reconnect(self, user: ConnectedUser) -> None:
        marked: list[ConnectedUser] = []

        def mark(current: ConnectedUser) -> ConnectedUser | None:
            marked.clear()
            if current.status != "connected" or current.secretName != user.secretName:
                return None  # reconnected meanwhile: leave the newer connection alone
            current.status = "needs_reconnect"
            marked.append(current)
            return current

        self.repos.store.modify(ConnectedUser, user.tenantId, user.row_key, mark)
        with self._lock:
            self._access.pop((user.tenantId, user.userId), None)
        if marked:  # this call made the change: the web app hears of it once
            from sync.changes import record_needs_reconnect

            record_needs_reconnect(self.repos, marked[0])

    def connect(self, tenant_id: str, user_id: str, email: str, refresh_token: str,
                *, upn: str | None = None, now: datetime | None = None) -> ConnectedUser:
        """Keep a member's new refresh token and make it the current one (replacing any older)."""
        now = now or utcnow()
        user_id = user_id.lower()
        name = refresh_token_secret_name(tenant_id, user_id, uuid.uuid4().hex)
        self.repos.store.insert(SecretRef(tenantId=tenant_id, secretName=name, kind="refresh_token",
                                          subjectId=user_id, createdAt=now))
        version = self.secrets.set(name, refresh_token, content_type="application/vnd.tenkc.refresh-token",
                                   tags={"kind": "refresh_token"})
        previous: str | None = None
        for _ in range(5):
            current = self.repos.user(tenant_id, user_id)
            record = ConnectedUser(tenantId=tenant_id, userId=user_id, email=email.lower(),
                                   upn=(upn or email).lower(), status="connected",
                                   secretName=name, secretVersion=version, connectedAt=now, lastRefreshAt=now,
                                   refreshDueAt=now + REFRESH_EVERY)
            try:
                if current is None:
                    self.repos.store.insert(record)
                else:
                    previous = current.secretName
                    record.etag = current.etag
                    self.repos.store.update(record)
                break
            except (AlreadyExists, ConcurrencyConflict):
                continue
        else:
            raise ConcurrencyConflict("the member's row kept changing while connecting")
        if previous and previous != name:
            self.forget_secret(tenant_id, previous)
        return record

    def refresh_token(self, user: ConnectedUser) -> str:
        """The member's current refresh token (raises SecretNotFound / SecretUnavailable)."""
        if not user.secretName:
            raise LookupError("member has no stored token")
        return self.secrets.get(user.secretName, user.secretVersion)

    def forget_secret(self, tenant_id: str, name: str, *, now: datetime | None = None) -> None:
        """Delete a secret from Key Vault and mark its index row; both steps are idempotent."""
        self.secrets.delete(name)

        def mark(ref: SecretRef) -> SecretRef | None:
            if ref.deletedAt is not None:
                return None
            ref.deletedAt = now or utcnow()
            return ref

        self.repos.store.modify(SecretRef, tenant_id, name, mark)

    def disconnect(self, tenant_id: str, user_id: str) -> None:
        """Delete the member's tokens and mark the member not connected; idempotent."""
        user = self.repos.user(tenant_id, user_id)
        if user is not None:
            self._disconnect_user(user)
        # Any other secret of this member (say, from a connect that crashed half-way).
        for ref in self.repos.secret_refs(tenant_id):
            if ref.subjectId == user_id.lower():
                self.forget_secret(tenant_id, ref.secretName)

    def _disconnect_user(self, user: ConnectedUser) -> None:
        if user.secretName:
            # The token first: if Key Vault is down, nothing has changed and the caller retries.
            self.forget_secret(user.tenantId, user.secretName)
        self._mark_not_connected(user)

    def _mark_not_connected(self, user: ConnectedUser) -> None:
        def clear(current: ConnectedUser) -> ConnectedUser | None:
            if current.status == "not_connected" and current.secretName is None:
                return None
            current.status, current.secretName, current.secretVersion = "not_connected", None, None
            current.refreshDueAt = None
            return current

        self.repos.store.modify(ConnectedUser, user.tenantId, user.row_key, clear)

    def disconnect_tenant(self, tenant_id: str) -> int:
        """Delete every stored token of the tenant (found through the index, tokens first), then
        mark its members not connected; returns how many secrets were deleted."""
        refs = list(self.repos.secret_refs(tenant_id))
        for ref in refs:
            self.forget_secret(tenant_id, ref.secretName)
        for user in self.repos.users(tenant_id):
            self._mark_not_connected(user)
        return len(refs)

    def remove_tenant_members(self, tenant_id: str) -> int:
        """Forget the tenant's members entirely (the tenant moved to another organization): every
        stored token deleted first, then the member rows. Returns how many members were removed."""
        self.disconnect_tenant(tenant_id)
        removed = 0
        for user in self.repos.users(tenant_id):
            if self.repos.store.delete(user, if_unchanged=False):
                removed += 1
        return removed
