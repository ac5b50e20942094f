"""Azure Key Vault secrets (data plane), as the REST API and azure-keyvault-secrets 4.12 use it.

Routes (all take ``?api-version=``; the SDK sends 2026-04-01, a version name, not a date; older clients 7.x):
``PUT /secrets/{name}`` (set: a new 32-hex version each time), ``GET /secrets/{name}[/{version}]``
(``/secrets/{name}/`` is the latest, as the SDK asks for it), ``PATCH /secrets/{name}/{version}``,
``GET /secrets``, ``GET /secrets/{name}/versions``, ``DELETE /secrets/{name}`` (soft delete),
``GET /deletedsecrets[/{name}]``, ``DELETE /deletedsecrets/{name}`` (purge),
``POST /deletedsecrets/{name}/recover``.

Authentication is Key Vault's challenge protocol: without a bearer token the answer is 401 with
``WWW-Authenticate: Bearer authorization="{base}/{homeTenantId}", resource="https://vault.azure.net"``
(the SDK first sends each new vault a bodiless, token-less copy of its request). A token must be
a sandbox access token for ``https://vault.azure.net`` issued in the home tenant, to the managed
identity or one of the home tenant's apps.

Shapes follow the REST spec's examples (Azure/azure-rest-api-specs, keyvault data-plane 7.5
examples): bundles carry ``id``, ``attributes`` (epoch seconds, ``recoveryLevel``), ``tags``,
``contentType``; deleted bundles add ``recoveryId``, ``deletedDate``, ``scheduledPurgeDate`` and,
like update and recover answers, no ``value``. Errors: ``{"error": {"code", "message"[, "innererror"]}}``.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import secrets as pysecrets
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from .identity import InvalidToken, verify_access_token
from .seed import SECRET_NAME_RE
from .web import HttpError, Request, Response, Route

if TYPE_CHECKING:
    from .server import Sandbox

VAULT_RESOURCE = "https://vault.azure.net"
VAULT_AUDIENCES = (VAULT_RESOURCE, VAULT_RESOURCE + "/")
RECOVERABLE_DAYS = 90
RECOVERY_LEVEL = "Recoverable+Purgeable"
MAX_VALUE_BYTES = 25 * 1024  # "Secret value: at most 25k bytes" (graph-facts.md section 8)
MAX_CONTENT_TYPE = 255
MAX_TAGS = 15
MAX_TAG_LENGTH = 512
PAGE_SIZE_MAX = 25
API_VERSION_RE = re.compile(r"7\.[0-6](-preview(\.\d+)?)?|20\d\d-\d\d-\d\d(-preview)?")


class VaultError(Exception):
    def __init__(self, status: int, code: str, message: str, inner: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.inner = status, code, message, inner


def _not_found(name: str, version: str | None = None) -> VaultError:
    ident = f"{name}/{version}" if version else name
    return VaultError(404, "SecretNotFound",
                      f"A secret with (name/id) {ident} was not found in this key vault. If you recently "
                      "deleted this secret you may be able to recover it using the correct recovery command. "
                      "For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182")


def _deleted_not_found(name: str) -> VaultError:
    return VaultError(404, "SecretNotFound", f"Deleted Secret not found: {name}")


class VaultStore:
    """In-memory secrets with versions and soft delete, persisted to a JSON file (0600)."""

    def __init__(self, path: Path | None):
        self.path = path
        self._lock = threading.RLock()
        self._secrets: dict[str, dict[str, Any]] = {}   # lower name -> {"name", "versions": [...]}
        self._deleted: dict[str, dict[str, Any]] = {}   # lower name -> {..., "deletedDate", "scheduledPurgeDate"}
        if path is not None and path.exists():
            data = json.loads(path.read_text(encoding="utf-8"))
            self._secrets = data.get("secrets", {})
            self._deleted = data.get("deleted", {})

    # -- persistence -------------------------------------------------------------------------

    def _save(self) -> None:
        if self.path is None:
            return
        data = json.dumps({"secrets": self._secrets, "deleted": self._deleted}, separators=(",", ":"))
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    # -- seeding -------------------------------------------------------------------------------

    def clear(self) -> None:
        with self._lock:
            self._secrets.clear()
            self._deleted.clear()
            self._save()

    def ensure_secrets(self, secrets: dict[str, str]) -> None:
        """Set each secret whose name is neither present nor soft-deleted."""
        with self._lock:
            for name, value in secrets.items():
                if name.lower() not in self._secrets and name.lower() not in self._deleted:
                    self.set(name, value)

    # -- operations ----------------------------------------------------------------------------

    def set(self, name: str, value: str, content_type: str | None = None, tags: dict[str, str] | None = None,
            attributes: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        with self._lock:
            key = name.lower()
            if key in self._deleted:
                raise VaultError(409, "Conflict",
                                 f"Secret {name} is currently in a deleted but recoverable state, and its name "
                                 "cannot be reused; in this state, the secret can only be recovered or purged.",
                                 "ObjectIsDeletedButRecoverable")
            now = int(time.time())
            attributes = attributes or {}
            version = {"version": pysecrets.token_hex(16), "value": value, "contentType": content_type,
                       "tags": tags, "enabled": attributes.get("enabled", True) is not False,
                       "nbf": attributes.get("nbf"), "exp": attributes.get("exp"), "created": now, "updated": now}
            entry = self._secrets.setdefault(key, {"name": name, "versions": []})
            entry["versions"].append(version)
            self._save()
            return entry["name"], copy.deepcopy(version)

    def _version(self, name: str, version: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
        entry = self._secrets.get(name.lower())
        if entry is None:
            raise _not_found(name)
        if not version:
            return entry, entry["versions"][-1]
        for candidate in entry["versions"]:
            if candidate["version"] == version.lower():
                return entry, candidate
        raise _not_found(name, version)

    def get(self, name: str, version: str | None = None) -> tuple[str, dict[str, Any]]:
        with self._lock:
            entry, found = self._version(name, version)
            return entry["name"], copy.deepcopy(found)

    def update(self, name: str, version: str | None, patch: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        with self._lock:
            entry, found = self._version(name, version)
            if "contentType" in patch:
                found["contentType"] = patch["contentType"]
            if "tags" in patch:
                found["tags"] = patch["tags"]
            for attr in ("enabled", "nbf", "exp"):
                if attr in patch.get("attributes", {}):
                    found[attr] = patch["attributes"][attr]
            found["updated"] = int(time.time())
            self._save()
            return entry["name"], copy.deepcopy(found)

    def list_latest(self) -> list[tuple[str, dict[str, Any]]]:
        with self._lock:
            return [(e["name"], copy.deepcopy(e["versions"][-1])) for _, e in sorted(self._secrets.items())]

    def list_versions(self, name: str) -> list[tuple[str, dict[str, Any]]]:
        with self._lock:
            entry = self._secrets.get(name.lower())
            if entry is None:
                raise _not_found(name)
            return [(entry["name"], copy.deepcopy(v)) for v in entry["versions"]]

    def delete(self, name: str) -> dict[str, Any]:
        with self._lock:
            entry = self._secrets.pop(name.lower(), None)
            if entry is None:
                raise _not_found(name)
            now = int(time.time())
            entry["deletedDate"] = now
            entry["scheduledPurgeDate"] = now + RECOVERABLE_DAYS * 86400
            self._deleted[name.lower()] = entry
            self._save()
            return copy.deepcopy(entry)

    def get_deleted(self, name: str) -> dict[str, Any]:
        with self._lock:
            entry = self._deleted.get(name.lower())
            if entry is None:
                raise _deleted_not_found(name)
            return copy.deepcopy(entry)

    def list_deleted(self) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(e) for _, e in sorted(self._deleted.items())]

    def purge(self, name: str) -> None:
        with self._lock:
            if self._deleted.pop(name.lower(), None) is None:
                raise _deleted_not_found(name)
            self._save()

    def recover(self, name: str) -> tuple[str, dict[str, Any]]:
        with self._lock:
            entry = self._deleted.pop(name.lower(), None)
            if entry is None:
                raise _deleted_not_found(name)
            entry.pop("deletedDate", None)
            entry.pop("scheduledPurgeDate", None)
            self._secrets[name.lower()] = entry
            self._save()
            return entry["name"], copy.deepcopy(entry["versions"][-1])


# -- answers -------------------------------------------------------------------------------------

def _error(err: VaultError, headers: list[tuple[str, str]] | None = None) -> Response:
    body: dict[str, Any] = {"code": err.code, "message": err.message}
    if err.inner:
        body["innererror"] = {"code": err.inner}
    return Response.json(err.status, {"error": body}, headers or [])


def _attributes(version: dict[str, Any]) -> dict[str, Any]:
    attrs: dict[str, Any] = {"enabled": version["enabled"]}
    for key in ("nbf", "exp"):
        if version.get(key) is not None:
            attrs[key] = version[key]
    attrs.update(created=version["created"], updated=version["updated"],
                 recoverableDays=RECOVERABLE_DAYS, recoveryLevel=RECOVERY_LEVEL)
    return attrs


def _bundle(base: str, name: str, version: dict[str, Any], *, with_value: bool,
            versioned_id: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if with_value:
        out["value"] = version["value"]
    out["id"] = f"{base}/secrets/{name}/{version['version']}" if versioned_id else f"{base}/secrets/{name}"
    if version.get("contentType") is not None:
        out["contentType"] = version["contentType"]
    out["attributes"] = _attributes(version)
    if version.get("tags"):
        out["tags"] = version["tags"]
    return out


def _deleted_bundle(base: str, entry: dict[str, Any], *, item: bool) -> dict[str, Any]:
    latest = entry["versions"][-1]
    return {"recoveryId": f"{base}/deletedsecrets/{entry['name']}", "deletedDate": entry["deletedDate"],
            "scheduledPurgeDate": entry["scheduledPurgeDate"],
            **_bundle(base, entry["name"], latest, with_value=False, versioned_id=not item)}


def _page(req: Request, items: list[dict[str, Any]]) -> Response:
    maxresults_text = req.arg("maxresults")
    try:
        size = int(maxresults_text) if maxresults_text else PAGE_SIZE_MAX
    except ValueError:
        size = 0
    if not 1 <= size <= PAGE_SIZE_MAX:
        raise VaultError(400, "BadParameter", f"maxresults must be between 1 and {PAGE_SIZE_MAX}")
    skiptoken = req.arg("$skiptoken")
    offset = 0
    if skiptoken:
        try:
            offset = int(base64.urlsafe_b64decode(skiptoken + "=" * (-len(skiptoken) % 4)).decode())
        except ValueError:
            raise VaultError(400, "BadParameter", "The skiptoken is not valid.") from None
    page = items[offset:offset + size]
    next_link = None
    if offset + size < len(items):
        token = base64.urlsafe_b64encode(str(offset + size).encode()).decode().rstrip("=")
        path = req.path.rstrip("/")
        next_link = (f"{req.base_url}{path}?api-version={req.arg('api-version')}"
                     f"&$skiptoken={token}&maxresults={size}")
    return Response.json(200, {"value": page, "nextLink": next_link})


# -- authentication ------------------------------------------------------------------------------

def _challenge_headers(sandbox: Sandbox) -> list[tuple[str, str]]:
    return [("WWW-Authenticate",
             f'Bearer authorization="{sandbox.base_url}/{sandbox.state.home_tenant_id}", '
             f'resource="{VAULT_RESOURCE}"')]


def _authenticate(req: Request) -> dict[str, Any]:
    sandbox = req.sandbox
    auth = req.header("authorization") or ""
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HttpError(_error(VaultError(401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token."),
                               _challenge_headers(sandbox)))
    try:
        claims = verify_access_token(sandbox, token.strip(), audiences=VAULT_AUDIENCES)
    except InvalidToken as exc:
        raise HttpError(_error(VaultError(401, "Unauthorized", exc.vault_message()),
                               _challenge_headers(sandbox))) from None
    home = sandbox.state.home_tenant_id
    if claims.get("tid") != home:
        message = (f"AKV10032: Invalid issuer. Expected one of https://sts.windows.net/{home}/, "
                   f"found {claims.get('iss')}.")
        raise HttpError(_error(VaultError(401, "Unauthorized", message), _challenge_headers(sandbox)))
    appid = claims.get("appid")
    if appid != sandbox.state.managed_identity["clientId"] and appid not in sandbox.state.apps:
        raise HttpError(_error(VaultError(
            403, "Forbidden",
            f"Caller is not authorized to perform action on resource. Caller: appid={appid};oid={claims.get('oid')}",
            "ForbiddenByRbac")))
    return claims


def _guard(req: Request) -> None:
    """Authentication first (the SDK's bodiless challenge request must get its 401), then api-version."""
    _authenticate(req)
    version = req.arg("api-version")
    if not version:
        raise VaultError(400, "BadParameter", "The 'api-version' query parameter is required.")
    if not API_VERSION_RE.fullmatch(version):
        raise VaultError(400, "BadParameter", f"The specified version ({version}) is not recognized.")


def _name(req: Request) -> str:
    assert req.match is not None  # noqa: S101 - routes always match with a name group
    name = unquote(req.match.group("name"))
    if not SECRET_NAME_RE.fullmatch(name):
        raise VaultError(400, "BadParameter", f"The request URI contains an invalid name: {name}")
    return name


def _version_param(req: Request) -> str | None:
    assert req.match is not None  # noqa: S101
    version = req.match.groupdict().get("version")
    return unquote(version) if version else None


def _body(req: Request) -> dict[str, Any]:
    def bad(message: str) -> Response:
        return _error(VaultError(400, "BadParameter", message))

    body = req.json(bad)
    if not isinstance(body, dict):
        raise VaultError(400, "BadParameter", "The request body must be a JSON object.")
    return body


def _validate_properties(body: dict[str, Any]) -> None:
    content_type = body.get("contentType")
    if content_type is not None and (not isinstance(content_type, str) or len(content_type) > MAX_CONTENT_TYPE):
        raise VaultError(400, "BadParameter", f"contentType must be a string of at most {MAX_CONTENT_TYPE} characters.")
    tags = body.get("tags")
    if tags is not None:
        if not isinstance(tags, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
            raise VaultError(400, "BadParameter", "tags must be an object of string values.")
        if len(tags) > MAX_TAGS or any(len(k) > MAX_TAG_LENGTH or len(v) > MAX_TAG_LENGTH for k, v in tags.items()):
            raise VaultError(400, "BadParameter",
                             f"At most {MAX_TAGS} tags, names and values of at most {MAX_TAG_LENGTH} characters.")
    attributes = body.get("attributes")
    if attributes is not None:
        if not isinstance(attributes, dict):
            raise VaultError(400, "BadParameter", "attributes must be an object.")
        if "enabled" in attributes and not isinstance(attributes["enabled"], bool):
            raise VaultError(400, "BadParameter", "attributes.enabled must be true or false.")
        for key in ("nbf", "exp"):
            if attributes.get(key) is not None and not isinstance(attributes[key], int):
                raise VaultError(400, "BadParameter", f"attributes.{key} must be a Unix time in seconds.")


# -- handlers ------------------------------------------------------------------------------------

def _handler(fn: Any) -> Any:
    """Wrap a handler: authenticate, then map ``VaultError`` to Key Vault's error body."""

    def wrapped(req: Request) -> Response:
        try:
            _guard(req)
            response = fn(req)
        except VaultError as err:
            response = _error(err)
        except HttpError as err:
            response = err.response
        response.headers.append(("x-ms-request-id", req.request_id))
        return response

    wrapped.__name__ = fn.__name__
    wrapped.__doc__ = fn.__doc__
    return wrapped


@_handler
def set_secret(req: Request) -> Response:
    name = _name(req)
    body = _body(req)
    value = body.get("value")
    if not isinstance(value, str):
        raise VaultError(400, "BadParameter", "The property 'value' is required and must be a string.")
    if len(value.encode("utf-8")) > MAX_VALUE_BYTES:
        raise VaultError(400, "BadParameter", f"The secret value exceeds the maximum size of {MAX_VALUE_BYTES} bytes.")
    _validate_properties(body)
    stored_name, version = req.sandbox.vault.set(name, value, body.get("contentType"), body.get("tags"),
                                                 body.get("attributes"))
    return Response.json(200, _bundle(req.base_url, stored_name, version, with_value=True))


@_handler
def get_secret(req: Request) -> Response:
    stored_name, version = req.sandbox.vault.get(_name(req), _version_param(req))
    if not version["enabled"]:
        raise VaultError(403, "Forbidden", "Operation get is not allowed on a disabled secret.", "SecretDisabled")
    return Response.json(200, _bundle(req.base_url, stored_name, version, with_value=True))


@_handler
def update_secret(req: Request) -> Response:
    name = _name(req)
    body = _body(req)
    _validate_properties(body)
    stored_name, version = req.sandbox.vault.update(name, _version_param(req), body)
    return Response.json(200, _bundle(req.base_url, stored_name, version, with_value=False))


@_handler
def list_secrets(req: Request) -> Response:
    items = [_bundle(req.base_url, n, v, with_value=False, versioned_id=False)
             for n, v in req.sandbox.vault.list_latest()]
    return _page(req, items)


@_handler
def list_secret_versions(req: Request) -> Response:
    items = [_bundle(req.base_url, n, v, with_value=False) for n, v in req.sandbox.vault.list_versions(_name(req))]
    return _page(req, items)


@_handler
def delete_secret(req: Request) -> Response:
    entry = req.sandbox.vault.delete(_name(req))
    return Response.json(200, _deleted_bundle(req.base_url, entry, item=False))


@_handler
def get_deleted_secret(req: Request) -> Response:
    entry = req.sandbox.vault.get_deleted(_name(req))
    return Response.json(200, _deleted_bundle(req.base_url, entry, item=False))


@_handler
def list_deleted_secrets(req: Request) -> Response:
    items = [_deleted_bundle(req.base_url, e, item=True) for e in req.sandbox.vault.list_deleted()]
    return _page(req, items)


@_handler
def purge_deleted_secret(req: Request) -> Response:
    req.sandbox.vault.purge(_name(req))
    return Response.empty(204)


@_handler
def recover_deleted_secret(req: Request) -> Response:
    stored_name, version = req.sandbox.vault.recover(_name(req))
    return Response.json(200, _bundle(req.base_url, stored_name, version, with_value=False))


_NAME = r"(?P<name>[^/]+)"
ROUTES: list[Route] = [
    ("GET", r"/secrets/?", list_secrets),
    ("GET", rf"/secrets/{_NAME}/versions/?", list_secret_versions),
    ("PUT", rf"/secrets/{_NAME}/?", set_secret),
    ("DELETE", rf"/secrets/{_NAME}/?", delete_secret),
    ("GET", rf"/secrets/{_NAME}(?:/(?P<version>[^/]*))?", get_secret),
    ("PATCH", rf"/secrets/{_NAME}(?:/(?P<version>[^/]*))?", update_secret),
    ("GET", r"/deletedsecrets/?", list_deleted_secrets),
    ("GET", rf"/deletedsecrets/{_NAME}/?", get_deleted_secret),
    ("DELETE", rf"/deletedsecrets/{_NAME}/?", purge_deleted_secret),
    ("POST", rf"/deletedsecrets/{_NAME}/recover/?", recover_deleted_secret),
]
