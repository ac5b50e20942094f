"""Change notifications for Outlook events: ``/v1.0/subscriptions`` and what each change sends.

Sources: https://learn.microsoft.com/en-us/graph/api/resources/subscription (properties; clientState
"The maximum length is 128 characters"), /graph/api/subscription-post-subscriptions (201; resource
examples "me/events", "Any path starting with me can also be used with users/{id}"; event
subscriptions need Calendars.Read), /graph/api/subscription-update (200, renew), /subscription-delete
(204), /subscription-reauthorize (204), /subscription-list, /graph/change-notifications-delivery-webhooks
(validation, delivery, "Duplicate subscriptions aren't allowed": 409), /graph/change-notifications-lifecycle-events,
/graph/outlook-immutable-id (``Prefer: IdType="ImmutableId"`` when creating the subscription),
/graph/api/resources/changenotification. Delivery itself: ``notifications``.

Create (``POST /v1.0/subscriptions``), in this order:
- A bearer token as every Graph call (``auth``) with Calendars.Read or Calendars.ReadWrite (a role
  app-only, a scope delegated; the ``.Shared`` scopes do not subscribe), else 403
  ``ErrorAccessDenied``. The app must still hold that grant in the tenant now (app-only: the
  application permission; delegated: the user's delegated scope), not only in its token.
- The body: ``changeType`` (``created``, ``updated``, ``deleted``, comma-separated, each once, as
  written: no spaces, lower case), ``notificationUrl``, ``resource``, ``expirationDateTime``
  (a date-time with an offset) and ``clientState`` are required; ``lifecycleNotificationUrl``
  and ``latestSupportedTlsVersion`` (``v1_2`` default, or ``v1_3``) are optional. Microsoft's
  pages disagree on ``clientState`` (optional on the resource page, "required" on the webhooks
  page): it is required here, 1 to 128 characters. A property Graph does not declare is 400
  ``BadRequest``; resource data (``includeResourceData``, certificates) and
  ``notificationQueryOptions`` are not modelled (400 ``InvalidRequest``).
- ``resource``: ``me/events`` (delegated only, else 400 as Graph's /me) or ``users/{id |
  userPrincipalName}/events`` (a leading ``/`` and any letter case allowed; an unknown user is
  404 ``ErrorInvalidUser``; a delegated caller may only name their own mailbox, else 403).
  Nothing else (other collections, a single event, ``$filter``, which is reported not to fire:
  facts-notifications-callers.md §1.9) is 400 ``InvalidRequest``. App-only, the mailbox must be
  inside the application access policy, else 403 "Access to OData is disabled.".
- Notification URLs must be https, or http on 127.0.0.1 only (the sandbox's one allowance, for
  the local host), else 400 ``InvalidRequest``.
- ``expirationDateTime`` after now and at most 10,070 minutes ahead, else 400 ``ExtensionError``
  "Subscription expiration can only be 10070 minutes in the future.". Microsoft's table says
  10,080 minutes (under 7 days) for Outlook events; Graph has been seen to refuse 10,080 with that
  very message for 10,070 (two independent reports), so 10,070 is the limit (the harsher
  reading). A time not after now is 400 ``InvalidRequest`` (the sandbox's words).
- The same app may not hold two subscriptions on the same mailbox for the same set of change
  types (however the resource names the mailbox, whatever the notification URL): 409
  ``ObjectIdentifierInUse`` "Subscription Id <id> already exists for the requested combination"
  (the page's message; the code as Graph answers it, seen by abraunegg/onedrive).
- Then the validation request to ``notificationUrl`` and, when given, ``lifecycleNotificationUrl``
  (both, even when the same URL): a wrong answer is 400 ``ValidationError`` "Subscription
  validation request failed. Notification endpoint must respond with 200 OK to validation
  request.", none in time 400 ``InvalidRequest`` "Subscription validation request timed out."
  (as Graph answers each; github.com/microsoftgraph/nodejs-webhooks-sample/issues/350).
- 201 with the subscription: ``id``, ``resource`` (as given), ``applicationId``, ``changeType``,
  ``clientState``, ``notificationUrl``, ``lifecycleNotificationUrl``, ``expirationDateTime``,
  ``creatorId`` (the user delegated, the service principal app-only), ``includeResourceData``,
  ``latestSupportedTlsVersion``, ... With ``Prefer: IdType="ImmutableId"`` its notifications carry
  immutable ids, for the subscription's life.

``GET /v1.0/subscriptions`` lists the calling app's subscriptions in the token's tenant (app-only:
all of them; delegated: those the signed-in user created). ``GET``, ``PATCH``, ``DELETE
/v1.0/subscriptions/{id}`` and ``POST .../{id}/reauthorize`` see the same ones; any other id, an
expired or removed one included, is 404 ``ResourceNotFound`` "The object was not found.". PATCH
takes ``expirationDateTime`` and/or ``notificationUrl`` (neither: 400 "Subscription must contain
either the 'expirationDateTime' or 'notificationUrl' property and its value."; anything else,
``lifecycleNotificationUrl`` included, which "can't be added by PATCH": 400) and answers 200.
Renewing and reauthorizing check the grant again and send the validation request(s) again, as
Graph is seen to do (github.com/microsoftgraph/msgraph-sdk-dotnet/issues/2805); both resume a
paused subscription.

What a subscription receives (``on_changes``): every ``Change`` the calendar store reports for its
mailbox whose type it asked for, as a ``changeNotification``: ``{"id", "subscriptionId",
"subscriptionExpirationDateTime", "changeType", "resource": "Users/{userId}/Events/{id}",
"resourceData": {"@odata.type": "#Microsoft.Graph.Event", "@odata.id": (the same path),
"@odata.etag": "W/\\"<changeKey>\\"", "id"}, "clientState", "tenantId"}``, the id being the REST id
the item had (its immutable id for an immutable-id subscription). A subscription whose grant is
gone (consent withdrawn, the user's refresh tokens revoked: ``pause``) sends nothing until it is
renewed or reauthorized; Graph documents a ``reauthorizationRequired`` for that, the sandbox sends
none by itself (the harsher reading; the control route sends one on demand). Expired
subscriptions are removed, lazily and by a sweep twice a second, and send nothing; Graph sends no
lifecycle notification for an expiry.

Lifecycle notifications (``lifecycle``; the control route): ``{"subscriptionId",
"subscriptionExpirationDateTime", "tenantId", "clientState", "lifecycleEvent"}`` to the
``lifecycleNotificationUrl`` only: "Existing subscriptions without a lifecycleNotificationUrl
property don't receive the lifecycle notifications" (the lifecycle page), so none is sent without
one. ``subscriptionRemoved`` also removes the subscription.
"""

from __future__ import annotations

import re
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from ..grants import consented_scopes
from ..state import service_principal_id
from ..web import HttpError, Request, Response
from .auth import ACCESS_DENIED, Caller, access_policy_allows, authenticate
from .common import bad_request, ci_get, fail, graph_json, json_object_body, metadata
from .notifications import Deliveries
from .store import Change
from .timezones import format_utc_z, parse_prefer

if TYPE_CHECKING:
    from ..state import SandboxState
    from .store import CalendarStore

MAX_EXPIRATION_MINUTES = 10_070
MAX_CLIENT_STATE = 128
CHANGE_TYPES = ("created", "updated", "deleted")
SUBSCRIBE_PERMISSIONS = frozenset({"calendars.read", "calendars.readwrite"})
LIFECYCLE_EVENTS = ("missed", "subscriptionRemoved", "reauthorizationRequired")
TLS_VERSIONS = ("v1_2", "v1_3")
NOT_FOUND = "The object was not found."
_RESOURCE_RE = re.compile(r"/?(?:(?P<me>me)|users/(?P<user>[^/?#]+))/events", re.IGNORECASE)
# Every property of graph.subscription (the resource page), in its order.
SUBSCRIPTION_PROPERTIES = (
    "id", "resource", "applicationId", "changeType", "clientState", "notificationUrl", "notificationQueryOptions",
    "lifecycleNotificationUrl", "expirationDateTime", "creatorId", "includeResourceData",
    "latestSupportedTlsVersion", "encryptionCertificate", "encryptionCertificateId", "notificationUrlAppId",
    "notificationContentType")
_CANONICAL = {name.lower(): name for name in SUBSCRIPTION_PROPERTIES}
_READ_ONLY = {"id", "applicationId", "creatorId"}


@dataclass
class Subscription:
    id: str
    tenant_id: str
    app_id: str
    creator_id: str
    user_id: str | None  # the signed-in user, for a delegated subscription
    mailbox_id: str
    resource: str
    change_type: str
    notification_url: str
    lifecycle_url: str | None
    client_state: str
    expiration: datetime
    immutable_ids: bool
    tls_version: str
    paused: bool = False
    change_types: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        self.change_types = frozenset(self.change_type.split(","))

    @property
    def expiration_text(self) -> str:
        return format_utc_z(self.expiration)

    def to_graph(self) -> dict[str, Any]:
        return {"id": self.id, "resource": self.resource, "applicationId": self.app_id,
                "changeType": self.change_type, "clientState": self.client_state,
                "notificationUrl": self.notification_url, "notificationQueryOptions": None,
                "lifecycleNotificationUrl": self.lifecycle_url, "expirationDateTime": self.expiration_text,
                "creatorId": self.creator_id, "includeResourceData": False,
                "latestSupportedTlsVersion": self.tls_version, "encryptionCertificate": None,
                "encryptionCertificateId": None, "notificationUrlAppId": None,
                "notificationContentType": "application/json"}

    def describe(self) -> dict[str, Any]:
        """The control view: Graph's, plus where it points and whether it is paused."""
        return {**self.to_graph(), "tenantId": self.tenant_id, "mailboxId": self.mailbox_id,
                "delegatedUserId": self.user_id, "immutableIds": self.immutable_ids, "paused": self.paused}


class SubscriptionStore:
    """The subscriptions of every tenant, and what they send (``Sandbox.subscriptions``)."""

    def __init__(self, state: SandboxState, calendars: CalendarStore):
        self.state = state
        self.calendars = calendars
        self.lock = threading.RLock()
        self._subscriptions: dict[str, Subscription] = {}
        self.clock = lambda: datetime.now(UTC)
        self.deliveries = Deliveries(lambda: getattr(state, "graph_settings", {}))
        self.deliveries.alive = self.exists
        self.deliveries.on_tick = self.sweep
        calendars.listeners.append(self.on_changes)

    # -- the collection ------------------------------------------------------------------------

    def _expire(self) -> None:
        now = self.clock()
        for sid in [sid for sid, sub in self._subscriptions.items() if sub.expiration <= now]:
            del self._subscriptions[sid]

    def sweep(self) -> None:
        with self.lock:
            self._expire()

    def exists(self, subscription_id: str) -> bool:
        return self.find(subscription_id) is not None

    def find(self, subscription_id: str) -> Subscription | None:
        with self.lock:
            self._expire()
            return self._subscriptions.get(subscription_id)

    def all(self) -> list[Subscription]:
        with self.lock:
            self._expire()
            return list(self._subscriptions.values())

    def add(self, sub: Subscription) -> None:
        with self.lock:
            self._subscriptions[sub.id] = sub
        self.deliveries.start()  # the sweep runs on the delivery thread

    def remove(self, subscription_id: str) -> Subscription | None:
        with self.lock:
            return self._subscriptions.pop(subscription_id, None)

    def duplicate_of(self, tenant_id: str, app_id: str, mailbox_id: str, change_types: frozenset[str]
                     ) -> Subscription | None:
        with self.lock:
            self._expire()
            return next((s for s in self._subscriptions.values()
                         if (s.tenant_id, s.app_id, s.mailbox_id, s.change_types)
                         == (tenant_id, app_id, mailbox_id, change_types)), None)

    def reset(self) -> None:
        """A sandbox reset: no subscriptions, nothing pending, no faults, an empty log."""
        with self.lock:
            self._subscriptions.clear()
        self.deliveries.reset()

    def pause(self, tenant_id: str, *, app_id: str | None = None, user_id: str | None = None) -> int:
        """A grant was revoked: matching subscriptions send nothing until renewed or reauthorized.
        ``user_id`` narrows to that user's delegated subscriptions."""
        count = 0
        with self.lock:
            for sub in self._subscriptions.values():
                if sub.tenant_id != tenant_id or (app_id is not None and sub.app_id != app_id):
                    continue
                if user_id is not None and sub.user_id != user_id:
                    continue
                if not sub.paused:
                    sub.paused = True
                    count += 1
        return count

    # -- grants ------------------------------------------------------------------------------

    def granted(self, tenant_id: str, app_id: str, user_id: str | None, mailbox_user: dict[str, Any]) -> bool:
        """Whether the app may read the mailbox now: its grant in the tenant (and, app-only, the
        application access policy). Read without the state's lock, as the Graph routes do."""
        tenant = self.state.tenant(tenant_id)
        if tenant is None or not any(t is tenant for t in self.state.tenants):
            return False
        if user_id is None:
            roles = {r.lower() for r in self.state.application_roles(tenant_id, app_id)}
            return bool(roles & SUBSCRIBE_PERMISSIONS) and access_policy_allows(self.state, tenant_id, app_id,
                                                                                mailbox_user)
        return bool(consented_scopes(tenant, app_id, user_id) & SUBSCRIBE_PERMISSIONS)

    def _sending(self, sub: Subscription) -> bool:
        if sub.paused:
            return False
        mailbox = self.calendars.mailboxes.get(sub.mailbox_id)
        return mailbox is not None and self.granted(sub.tenant_id, sub.app_id, sub.user_id, mailbox.user)

    # -- what subscriptions send ---------------------------------------------------------------

    def on_changes(self, changes: list[Change]) -> None:
        """The calendar store's listener (called under its lock): queue each change for every
        subscription on its mailbox that asked for its type. Never waits on the network."""
        with self.lock:
            self._expire()
            if not self._subscriptions:
                return
            for change in changes:
                for sub in self._subscriptions.values():
                    if sub.mailbox_id != change.mailbox_id or change.change_type not in sub.change_types:
                        continue
                    if not self._sending(sub):
                        continue
                    self.deliveries.enqueue(sub.notification_url, change_notification(sub, change), kind="change",
                                            subscription_id=sub.id)

    def lifecycle(self, sub: Subscription, event: str) -> bool:
        """Send a lifecycle notification (to the lifecycle URL only); ``subscriptionRemoved`` also
        removes the subscription. Answers whether one was sent."""
        item = {"subscriptionId": sub.id, "subscriptionExpirationDateTime": sub.expiration_text,
                "tenantId": sub.tenant_id, "clientState": sub.client_state, "lifecycleEvent": event}
        if event == "subscriptionRemoved":
            self.remove(sub.id)
        if not sub.lifecycle_url:
            return False
        self.deliveries.enqueue(sub.lifecycle_url, item, kind="lifecycle", subscription_id=sub.id)
        return True


def change_notification(sub: Subscription, change: Change) -> dict[str, Any]:
    item_id = change.immutable_id if sub.immutable_ids else change.rest_id
    path = f"Users/{change.mailbox_id}/Events/{item_id}"
    return {"id": secrets.token_urlsafe(12), "subscriptionId": sub.id,
            "subscriptionExpirationDateTime": sub.expiration_text, "changeType": change.change_type,
            "resource": path,
            "resourceData": {"@odata.type": "#Microsoft.Graph.Event", "@odata.id": path, "@odata.etag": change.etag,
                             "id": item_id},
            "clientState": sub.client_state, "tenantId": sub.tenant_id}


# -- the Graph routes ------------------------------------------------------------------------------

def _store(req: Request) -> SubscriptionStore:
    return req.sandbox.subscriptions


def _caller(req: Request) -> Caller:
    caller = authenticate(req)
    if not caller.permissions & SUBSCRIBE_PERMISSIONS:
        raise fail(req, 403, "ErrorAccessDenied", ACCESS_DENIED)
    return caller


def _invalid(req: Request, message: str) -> HttpError:
    return bad_request(req, "InvalidRequest", message)


def _mailbox_user(req: Request, caller: Caller, resource: Any) -> dict[str, Any]:
    """The mailbox ``resource`` names, checked as the events routes check a path mailbox."""
    if not isinstance(resource, str):
        raise bad_request(req, "BadRequest", "Cannot convert the value of 'resource' to the expected type "
                          "'Edm.String'.")
    match = _RESOURCE_RE.fullmatch(resource.strip())
    if match is None:
        raise _invalid(req, f"The value '{resource}' of parameter 'Resource' is not supported: subscribe to "
                            "users/{id}/events or me/events.")
    calendars = req.sandbox.calendars
    if match.group("me"):
        if not caller.delegated:
            raise bad_request(req, "BadRequest", "/me request is only valid with delegated authentication flow.")
        user = calendars.path_user(caller.tenant_id, caller.user_id or "")
        if user is None:
            raise fail(req, 404, "ErrorInvalidUser", f"The requested user '{caller.claims.get('oid')}' is invalid.")
    else:
        segment = unquote(match.group("user"))
        user = calendars.path_user(caller.tenant_id, segment)
        if user is None:
            raise fail(req, 404, "ErrorInvalidUser", f"The requested user '{segment}' is invalid.")
        if caller.delegated and str(user["id"]).lower() != caller.user_id:
            raise fail(req, 403, "ErrorAccessDenied", ACCESS_DENIED)
    _check_grant(req, caller, user)
    return user


def _check_grant(req: Request, caller: Caller, user: dict[str, Any]) -> None:
    if not caller.delegated and not access_policy_allows(req.sandbox.state, caller.tenant_id, caller.app_id, user):
        raise fail(req, 403, "ErrorAccessDenied", "Access to OData is disabled.")
    if not _store(req).granted(caller.tenant_id, caller.app_id, caller.user_id, user):
        raise fail(req, 403, "ErrorAccessDenied", ACCESS_DENIED)


def _change_type(req: Request, value: Any) -> str:
    parts = value.split(",") if isinstance(value, str) else []
    if not parts or any(p not in CHANGE_TYPES for p in parts) or len(set(parts)) != len(parts):
        raise _invalid(req, f"'{value}' is not a valid changeType: use created, updated and/or deleted, "
                            "comma-separated, each once.")
    return ",".join(parts)


def _url(req: Request, value: Any, name: str) -> str:
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or not parts.hostname or not (
            parts.scheme == "https" or (parts.scheme == "http" and parts.hostname == "127.0.0.1")):
        raise _invalid(req, f"The {name} must be an absolute https URL (http only on 127.0.0.1 in the sandbox), "
                            f"not '{value}'.")
    return str(value)


def _expiration(req: Request, value: Any, now: datetime) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00")) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise bad_request(req, "BadRequest", f"Cannot convert the literal '{value}' to the expected type "
                          "'Edm.DateTimeOffset'.")
    parsed = parsed.astimezone(UTC)
    if parsed <= now:
        raise _invalid(req, "Subscription expiration must be in the future.")
    if parsed - now > timedelta(minutes=MAX_EXPIRATION_MINUTES):
        raise bad_request(req, "ExtensionError",
                          f"Subscription expiration can only be {MAX_EXPIRATION_MINUTES} minutes in the future.")
    return parsed


def _validate_urls(req: Request, *urls: str | None) -> None:
    """The validation request to each URL given, in turn (a repeated URL is asked again)."""
    for url in urls:
        if not url:
            continue
        outcome = _store(req).deliveries.validate(url)
        if outcome == "timeout":
            raise _invalid(req, "Subscription validation request timed out.")
        if outcome != "validated":
            raise bad_request(req, "ValidationError", "Subscription validation request failed. Notification "
                              "endpoint must respond with 200 OK to validation request.")


def _answer(req: Request, status: int, sub: Subscription) -> Response:
    return graph_json(status, {"@odata.context": metadata(req, "subscriptions/$entity"), **sub.to_graph()})


def _conflict(req: Request, existing: Subscription) -> HttpError:
    return fail(req, 409, "ObjectIdentifierInUse",
                f"Subscription Id {existing.id} already exists for the requested combination")


def create_subscription(req: Request) -> Response:
    caller = _caller(req)
    body = json_object_body(req)
    for key in body:
        name = _CANONICAL.get(key.lower())
        if key.startswith("@"):
            continue
        if name is None:
            raise bad_request(req, "BadRequest", f"The property '{key}' does not exist on type "
                              "'microsoft.graph.subscription'. Make sure to only use property names that are "
                              "defined by the type or mark the type as open type.")
    for name in ("changeType", "notificationUrl", "resource", "expirationDateTime", "clientState"):
        if ci_get(body, name) is None:
            raise _invalid(req, f"The property '{name}' is required to create a subscription.")
    if ci_get(body, "includeResourceData") not in (None, False) or any(
            ci_get(body, n) is not None for n in ("encryptionCertificate", "encryptionCertificateId",
                                                  "notificationQueryOptions")):
        raise _invalid(req, "The sandbox does not model change notifications with resource data "
                            "(includeResourceData, encryption certificates) nor notificationQueryOptions.")
    change_type = _change_type(req, ci_get(body, "changeType"))
    user = _mailbox_user(req, caller, ci_get(body, "resource"))
    notification_url = _url(req, ci_get(body, "notificationUrl"), "notificationUrl")
    lifecycle = ci_get(body, "lifecycleNotificationUrl")
    lifecycle_url = _url(req, lifecycle, "lifecycleNotificationUrl") if lifecycle is not None else None
    store = _store(req)
    expiration = _expiration(req, ci_get(body, "expirationDateTime"), store.clock())
    client_state = ci_get(body, "clientState")
    if not isinstance(client_state, str) or not 1 <= len(client_state) <= MAX_CLIENT_STATE:
        raise _invalid(req, f"clientState must be a string of 1 to {MAX_CLIENT_STATE} characters.")
    tls = ci_get(body, "latestSupportedTlsVersion") or "v1_2"
    if tls not in TLS_VERSIONS:
        raise _invalid(req, f"latestSupportedTlsVersion must be one of {', '.join(TLS_VERSIONS)}, not '{tls}'.")
    mailbox_id = str(user["id"])
    change_types = frozenset(change_type.split(","))
    existing = store.duplicate_of(caller.tenant_id, caller.app_id, mailbox_id, change_types)
    if existing is not None:
        raise _conflict(req, existing)
    _validate_urls(req, notification_url, lifecycle_url)
    creator = caller.user_id if caller.delegated else service_principal_id(caller.tenant_id, caller.app_id)
    sub = Subscription(id=str(uuid.uuid4()), tenant_id=caller.tenant_id, app_id=caller.app_id,
                       creator_id=str(creator), user_id=caller.user_id if caller.delegated else None,
                       mailbox_id=mailbox_id, resource=ci_get(body, "resource"), change_type=change_type,
                       notification_url=notification_url, lifecycle_url=lifecycle_url, client_state=client_state,
                       expiration=expiration, immutable_ids=parse_prefer(req.header("prefer")).immutable_ids,
                       tls_version=tls)
    with store.lock:
        existing = store.duplicate_of(caller.tenant_id, caller.app_id, mailbox_id, change_types)
        if existing is not None:
            raise _conflict(req, existing)
        store.add(sub)
    return _answer(req, 201, sub)


def _visible(sub: Subscription, caller: Caller) -> bool:
    if (sub.tenant_id, sub.app_id) != (caller.tenant_id, caller.app_id):
        return False
    return not caller.delegated or sub.creator_id == caller.user_id


def _subscription(req: Request, caller: Caller) -> Subscription:
    assert req.match is not None  # noqa: S101
    sub = _store(req).find(unquote(req.match.group("sid")))
    if sub is None or not _visible(sub, caller):
        raise fail(req, 404, "ResourceNotFound", NOT_FOUND)
    return sub


def list_subscriptions(req: Request) -> Response:
    caller = _caller(req)
    value = [sub.to_graph() for sub in _store(req).all() if _visible(sub, caller)]
    return graph_json(200, {"@odata.context": metadata(req, "subscriptions"), "value": value})


def get_subscription(req: Request) -> Response:
    caller = _caller(req)
    return _answer(req, 200, _subscription(req, caller))


def _reauthorized(req: Request, caller: Caller, sub: Subscription, notification_url: str) -> None:
    """Check the grant again and validate the URLs again (renew and reauthorize)."""
    mailbox = req.sandbox.calendars.mailboxes.get(sub.mailbox_id)
    if mailbox is None:
        raise fail(req, 404, "ResourceNotFound", NOT_FOUND)
    _check_grant(req, caller, mailbox.user)
    _validate_urls(req, notification_url, sub.lifecycle_url)


def update_subscription(req: Request) -> Response:
    caller = _caller(req)
    sub = _subscription(req, caller)
    body = json_object_body(req)
    for key in body:
        if key.startswith("@"):
            continue
        if key.lower() not in ("expirationdatetime", "notificationurl"):
            raise _invalid(req, f"'{key}' cannot be changed on a subscription: only expirationDateTime and "
                                "notificationUrl can (delete the subscription and create another).")
    expiration_value = ci_get(body, "expirationDateTime")
    url_value = ci_get(body, "notificationUrl")
    if expiration_value is None and url_value is None:
        raise _invalid(req, "Subscription must contain either the 'expirationDateTime' or 'notificationUrl' "
                            "property and its value.")
    store = _store(req)
    expiration = _expiration(req, expiration_value, store.clock()) if expiration_value is not None else None
    url = _url(req, url_value, "notificationUrl") if url_value is not None else sub.notification_url
    _reauthorized(req, caller, sub, url)
    with store.lock:
        if store.find(sub.id) is not sub:
            raise fail(req, 404, "ResourceNotFound", NOT_FOUND)
        if expiration is not None:
            sub.expiration = expiration
        sub.notification_url = url
        sub.paused = False
    return _answer(req, 200, sub)


def reauthorize_subscription(req: Request) -> Response:
    caller = _caller(req)
    sub = _subscription(req, caller)
    _reauthorized(req, caller, sub, sub.notification_url)
    store = _store(req)
    with store.lock:
        if store.find(sub.id) is not sub:
            raise fail(req, 404, "ResourceNotFound", NOT_FOUND)
        sub.paused = False
    return Response.empty(204)


def delete_subscription(req: Request) -> Response:
    caller = _caller(req)
    sub = _subscription(req, caller)
    _store(req).remove(sub.id)
    return Response.empty(204)
