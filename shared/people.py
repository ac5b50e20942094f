"""People as the contract names them: Entra object id, user principal name or e-mail address.

Graph's `/users/{x}` paths take only an object id or a UPN, and in many tenants the UPN is not the
primary SMTP address (https://learn.microsoft.com/en-us/graph/api/user-get: `{id |
userPrincipalName}`); getSchedule's `schedules` and invitations take SMTP addresses. The service
asks for no directory permission (the help article promises calendar permissions only), so an
organizer is resolved through its default calendar, which calendar permissions may read:
`GET /users/{id | UPN}/calendar?$select=owner` (https://learn.microsoft.com/en-us/graph/api/calendar-get)
names the mailbox's primary SMTP address as `owner.address`. A name Graph does not resolve in a
path is 422 `person_not_found`. Answers are kept in memory for an hour per process.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from urllib.parse import quote

from shared.errors import OutsideSecurityGroup, PersonNotFound
from shared.graph import GraphClient, GraphError
from shared.upstream import service_error

KEEP_SECONDS = 3600.0


@dataclass(frozen=True)
class Mailbox:
    """A path mailbox: how Graph paths name it (`path`, as the caller named it) and its SMTP address."""

    path: str
    address: str


class People:
    def __init__(self, graph: GraphClient, *, keep_seconds: float = KEEP_SECONDS) -> None:
        self.graph = graph
        self.keep_seconds = keep_seconds
        self._known: dict[tuple[str, str], tuple[str, float]] = {}
        self._lock = threading.Lock()

    def organizer(self, tenant_id: str, person: str, *, token: str | None = None,
                  address: str | None = None) -> Mailbox:
        """The organizer's mailbox. With a delegated `token`, `address` is the member's own mail (known
        from the ID token) and no call is needed."""
        if token is not None and address:
            return Mailbox(person, address.lower())
        key = (tenant_id, person.lower())
        with self._lock:
            known = self._known.get(key)
        if known and known[1] > time.monotonic():
            return Mailbox(person, known[0])
        path = "/me/calendar" if token else f"/users/{quote(person, safe='')}/calendar"
        try:
            calendar = self.graph.get(path, tenant_id=tenant_id, mailbox=person, token=token,
                                      params={"$select": "owner"}, retry=True).body or {}
        except GraphError as error:
            if error.outside_access_policy:
                raise OutsideSecurityGroup("The organizer's mailbox is outside the security group the tenant's "
                                           "admin allowed.", target="organizer") from None
            if error.status == 404:
                raise PersonNotFound("Microsoft Graph does not know the organizer by this address; send the "
                                     "organizer's Entra object id or user principal name.",
                                     target="organizer") from None
            raise service_error(error) from None
        found = str(((calendar.get("owner") or {}).get("address")) or person).lower()
        with self._lock:
            self._known[key] = (found, time.monotonic() + self.keep_seconds)
        return Mailbox(person, found)
