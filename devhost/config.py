"""Settings the way the Functions host reads them: local.settings.json, host.json, `%NAME%` expressions."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d+):(\d+)(?::(\d+)(?:\.(\d+))?)?$")
_SETTING = re.compile(r"%([^%]+)%")


def load_local_settings(path: str | Path) -> dict[str, str]:
    """The `Values` of a local.settings.json file (`{}` if the file does not exist)."""
    path = Path(path)
    if not path.exists():
        return {}
    document = json.loads(path.read_text(encoding="utf-8-sig"))
    if document.get("IsEncrypted"):
        raise ValueError(f"{path} is encrypted; devhost reads only unencrypted settings")
    values = document.get("Values") or {}
    return {str(name): value if isinstance(value, str) else json.dumps(value) for name, value in values.items()}


def local_http_port(path: str | Path) -> int | None:
    """`Host.LocalHttpPort` of a local.settings.json file, which Core Tools uses as its default port."""
    path = Path(path)
    if not path.exists():
        return None
    port = (json.loads(path.read_text(encoding="utf-8-sig")).get("Host") or {}).get("LocalHttpPort")
    return int(port) if port else None


def apply_settings(values: Mapping[str, str], environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Put settings into the environment unless already set there (the environment wins, as in Core Tools).

    Returns the names it added, so that they can be removed again.
    """
    environ = os.environ if environ is None else environ
    added = [name for name in values if name not in environ]
    for name in added:
        environ[name] = values[name]
    return added


def resolve_setting_expressions(value: str, environ: Mapping[str, str] | None = None) -> str:
    """Replace each `%NAME%` with the app setting NAME, as the host does for binding properties."""
    environ = os.environ if environ is None else environ

    def lookup(found: re.Match[str]) -> str:
        name = found.group(1)
        if name not in environ:
            raise ValueError(f"'%{name}%' does not resolve to a value (no app setting {name!r})")
        return environ[name]

    return _SETTING.sub(lookup, value)


def parse_timespan(value: str | float) -> float:
    """A .NET TimeSpan (`hh:mm:ss`, `d.hh:mm:ss`, `hh:mm:ss.fff`, `hh:mm`, or `d` days) in seconds.

    A number is taken as seconds.
    """
    if isinstance(value, int | float):
        return float(value)
    text = value.strip()
    if text.isdigit():
        return int(text) * 86400.0
    found = _TIMESPAN.match(text)
    if not found:
        raise ValueError(f"{value!r} is not a TimeSpan like '00:00:02'")
    days, hours, minutes, seconds, fraction = found.groups()
    if int(hours) > 23 or int(minutes) > 59 or int(seconds or 0) > 59:
        raise ValueError(f"{value!r} is not a TimeSpan like '00:00:02'")
    total = int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + int(seconds or 0)
    return total + (float(f"0.{fraction}") if fraction else 0.0)


def _get(section: Mapping[str, Any] | None, name: str) -> Any:
    """Case-insensitive look-up: host.json keys are not case-sensitive in the host's configuration."""
    for key, value in (section or {}).items():
        if key.lower() == name.lower():
            return value
    return None


@dataclass(frozen=True)
class QueueOptions:
    """host.json `extensions.queues`, with the host's defaults."""

    batch_size: int = 16
    new_batch_threshold: int = 8
    max_polling_interval: float = 60.0
    visibility_timeout: float = 0.0
    max_dequeue_count: int = 5
    message_encoding: str = "base64"


@dataclass(frozen=True)
class HostConfig:
    route_prefix: str = "api"
    queues: QueueOptions = QueueOptions()

    @classmethod
    def from_json(cls, document: Mapping[str, Any] | None) -> HostConfig:
        extensions = _get(document, "extensions") or {}
        prefix = _get(_get(extensions, "http"), "routePrefix")
        queues = _get(extensions, "queues") or {}
        batch_size = int(_get(queues, "batchSize") or 16)
        if not 1 <= batch_size <= 32:
            raise ValueError("host.json extensions.queues.batchSize must be between 1 and 32")
        threshold = _get(queues, "newBatchThreshold")
        interval = _get(queues, "maxPollingInterval")
        visibility = _get(queues, "visibilityTimeout")
        dequeue = _get(queues, "maxDequeueCount")
        encoding = str(_get(queues, "messageEncoding") or "base64").lower()
        if encoding not in ("base64", "none"):
            raise ValueError("host.json extensions.queues.messageEncoding must be 'base64' or 'none'")
        options = QueueOptions(
            batch_size=batch_size,
            new_batch_threshold=int(threshold) if threshold is not None else batch_size // 2,
            max_polling_interval=parse_timespan(interval) if interval is not None else 60.0,
            visibility_timeout=parse_timespan(visibility) if visibility is not None else 0.0,
            max_dequeue_count=int(dequeue) if dequeue is not None else 5,
            message_encoding=encoding,
        )
        return cls(route_prefix=("api" if prefix is None else str(prefix)).strip("/"), queues=options)

    @classmethod
    def load(cls, path: str | Path) -> HostConfig:
        path = Path(path)
        return cls.from_json(json.loads(path.read_text(encoding="utf-8-sig")) if path.exists() else None)


def storage_connection_string(connection: str | None, environ: Mapping[str, str] | None = None) -> str:
    """The connection string a binding's `connection` names (`AzureWebJobsStorage` when absent).

    Like the host, a name X is looked up as X, then as AzureWebJobsX.
    """
    environ = os.environ if environ is None else environ
    name = connection or "AzureWebJobsStorage"
    for candidate in (name, f"AzureWebJobs{name}"):
        if environ.get(candidate):
            return environ[candidate]
    raise ValueError(f"storage connection setting {name!r} is not set (local.settings.json Values)")
