"""Validation and normalisation of a seed (the seed file, or the body of ``POST /_sandbox/reset``).

The format is the one in SANDBOX.md. ``validate_seed`` returns a normalised deep copy (GUIDs and
e-mail addresses lower-cased, defaults filled in) holding only the sections the input names, or
raises ``SeedError`` listing every problem found, with a JSON-pointer-like path for each.
Unknown properties are errors (a typo such as ``"consent"`` would otherwise pass silently); to
add a property, add it to the ``*_KEYS`` set of its level here.

People (SANDBOX.md "Additions for callers, identities and Outlook's own behaviour"):
- ``userPrincipalName``: the sign-in name, an address-like string; default: the user's ``mail``.
- ``proxyAddresses``: the user's other SMTP addresses, each plain (``fay@fabrikam.example``) or
  with Exchange's prefix (``smtp:`` for a secondary, ``SMTP:`` for the primary; the prefix's case
  is not otherwise checked). Kept as plain lower-cased addresses without the ``mail``; any other
  prefix (``SIP:``, ``X500:``...) is an error: the sandbox only models SMTP addresses.
- Within a tenant, an object id, a UPN and every SMTP address (mail or proxy) name at most one
  user: a value used by two users is an error, also across kinds (one user's UPN as another's
  proxy address). Entra keeps UPNs and proxy addresses unique separately; the sandbox takes the
  harsher single namespace so that no lookup is ever ambiguous.
- A group's ``members`` may name a user by id, UPN or any SMTP address; they are kept as mails.

Directory roles (SANDBOX.md "Sign-in sessions, as Microsoft keeps them"):
- A user's ``roles``: Microsoft Entra built-in roles held, each by display name (any case) or by
  template id, from ``DIRECTORY_ROLES`` (the "All roles" table of
  learn.microsoft.com/entra/identity/role-based-access-control/permissions-reference); any other
  value is an error, so that a typo cannot make a role nobody checks. Kept as template ids.
  ``"isAdmin": true`` is the Global Administrator role (``GLOBAL_ADMINISTRATOR``);
  ``directory_roles`` gives a user's roles with it.
- An app's ``groupMembershipClaims`` (the application manifest's attribute,
  learn.microsoft.com/entra/identity-platform/reference-app-manifest): ``"None"`` (the default),
  ``"DirectoryRole"`` or ``"All"``, the two values that put ``wids`` in tokens ("Set the claim to
  All or DirectoryRole", learn.microsoft.com/entra/identity-platform/access-token-claims-reference).
  ``"SecurityGroup"`` and ``"ApplicationGroup"`` are errors: the sandbox does not model the
  ``groups`` claims they configure.

``graph`` (top level): Graph's settings (see ``sandbox.state``), each optional, a number:
``transactionIdWindowSeconds`` (>= 0, default 120), ``subscriptionValidationTimeoutSeconds`` (> 0,
at most 10, the default: Microsoft's figure), ``notificationTimeoutSeconds`` (> 0, at most 3, the
default), ``notificationRetries`` (a whole number 0-10, default 4) and
``notificationRetryBaseSeconds`` (> 0, at most 60, default 1). The two timeouts may only be
shortened, never made kinder than Microsoft's (``GRAPH_SETTINGS``).
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cryptography import x509

SEED_KEYS = {"homeTenantId", "apps", "vault", "tenants", "managedIdentity", "resetVault", "graph"}
APP_KEYS = {"clientId", "clientSecret", "certificates", "redirectUris", "permissions", "displayName",
            "identifierUri", "appRoles", "roleAssignments", "groupMembershipClaims"}
TENANT_KEYS = {"tenantId", "domain", "displayName", "consented", "applicationAccessPolicy", "groups", "users",
               "allowUserConsent"}
USER_KEYS = {"id", "mail", "userPrincipalName", "proxyAddresses", "displayName", "isAdmin", "roles",
             "timeZone", "workingHours", "events"}
# Graph's settings: name -> (default, lowest (None: above 0), highest, whole numbers only).
GRAPH_SETTINGS: dict[str, tuple[float, float | None, float, bool]] = {
    "transactionIdWindowSeconds": (120, 0, float("inf"), False),
    "subscriptionValidationTimeoutSeconds": (10, None, 10, False),
    "notificationTimeoutSeconds": (3, None, 3, False),
    "notificationRetries": (4, 0, 10, True),
    "notificationRetryBaseSeconds": (1, None, 60, False),
}
GRAPH_KEYS = set(GRAPH_SETTINGS)
GROUP_KEYS = {"id", "mail", "displayName", "members"}
WORKING_HOURS_KEYS = {"daysOfWeek", "startTime", "endTime"}
MANAGED_IDENTITY_KEYS = {"identityHeader", "principalId", "clientId"}
# Events may carry more Graph event properties (attendees, location, ...) for later slices;
# only these are checked here.
EVENT_CHECKED_KEYS = {"subject", "start", "end", "showAs"}

SHOW_AS = ("free", "tentative", "busy", "oof", "workingElsewhere", "unknown")
DAYS_OF_WEEK = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
DEFAULT_APPLICATION_PERMISSIONS = ["Calendars.ReadWrite"]
DEFAULT_DELEGATED_PERMISSIONS = ["Calendars.ReadWrite", "User.Read"]
DEFAULT_TIME_ZONE = "UTC"
DEFAULT_WORKING_HOURS = {"daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"],
                         "startTime": "08:00:00", "endTime": "17:00:00"}
DEFAULT_IDENTITY_HEADER = "sandbox-identity-header"
DEFAULT_TRANSACTION_ID_WINDOW_SECONDS = 120
RESERVED_TENANT_SEGMENTS = {"organizations", "common", "consumers"}
GROUP_MEMBERSHIP_CLAIMS = ("None", "DirectoryRole", "All")
UNMODELLED_GROUP_MEMBERSHIP_CLAIMS = ("SecurityGroup", "ApplicationGroup")

# Microsoft Entra built-in roles: display name -> role template id, from the "All roles" table of
# learn.microsoft.com/entra/identity/role-based-access-control/permissions-reference (the roles a
# seed is likely to name; add rows from that table as needed).
GLOBAL_ADMINISTRATOR = "62e90394-69f5-4237-9190-012177145e10"
PRIVILEGED_ROLE_ADMINISTRATOR = "e8611ab8-c189-46e8-94e1-60213ab1f814"
CLOUD_APPLICATION_ADMINISTRATOR = "158c047a-c907-4556-b7ef-446551a6b5f7"
APPLICATION_ADMINISTRATOR = "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3"
DIRECTORY_ROLES = {
    "Global Administrator": GLOBAL_ADMINISTRATOR,
    "Privileged Role Administrator": PRIVILEGED_ROLE_ADMINISTRATOR,
    "Cloud Application Administrator": CLOUD_APPLICATION_ADMINISTRATOR,
    "Application Administrator": APPLICATION_ADMINISTRATOR,
    "Application Developer": "cf1c38e5-3621-4004-a7cb-879624dced7c",
    "AI Administrator": "d2562ede-74db-457e-a7b6-544e236ebb61",
    "Global Reader": "f2ef992c-3afb-46b9-b7cf-a126ee74c451",
    "Directory Readers": "88d8e3e3-8f55-4a1e-953a-9b9898b8876b",
    "User Administrator": "fe930be7-5e62-47db-91af-98c3a49a38b1",
    "Helpdesk Administrator": "729827e3-9c14-49f7-bb1b-9608f156bbb8",
    "Authentication Administrator": "c4e39bd9-1100-46d3-8c65-fb160da0071f",
    "Privileged Authentication Administrator": "7be44c8a-adaf-4e2a-84d6-ab2649e08a13",
    "Security Administrator": "194ae4cb-b126-40b2-bd5b-6091b380977d",
    "Security Reader": "5d6b6bb7-de71-4623-b4af-96380a352509",
    "Exchange Administrator": "29232cdf-9323-42fd-ade2-1d097af3e4de",
    "Exchange Recipient Administrator": "31392ffb-586c-42d1-9346-e59415a2cc4e",
    "Teams Administrator": "69091246-20e8-4a56-aa4d-066075b2a7a8",
    "SharePoint Administrator": "f28a1f50-f6e7-4571-818b-6a12f2af6b6c",
}
_ROLE_BY_NAME = {name.lower(): template for name, template in DIRECTORY_ROLES.items()}
_ROLE_IDS = set(DIRECTORY_ROLES.values())

SECRET_NAME_RE = re.compile(r"[0-9a-zA-Z-]{1,127}")
_TIME_RE = re.compile(r"([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,7})?)?")
_MAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_URI_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s]+")
_DOMAIN_RE = re.compile(r"(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}")


class SeedError(ValueError):
    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


def is_guid(value: object) -> bool:
    if not isinstance(value, str) or len(value) != 36:
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def smtp_addresses(user: dict[str, Any]) -> list[str]:
    """A (validated) user's SMTP addresses, lower-cased: the mail first, then the proxy addresses."""
    mail = str(user.get("mail") or "").lower()
    others = [str(a).lower() for a in user.get("proxyAddresses") or [] if str(a).lower() != mail]
    return [mail, *dict.fromkeys(others)] if mail else list(dict.fromkeys(others))


def user_principal_name(user: dict[str, Any]) -> str:
    """A (validated) user's UPN, lower-cased (the mail when the seed gives none)."""
    return str(user.get("userPrincipalName") or user.get("mail") or "").lower()


def user_keys(user: dict[str, Any]) -> list[str]:
    """Every value that names the user somewhere: object id, UPN, SMTP addresses (lower-cased)."""
    return list(dict.fromkeys(k for k in (str(user.get("id") or "").lower(), user_principal_name(user),
                                          *smtp_addresses(user)) if k))


def directory_roles(user: dict[str, Any]) -> list[str]:
    """A (validated) user's directory role template ids: Global Administrator for ``isAdmin``, then
    the seed's ``roles``, each once."""
    roles = [GLOBAL_ADMINISTRATOR] if user.get("isAdmin") else []
    return list(dict.fromkeys([*roles, *user.get("roles", [])]))


def check_transaction_id_window(value: Any) -> float | int | None:
    """``transactionIdWindowSeconds`` if valid (a finite number >= 0, not a boolean), else None."""
    return check_graph_setting("transactionIdWindowSeconds", value)


def check_graph_setting(name: str, value: Any) -> float | int | None:
    """A Graph setting's value if valid for it (a finite number in its range, not a boolean), else None."""
    _, lowest, highest, whole = GRAPH_SETTINGS[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value or value == float("inf"):
        return None
    if (whole and value != int(value)) or value > highest:
        return None
    if (lowest is None and value <= 0) or (lowest is not None and value < lowest):
        return None
    return value


def graph_setting_rule(name: str) -> str:
    """How ``name``'s value must be, in words (for error messages)."""
    _, lowest, highest, whole = GRAPH_SETTINGS[name]
    kind = "a whole number" if whole else "a number"
    low = "> 0" if lowest is None else f">= {lowest:g}"
    return f"{kind} {low}" + (f" and <= {highest:g}" if highest != float("inf") else "")


def parse_event_time(value: str) -> datetime:
    """Parse an ISO 8601 date-time with an offset (``Z`` allowed)."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("no UTC offset")
    return parsed


class _Checker:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")

    def obj(self, value: Any, where: str, allowed: set[str]) -> bool:
        if not isinstance(value, dict):
            self.fail(where, "must be an object")
            return False
        for key in value:
            if key not in allowed:
                self.fail(f"{where}/{key}", f"unknown property (allowed: {', '.join(sorted(allowed))})")
        return True

    def guid(self, value: Any, where: str) -> str | None:
        if not is_guid(value):
            self.fail(where, "must be a GUID string like 00000000-0000-0000-0000-000000000000")
            return None
        return str(value).lower()

    def string(self, value: Any, where: str, *, empty_ok: bool = False) -> str | None:
        if not isinstance(value, str) or (not empty_ok and not value):
            self.fail(where, "must be a non-empty string" if not empty_ok else "must be a string")
            return None
        return value

    def string_list(self, value: Any, where: str) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.fail(where, "must be a list of non-empty strings")
            return []
        return list(value)

    def mail(self, value: Any, where: str) -> str | None:
        if not isinstance(value, str) or not _MAIL_RE.fullmatch(value):
            self.fail(where, "must be an e-mail address")
            return None
        return value.lower()


def _each(items: Any, check: Any) -> list[dict[str, Any]]:
    """``check(item, index)`` for each item of a list, keeping the results that are not None."""
    if not isinstance(items, list):
        return []
    return [r for i, item in enumerate(items) if (r := check(item, i)) is not None]


def _permissions(c: _Checker, value: Any, where: str) -> dict[str, list[str]]:
    result = {"application": list(DEFAULT_APPLICATION_PERMISSIONS), "delegated": list(DEFAULT_DELEGATED_PERMISSIONS)}
    if value is None:
        return result
    if c.obj(value, where, {"application", "delegated"}):
        for kind in ("application", "delegated"):
            if kind in value:
                result[kind] = c.string_list(value[kind], f"{where}/{kind}")
    return result


def _app(c: _Checker, value: Any, where: str) -> dict[str, Any] | None:
    if not c.obj(value, where, APP_KEYS):
        return None
    client_id = c.guid(value.get("clientId"), f"{where}/clientId")
    secret = value.get("clientSecret")
    if secret is not None:
        secret = c.string(secret, f"{where}/clientSecret")
    certificates: list[str] = []
    for i, pem in enumerate(value.get("certificates") or []):
        try:
            x509.load_pem_x509_certificate(pem.encode("ascii"))
        except (AttributeError, ValueError, UnicodeEncodeError):
            c.fail(f"{where}/certificates/{i}", "must be a PEM certificate (-----BEGIN CERTIFICATE-----)")
            continue
        certificates.append(pem)
    if "certificates" in value and not isinstance(value["certificates"], list):
        c.fail(f"{where}/certificates", "must be a list of PEM certificates")
    # An app that exposes an API (identifierUri, appRoles) and is never a client needs no credential.
    identifier_uri = value.get("identifierUri")
    if identifier_uri is not None and (not isinstance(identifier_uri, str) or not _URI_RE.fullmatch(identifier_uri)):
        c.fail(f"{where}/identifierUri", "must be an application ID URI like api://<clientId>")
        identifier_uri = None
    app_roles = c.string_list(value.get("appRoles", []), f"{where}/appRoles")
    if secret is None and not certificates and identifier_uri is None and not app_roles:
        c.fail(where, "needs a clientSecret or at least one certificate")
    assignments: dict[str, list[str]] = {}
    raw_assignments = value.get("roleAssignments", {})
    if not isinstance(raw_assignments, dict):
        c.fail(f"{where}/roleAssignments", "must be an object {<api clientId>: [app role, ...]}")
        raw_assignments = {}
    for api_id, roles in raw_assignments.items():
        api = c.guid(api_id, f"{where}/roleAssignments/{api_id}")
        if api:
            assignments[api] = c.string_list(roles, f"{where}/roleAssignments/{api_id}")
    redirect_uris = c.string_list(value.get("redirectUris", []), f"{where}/redirectUris")
    display_name = value.get("displayName", "10KC Calendar")
    c.string(display_name, f"{where}/displayName")
    group_claims = value.get("groupMembershipClaims", "None")
    if group_claims in UNMODELLED_GROUP_MEMBERSHIP_CLAIMS:
        c.fail(f"{where}/groupMembershipClaims", f"{group_claims!r} configures groups claims, which the sandbox "
                                                 f"does not model (use one of {', '.join(GROUP_MEMBERSHIP_CLAIMS)})")
    elif group_claims not in GROUP_MEMBERSHIP_CLAIMS:
        c.fail(f"{where}/groupMembershipClaims", f"must be one of {', '.join(GROUP_MEMBERSHIP_CLAIMS)}")
    return {"clientId": client_id, "clientSecret": secret, "certificates": certificates,
            "redirectUris": redirect_uris, "permissions": _permissions(c, value.get("permissions"),
                                                                       f"{where}/permissions"),
            "displayName": display_name, "identifierUri": identifier_uri, "appRoles": app_roles,
            "roleAssignments": assignments, "groupMembershipClaims": group_claims}


def _check_role_assignments(c: _Checker, apps: list[dict[str, Any]]) -> None:
    """Every role assigned names an app of the seed that exposes that app role."""
    by_id = {app["clientId"]: app for app in apps}
    for i, app in enumerate(apps):
        for api_id, roles in app["roleAssignments"].items():
            api = by_id.get(api_id)
            if api is None:
                c.fail(f"/apps/{i}/roleAssignments/{api_id}", "is not the clientId of an app in the seed's apps")
                continue
            for role in roles:
                if role not in api["appRoles"]:
                    c.fail(f"/apps/{i}/roleAssignments/{api_id}", f"{role!r} is not one of that app's appRoles")
    uris = [app["identifierUri"].lower() for app in apps if app["identifierUri"]]
    if len(uris) != len(set(uris)):
        c.fail("/apps", "two apps have the same identifierUri")


def _working_hours(c: _Checker, value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {k: (list(v) if isinstance(v, list) else v) for k, v in DEFAULT_WORKING_HOURS.items()}
    if not c.obj(value, where, WORKING_HOURS_KEYS):
        return dict(DEFAULT_WORKING_HOURS)
    days = c.string_list(value.get("daysOfWeek"), f"{where}/daysOfWeek")
    for day in days:
        if day not in DAYS_OF_WEEK:
            c.fail(f"{where}/daysOfWeek", f"{day!r} is not one of {', '.join(DAYS_OF_WEEK)}")
    times = {}
    for key in ("startTime", "endTime"):
        text = value.get(key)
        if not isinstance(text, str) or not _TIME_RE.fullmatch(text):
            c.fail(f"{where}/{key}", "must be a time like 09:00:00")
        else:
            times[key] = text if text.count(":") == 2 else text + ":00"
    if len(times) == 2 and times["startTime"] >= times["endTime"]:
        c.fail(where, "startTime must be before endTime")
    return {"daysOfWeek": days, **times}


def _event(c: _Checker, value: Any, where: str) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        c.fail(where, "must be an object")
        return None
    event = dict(value)
    c.string(event.get("subject", ""), f"{where}/subject", empty_ok=True)
    event.setdefault("subject", "")
    bounds = []
    for key in ("start", "end"):
        text = event.get(key)
        try:
            bounds.append(parse_event_time(text))  # type: ignore[arg-type]
        except (TypeError, ValueError, AttributeError):
            c.fail(f"{where}/{key}", "must be an ISO 8601 date-time with a UTC offset, like YYYY-MM-DDT10:00:00-05:00")
    if len(bounds) == 2 and bounds[0] >= bounds[1]:
        c.fail(where, "start must be before end")
    show_as = event.setdefault("showAs", "busy")
    if show_as not in SHOW_AS:
        c.fail(f"{where}/showAs", f"must be one of {', '.join(SHOW_AS)}")
    return event


def _proxy_addresses(c: _Checker, value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        c.fail(where, 'must be a list of SMTP addresses ("fay@fabrikam.example" or "smtp:fay@fabrikam.example")')
        return []
    result = []
    for i, item in enumerate(value):
        if not isinstance(item, str):
            c.fail(f"{where}/{i}", "must be a string")
            continue
        prefix, sep, rest = item.partition(":")
        if sep and "@" not in prefix:
            if prefix.lower() != "smtp":
                c.fail(f"{where}/{i}", f"{item!r}: only SMTP addresses are modelled (smtp:/SMTP: or none)")
                continue
            item = rest
        address = c.mail(item, f"{where}/{i}")
        if address:
            result.append(address)
    return result


def _roles(c: _Checker, value: Any, where: str) -> list[str]:
    """A user's ``roles``: built-in role names (any case) or template ids, kept as template ids."""
    if value is None:
        return []
    if not isinstance(value, list):
        c.fail(where, 'must be a list of directory roles, like ["Cloud Application Administrator"]')
        return []
    roles = []
    for i, item in enumerate(value):
        template = _ROLE_BY_NAME.get(item.strip().lower()) if isinstance(item, str) else None
        if template is None and isinstance(item, str) and item.lower() in _ROLE_IDS:
            template = item.lower()
        if template is None:
            c.fail(f"{where}/{i}", f"{item!r} is not a built-in role the sandbox knows (a name or template id of "
                                   f"{', '.join(DIRECTORY_ROLES)})")
            continue
        roles.append(template)
    return list(dict.fromkeys(roles))


def _user(c: _Checker, value: Any, where: str) -> dict[str, Any] | None:
    if not c.obj(value, where, USER_KEYS):
        return None
    user_id = c.guid(value.get("id"), f"{where}/id")
    mail = c.mail(value.get("mail"), f"{where}/mail")
    upn = c.mail(value["userPrincipalName"], f"{where}/userPrincipalName") if "userPrincipalName" in value else mail
    proxies = [a for a in _proxy_addresses(c, value.get("proxyAddresses"), f"{where}/proxyAddresses") if a != mail]
    display_name = c.string(value.get("displayName", mail or ""), f"{where}/displayName")
    is_admin = value.get("isAdmin", False)
    if not isinstance(is_admin, bool):
        c.fail(f"{where}/isAdmin", "must be true or false")
    time_zone = value.get("timeZone", DEFAULT_TIME_ZONE)
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        c.fail(f"{where}/timeZone", f"{time_zone!r} is not an IANA time zone name (e.g. America/New_York)")
    events = value.get("events", [])
    if not isinstance(events, list):
        c.fail(f"{where}/events", "must be a list")
        events = []
    checked_events = [_event(c, e, f"{where}/events/{i}") for i, e in enumerate(events)]
    return {"id": user_id, "mail": mail, "userPrincipalName": upn, "proxyAddresses": list(dict.fromkeys(proxies)),
            "displayName": display_name, "isAdmin": is_admin is True,
            "roles": _roles(c, value.get("roles"), f"{where}/roles"), "timeZone": time_zone,
            "workingHours": _working_hours(c, value.get("workingHours"), f"{where}/workingHours"),
            "events": [e for e in checked_events if e is not None]}


def _tenant(c: _Checker, value: Any, where: str, app_ids: set[str] | None) -> dict[str, Any] | None:
    if not c.obj(value, where, TENANT_KEYS):
        return None
    tenant_id = c.guid(value.get("tenantId"), f"{where}/tenantId")
    domain = value.get("domain")
    if not isinstance(domain, str) or not _DOMAIN_RE.fullmatch(domain.lower()):
        c.fail(f"{where}/domain", "must be a DNS domain name like contoso.example")
        domain = None
    else:
        domain = domain.lower()
    users = _each(value.get("users") or [], lambda item, i: _user(c, item, f"{where}/users/{i}"))
    if "users" in value and not isinstance(value["users"], list):
        c.fail(f"{where}/users", "must be a list")
    by_key: dict[str, dict[str, Any]] = {}
    for i, user in enumerate(users):
        for key in user_keys(user):
            if key in by_key and by_key[key] is not user:
                c.fail(f"{where}/users/{i}", f"duplicate user id, userPrincipalName or SMTP address {key!r}")
            else:
                by_key[key] = user
    groups = []
    for i, group in enumerate(value.get("groups") or []):
        gw = f"{where}/groups/{i}"
        if not c.obj(group, gw, GROUP_KEYS):
            continue
        members = []
        for member in c.string_list(group.get("members", []), f"{gw}/members"):
            user = by_key.get(member.lower())
            if user is None:
                c.fail(f"{gw}/members", f"{member!r} is not a user (id, UPN or SMTP address) of this tenant")
            else:
                members.append(user["mail"])
        mail = c.mail(group.get("mail"), f"{gw}/mail")
        groups.append({"id": c.guid(group.get("id"), f"{gw}/id"), "mail": mail,
                       "displayName": group.get("displayName") or (mail.split("@")[0] if mail else ""),
                       "members": members})
    group_ids = {g["id"] for g in groups}
    consented: dict[str, dict[str, list[str]]] = {}
    raw_consented = value.get("consented") or {}
    if not isinstance(raw_consented, dict):
        c.fail(f"{where}/consented", "must be an object keyed by clientId")
        raw_consented = {}
    for client_id, grant in raw_consented.items():
        cw = f"{where}/consented/{client_id}"
        cid = c.guid(client_id, cw)
        if cid and app_ids is not None and cid not in app_ids:
            c.fail(cw, "is not the clientId of an app in the seed's apps")
        if c.obj(grant, cw, {"application", "delegated"}) and cid:
            consented[cid] = {"application": c.string_list(grant.get("application", []), f"{cw}/application"),
                              "delegated": c.string_list(grant.get("delegated", []), f"{cw}/delegated")}
    policy: dict[str, str] = {}
    raw_policy = value.get("applicationAccessPolicy") or {}
    if not isinstance(raw_policy, dict):
        c.fail(f"{where}/applicationAccessPolicy", "must be an object {clientId: groupId}")
        raw_policy = {}
    for client_id, group_id in raw_policy.items():
        pw = f"{where}/applicationAccessPolicy/{client_id}"
        cid = c.guid(client_id, pw)
        gid = c.guid(group_id, pw)
        if gid and gid not in group_ids:
            c.fail(pw, f"group {group_id!r} is not one of this tenant's groups")
        if cid and gid:
            policy[cid] = gid
    # allowUserConsent: false is a tenant whose admin turned user consent off (consent pages).
    allow_user_consent = value.get("allowUserConsent", True)
    if not isinstance(allow_user_consent, bool):
        c.fail(f"{where}/allowUserConsent", "must be true or false")
    return {"tenantId": tenant_id, "domain": domain, "displayName": value.get("displayName") or domain,
            "consented": consented, "applicationAccessPolicy": policy, "groups": groups, "users": users,
            "allowUserConsent": allow_user_consent is not False}


def validate_seed(raw: Any, *, require_home: bool, current_app_ids: set[str] | None = None) -> dict[str, Any]:
    """Validate and normalise ``raw``.

    ``require_home``: the seed file must name ``homeTenantId``; a reset body may leave it out.
    ``current_app_ids``: the apps in force when the body names none (consent grants must name one).
    """
    c = _Checker()
    if not c.obj(raw, "", SEED_KEYS):
        raise SeedError(c.problems or ["the seed must be a JSON object"])
    out: dict[str, Any] = {}
    if "homeTenantId" in raw or require_home:
        out["homeTenantId"] = c.guid(raw.get("homeTenantId"), "/homeTenantId")
    app_ids = current_app_ids
    if "apps" in raw:
        if not isinstance(raw["apps"], list):
            c.fail("/apps", "must be a list")
        else:
            apps = _each(raw["apps"], lambda item, i: _app(c, item, f"/apps/{i}"))
            app_ids = set()
            for i, app in enumerate(apps):
                if app["clientId"] in app_ids:
                    c.fail(f"/apps/{i}/clientId", "duplicate clientId")
                app_ids.add(app["clientId"])
            _check_role_assignments(c, apps)
            out["apps"] = apps
    if "vault" in raw:
        vault = raw["vault"]
        if c.obj(vault, "/vault", {"secrets"}):
            secrets = vault.get("secrets", {})
            if not isinstance(secrets, dict):
                c.fail("/vault/secrets", "must be an object {name: value}")
                secrets = {}
            seen: set[str] = set()
            for name, secret_value in secrets.items():
                if not SECRET_NAME_RE.fullmatch(name):
                    c.fail(f"/vault/secrets/{name}", "secret names are 1-127 characters of 0-9, a-z, A-Z and -")
                elif name.lower() in seen:
                    c.fail(f"/vault/secrets/{name}", "duplicate name (Key Vault names are case-insensitive)")
                seen.add(name.lower())
                c.string(secret_value, f"/vault/secrets/{name}", empty_ok=True)
            out["vault"] = {"secrets": dict(secrets)}
    if "resetVault" in raw:
        if not isinstance(raw["resetVault"], bool):
            c.fail("/resetVault", "must be true or false")
        out["resetVault"] = raw["resetVault"] is True
    if "managedIdentity" in raw:
        mi = raw["managedIdentity"]
        if c.obj(mi, "/managedIdentity", MANAGED_IDENTITY_KEYS):
            header = c.string(mi.get("identityHeader", DEFAULT_IDENTITY_HEADER), "/managedIdentity/identityHeader")
            out["managedIdentity"] = {"identityHeader": header, "principalId": None, "clientId": None}
            for key in ("principalId", "clientId"):
                if key in mi:
                    out["managedIdentity"][key] = c.guid(mi[key], f"/managedIdentity/{key}")
    if "graph" in raw:
        graph = raw["graph"]
        if c.obj(graph, "/graph", GRAPH_KEYS):
            out["graph"] = {}
            for name, value in graph.items():
                if name not in GRAPH_SETTINGS:
                    continue  # reported by c.obj
                if check_graph_setting(name, value) is None:
                    c.fail(f"/graph/{name}", f"must be {graph_setting_rule(name)} (seconds, or a count)")
                out["graph"][name] = value
    if "tenants" in raw:
        if not isinstance(raw["tenants"], list):
            c.fail("/tenants", "must be a list")
        else:
            tenants = _each(raw["tenants"], lambda item, i: _tenant(c, item, f"/tenants/{i}", app_ids))
            seen_keys: set[str] = set()
            for i, tenant in enumerate(tenants):
                for key in (tenant["tenantId"], tenant["domain"]):
                    if key and key in seen_keys:
                        c.fail(f"/tenants/{i}", f"duplicate tenantId or domain {key!r}")
                    elif key:
                        seen_keys.add(key)
            out["tenants"] = tenants
    if c.problems:
        raise SeedError(c.problems)
    return out
