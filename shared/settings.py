"""Every setting the service reads, typed and checked once.

`load_settings()` runs when `function_app` is imported: pure checks only (no I/O), so a missing or
malformed setting stops the app at start with a message that names it. Tests build their own
`Settings` from a mapping with `Settings.from_env(values)`.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import urlsplit

# Microsoft's public cloud. National clouds set these three settings (see README, "Settings").
PUBLIC_AUTHORITY_HOST = "https://login.microsoftonline.com"
PUBLIC_GRAPH_BASE_URL = "https://graph.microsoft.com/v1.0"
PUBLIC_GRAPH_RESOURCE = "https://graph.microsoft.com"

# Hosts where Microsoft serves the identity platform; instance discovery stays on for these only.
MICROSOFT_AUTHORITY_HOSTS = frozenset(
    {
        "login.microsoftonline.com",
        "login.microsoftonline.us",
        "login.partner.microsoftonline.cn",
        "login.chinacloudapi.cn",
    }
)
# Key Vault DNS suffixes; a vault elsewhere (the local sandbox) needs verify_challenge_resource off.
KEY_VAULT_SUFFIXES = (".vault.azure.net", ".vault.usgovcloudapi.net", ".vault.azure.cn")

CREDENTIAL_TYPES = ("secret", "certificate")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names it and never echoes secret values."""


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url(name: str, value: str, *, https_only: bool) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"{name} must be an absolute http(s) URL, got {value!r}")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise SettingsError(f"{name} must not carry user info, a query or a fragment")
    if parts.scheme == "http" and (https_only or not _is_loopback(parts.hostname)):
        raise SettingsError(f"{name} must use https (http is allowed only for loopback): {value!r}")
    return value.rstrip("/")


def _origin(name: str, value: str) -> str:
    url = _url(name, value, https_only=False)
    if urlsplit(url).path not in ("", "/"):
        raise SettingsError(f"{name}: {value!r} is not an origin (scheme://host[:port], no path)")
    return origin_of(url)


def origin_of(url: str) -> str:
    """`scheme://host[:port]` of an absolute URL, lower-cased, default ports left out."""
    parts = urlsplit(url)
    port = parts.port
    default = {"http": 80, "https": 443}[parts.scheme]
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host.lower()}" + (f":{port}" if port and port != default else "")


def _int(name: str, value: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {value!r}") from None
    if not low <= number <= high:
        raise SettingsError(f"{name} must be between {low} and {high}, got {number}")
    return number


def _hours(name: str, value: str) -> float:
    """A number of hours, more than 0 and at most a week (fractions allowed: tests use seconds)."""
    try:
        hours = float(value)
    except ValueError:
        raise SettingsError(f"{name} must be a number of hours") from None
    if not 0 < hours <= 168:
        raise SettingsError(f"{name} must be more than 0 and at most 168 (hours)")
    return hours


def _ncrontab(name: str, value: str) -> str:
    if len(value.split()) not in (5, 6):
        raise SettingsError(f"{name} must be an NCRONTAB expression of 5 or 6 fields, got {value!r}")
    return value


def _secret_name(name: str, value: str) -> str:
    if not value or len(value) > 127 or not all(c.isascii() and (c.isalnum() or c == "-") for c in value):
        raise SettingsError(f"{name} must be a Key Vault secret name (1-127 of 0-9 a-z A-Z -)")
    return value


def _guid(name: str, value: str) -> str:
    import uuid

    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise SettingsError(f"{name} must be a GUID, got {value!r}") from None


def _api_audience(value: str) -> str:
    if value.lower().startswith("api://"):
        raise SettingsError("API_AUDIENCE must be the application (client) id of the API's app registration, a "
                            f"GUID (v2 access tokens carry it as aud), not its application ID URI {value!r}")
    return _guid("API_AUDIENCE", value)


def _guid_list(name: str, value: str) -> frozenset[str]:
    ids = frozenset(_guid(name, item.strip()) for item in value.split(",") if item.strip())
    if not ids:
        raise SettingsError(f"{name} must list at least one application (client) id")
    return ids


@dataclass(frozen=True)
class StorageConnection:
    """Where the service's tables and queues live: a connection string, or service URIs for
    identity-based access (the Functions convention `<name>__tableServiceUri`)."""

    connection_string: str | None = field(default=None, repr=False)
    table_service_uri: str | None = None
    queue_service_uri: str | None = None


@dataclass(frozen=True)
class Settings:
    public_base_url: str
    allowed_return_origins: frozenset[str]
    app_client_id: str
    app_credential_type: str
    app_secret_name: str
    app_certificate_name: str
    key_vault_url: str
    storage: StorageConnection
    # Callers (README, "Security model"): tokens of the home tenant, for this API, of these apps.
    home_tenant_id: str
    api_audience: str
    allowed_caller_app_ids: frozenset[str]
    authority_host: str = PUBLIC_AUTHORITY_HOST
    graph_base_url: str = PUBLIC_GRAPH_BASE_URL
    graph_resource: str = PUBLIC_GRAPH_RESOURCE
    table_prefix: str = "tenkc"
    jobs_queue: str = "tenkc-jobs"
    token_refresh_schedule: str = "0 0 */6 * * *"  # noqa: S105 (a schedule, not a password)
    booking_reconcile_schedule: str = "0 */2 * * * *"
    http_timeout_seconds: int = 10
    # How long after the client gave up Graph may still act on a write (Microsoft documents no
    # bound): every lease and key hold covers a write's timeout plus this.
    graph_write_margin_seconds: int = 60
    refresh_jobs_per_second: int = 25
    # Every upcoming booking is re-read at least this often (sync/reconcile.py).
    reconcile_hours: float = 6.0
    # Webhooks (sync/webhooks.py): where every change is POSTed (none: no webhooks), and the Key
    # Vault secret whose enabled versions sign them.
    webhook_url: str | None = None
    webhook_secret_name: str = "webhook-signing-secret"  # noqa: S105 (a secret's name)
    # A booking row (and its index rows) is deleted this many days after its meeting ended
    # (booking/retention.py); at least 30, so an idempotent replay (keys live 30 days) finds it.
    booking_retention_days: int = 90
    log_level: str = "INFO"
    version: str = "0.1.0"

    @property
    def authority_is_microsoft(self) -> bool:
        """Instance discovery (a call to Microsoft) only makes sense for Microsoft's own hosts."""
        return (urlsplit(self.authority_host).hostname or "") in MICROSOFT_AUTHORITY_HOSTS

    @property
    def key_vault_is_azure(self) -> bool:
        host = urlsplit(self.key_vault_url).hostname or ""
        return host.endswith(KEY_VAULT_SUFFIXES)

    @property
    def consent_callback_url(self) -> str:
        return f"{self.public_base_url}/api/consent/callback"

    @property
    def home_openid_configuration_url(self) -> str:
        """The home tenant's OpenID configuration: its `issuer` and `jwks_uri` are what callers'
        tokens are checked against."""
        return f"{self.authority_host}/{self.home_tenant_id}/v2.0/.well-known/openid-configuration"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        def get(name: str, default: str | None = None) -> str:
            value = (env.get(name) or "").strip()
            if value:
                return value
            if default is None:
                raise SettingsError(f"setting {name} is required (see README, 'Settings')")
            return default

        origins = frozenset(
            _origin("ALLOWED_RETURN_ORIGINS", item.strip())
            for item in get("ALLOWED_RETURN_ORIGINS").split(",")
            if item.strip()
        )
        if not origins:
            raise SettingsError("ALLOWED_RETURN_ORIGINS must list at least one origin")

        credential_type = get("APP_CREDENTIAL_TYPE", "secret").lower()
        if credential_type not in CREDENTIAL_TYPES:
            raise SettingsError(f"APP_CREDENTIAL_TYPE must be one of {', '.join(CREDENTIAL_TYPES)}")

        level = get("LOG_LEVEL", "INFO").upper()
        if level not in LOG_LEVELS:
            raise SettingsError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}")

        prefix = get("STORAGE_TABLE_PREFIX", "tenkc")
        if not (prefix.isascii() and prefix.isalnum() and prefix[0].isalpha() and len(prefix) <= 40):
            raise SettingsError("STORAGE_TABLE_PREFIX must be 1-40 letters and digits, starting with a letter")

        queue = get("JOBS_QUEUE_NAME", "tenkc-jobs")
        if not (3 <= len(queue) <= 57 and all(c.islower() or c.isdigit() or c == "-" for c in queue)):
            # 63 is Azure's limit; the host adds "-poison" for the poison queue.
            raise SettingsError("JOBS_QUEUE_NAME must be 3-57 of a-z 0-9 -")

        connection = get("SERVICE_STORAGE", "")
        table_uri = get("SERVICE_STORAGE__tableServiceUri", "")
        queue_uri = get("SERVICE_STORAGE__queueServiceUri", "")
        if not connection and not (table_uri and queue_uri):
            raise SettingsError(
                "setting SERVICE_STORAGE (a connection string) or both SERVICE_STORAGE__tableServiceUri "
                "and SERVICE_STORAGE__queueServiceUri (identity-based) is required"
            )
        storage = StorageConnection(
            connection_string=connection or None,
            table_service_uri=_url("SERVICE_STORAGE__tableServiceUri", table_uri, https_only=True)
            if table_uri and not connection
            else None,
            queue_service_uri=_url("SERVICE_STORAGE__queueServiceUri", queue_uri, https_only=True)
            if queue_uri and not connection
            else None,
        )

        return cls(
            public_base_url=_url("PUBLIC_BASE_URL", get("PUBLIC_BASE_URL"), https_only=False),
            allowed_return_origins=origins,
            app_client_id=_guid("APP_CLIENT_ID", get("APP_CLIENT_ID")),
            app_credential_type=credential_type,
            app_secret_name=_secret_name("APP_SECRET_NAME", get("APP_SECRET_NAME", "app-client-secret")),
            app_certificate_name=_secret_name(
                "APP_CERTIFICATE_NAME", get("APP_CERTIFICATE_NAME", "app-client-certificate")
            ),
            key_vault_url=_url("KEY_VAULT_URL", get("KEY_VAULT_URL"), https_only=True),
            storage=storage,
            home_tenant_id=_guid("HOME_TENANT_ID", get("HOME_TENANT_ID")),
            api_audience=_api_audience(get("API_AUDIENCE")),
            allowed_caller_app_ids=_guid_list("ALLOWED_CALLER_APP_IDS", get("ALLOWED_CALLER_APP_IDS")),
            authority_host=_url("IDENTITY_AUTHORITY_HOST", get("IDENTITY_AUTHORITY_HOST", PUBLIC_AUTHORITY_HOST),
                                https_only=True),
            graph_base_url=_url("GRAPH_BASE_URL", get("GRAPH_BASE_URL", PUBLIC_GRAPH_BASE_URL), https_only=True),
            graph_resource=_url("GRAPH_RESOURCE", get("GRAPH_RESOURCE", PUBLIC_GRAPH_RESOURCE), https_only=True),
            table_prefix=prefix,
            jobs_queue=queue,
            token_refresh_schedule=_ncrontab("TOKEN_REFRESH_SCHEDULE", get("TOKEN_REFRESH_SCHEDULE", "0 0 */6 * * *")),
            booking_reconcile_schedule=_ncrontab("BOOKING_RECONCILE_SCHEDULE",
                                                 get("BOOKING_RECONCILE_SCHEDULE", "0 */2 * * * *")),
            http_timeout_seconds=_int("HTTP_TIMEOUT_SECONDS", get("HTTP_TIMEOUT_SECONDS", "10"), 1, 120),
            graph_write_margin_seconds=_int("GRAPH_WRITE_MARGIN_SECONDS", get("GRAPH_WRITE_MARGIN_SECONDS", "60"),
                                            1, 600),
            refresh_jobs_per_second=_int("REFRESH_JOBS_PER_SECOND", get("REFRESH_JOBS_PER_SECOND", "25"), 1, 28),
            reconcile_hours=_hours("RECONCILE_HOURS", get("RECONCILE_HOURS", "6")),
            webhook_url=_url("WEBHOOK_URL", webhook, https_only=False) if (webhook := get("WEBHOOK_URL", "")) else None,
            webhook_secret_name=_secret_name("WEBHOOK_SECRET_NAME",
                                             get("WEBHOOK_SECRET_NAME", "webhook-signing-secret")),
            booking_retention_days=_int("BOOKING_RETENTION_DAYS", get("BOOKING_RETENTION_DAYS", "90"), 30, 3650),
            log_level=level,
            version=get("APP_VERSION", "0.1.0"),
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read from the environment once."""
    return Settings.from_env(os.environ)
