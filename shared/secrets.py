"""Key Vault secrets: set / get / disable a version / delete, on azure-keyvault-secrets.

Names never carry personal data (Key Vault may copy names around the world) and are never reused:
soft delete keeps a deleted name unusable until it is purged, so every new connection gets a
fresh name, and a token refresh writes a new version of the same name. The secrets of a tenant
are found through the Table index (`shared.storage.SecretRef`), never by listing the vault.
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from shared.errors import AlreadyExists, SecretNotFound, SecretStoreUnavailable, SecretUnavailable

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")


def refresh_token_secret_name(tenant_id: str, user_id: str, connection_id: str | None = None) -> str:
    """`rt-<digest of tenant and user>-<connection id>`: stable per person, fresh per connection."""
    digest = hashlib.sha256(f"{tenant_id.lower()}|{user_id.lower()}".encode()).hexdigest()[:32]
    return f"rt-{digest}-{connection_id or uuid.uuid4().hex}"


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError("a Key Vault secret name is 1-127 characters of 0-9 a-z A-Z -")
    return name


class SecretStore:
    """One vault. Construction does no I/O; the SDK client is built on first use."""

    def __init__(self, vault_url: str, credential: Any, *, verify_challenge_resource: bool = True,
                 **client_kwargs: Any) -> None:
        self._vault_url = vault_url
        self._credential = credential
        self._verify = verify_challenge_resource
        self._client_kwargs = client_kwargs
        self._sdk: Any = None

    @property
    def _client(self) -> Any:
        if self._sdk is None:
            from azure.keyvault.secrets import SecretClient

            self._sdk = SecretClient(
                vault_url=self._vault_url, credential=self._credential,
                verify_challenge_resource=self._verify, **self._client_kwargs,
            )
        return self._sdk

    def set(self, name: str, value: str, *, content_type: str | None = None,
            tags: dict[str, str] | None = None) -> str:
        """Store `value` as a new version of `name`; returns the version id."""
        from azure.core.exceptions import ResourceExistsError

        check_name(name)
        try:
            secret = self._client.set_secret(name, value, content_type=content_type, tags=tags)
        except ResourceExistsError:
            # Only a soft-deleted name answers 409 here: names are never meant to be reused.
            raise AlreadyExists(f"secret name {name} is deleted but not purged; use a new name") from None
        except Exception as error:
            raise _translate(error, name) from None
        return secret.properties.version

    def get(self, name: str, version: str | None = None) -> str:
        check_name(name)
        try:
            return self._client.get_secret(name, version).value
        except Exception as error:
            raise _translate(error, name) from None

    def enabled_values(self, name: str, *, limit: int = 2) -> list[str]:
        """The values of the newest `limit` enabled versions of `name`, newest first (a key in
        rotation: the new one and the one before it while that is still enabled). Newest by
        `created`, which Key Vault keeps in whole seconds."""
        check_name(name)
        try:
            versions = [p for p in self._client.list_properties_of_secret_versions(name) if p.enabled]
            versions.sort(key=lambda p: p.created_on or datetime.min.replace(tzinfo=UTC), reverse=True)
            return [self._client.get_secret(name, p.version).value for p in versions[:limit]]
        except Exception as error:
            raise _translate(error, name) from None

    def disable(self, name: str, version: str) -> None:
        """Disable one version (a superseded token); a missing one is fine."""
        check_name(name)
        try:
            self._client.update_secret_properties(name, version, enabled=False)
        except Exception as error:
            translated = _translate(error, name)
            if not isinstance(translated, SecretNotFound):
                raise translated from None

    def delete(self, name: str) -> None:
        """Soft-delete every version of `name`; a name already gone is fine. Does not wait for
        the deletion to finish (the name is never used again)."""
        check_name(name)
        try:
            self._client.begin_delete_secret(name)
        except Exception as error:
            translated = _translate(error, name)
            if not isinstance(translated, SecretNotFound):
                raise translated from None


def _translate(error: Exception, name: str) -> Exception:
    """The SDK's exceptions, once, as ours. Messages name the secret, never its value."""
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ResourceNotFoundError,
        ServiceRequestError,
        ServiceResponseError,
    )

    if isinstance(error, ResourceNotFoundError):
        return SecretNotFound(f"secret {name} (or that version) does not exist")
    if isinstance(error, HttpResponseError) and error.status_code == 403:
        inner = getattr(getattr(error, "error", None), "innererror", None) or {}
        if "SecretDisabled" in str(inner) or "disabled" in str(error.message or "").lower():
            return SecretUnavailable(f"secret {name}: that version is disabled")
        return SecretStoreUnavailable(f"Key Vault refused access to secret {name}")
    if isinstance(error, ClientAuthenticationError | ServiceRequestError | ServiceResponseError):
        return SecretStoreUnavailable(f"Key Vault unavailable for secret {name}: {type(error).__name__}")
    if isinstance(error, HttpResponseError) and (error.status_code or 0) >= 500:
        return SecretStoreUnavailable(f"Key Vault failed for secret {name} ({error.status_code})")
    if isinstance(error, HttpResponseError) and error.status_code == 429:
        return SecretStoreUnavailable(f"Key Vault throttled the request for secret {name}")
    return error
