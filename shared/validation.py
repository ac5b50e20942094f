"""Request validation shared by the routes: ids, e-mails, time zones, times, typed fields.

Every failure is `InvalidRequest` naming the field (`target`), so the caller gets the contract's
400 envelope; nothing here does I/O.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from functools import lru_cache
from typing import Any

from shared.errors import InvalidRequest

_ID = re.compile(r"^[A-Za-z0-9_.@+-]{1,128}$")
# Deliberately plain: one @, a dot in the domain, no spaces or control characters, <= 254 chars.
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")
_OFFSET = re.compile(r"(?:[zZ]|[+-]\d{2}:\d{2})$")


def guid(value: str, target: str) -> str:
    """A GUID in its canonical lower-case form."""
    try:
        parsed = uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        raise InvalidRequest(f"{target} must be a GUID.", target=target) from None
    if len(value) != 36:
        raise InvalidRequest(f"{target} must be a GUID (8-4-4-4-12 hex digits).", target=target)
    return str(parsed)


def plain_id(value: Any, target: str) -> str:
    if not isinstance(value, str) or not _ID.match(value):
        raise InvalidRequest(f"{target} must be 1-128 characters of A-Z a-z 0-9 _ . @ + -.", target=target)
    return value


def email(value: Any, target: str) -> str:
    """An e-mail address, lower-cased (addresses are compared case-insensitively)."""
    if not isinstance(value, str) or len(value) > 254 or not _EMAIL.match(value):
        raise InvalidRequest(f"{target} must be an e-mail address.", target=target)
    return value.lower()


_OBJECT_ID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def person(value: Any, target: str) -> str:
    """A person as the contract names one: Entra object id, user principal name or e-mail address
    (a UPN has an address's shape), lower-cased (compared case-insensitively)."""
    if isinstance(value, str) and _OBJECT_ID.match(value):
        return value.lower()
    if not isinstance(value, str) or len(value) > 254 or not _EMAIL.match(value):
        raise InvalidRequest(f"{target} must be an Entra object id, user principal name or e-mail address.",
                             target=target)
    return value.lower()


@lru_cache(maxsize=1)
def known_time_zones() -> frozenset[str]:
    """IANA names that CLDR's windowsZones table knows (through tzlocal), plus UTC."""
    from tzlocal.windows_tz import tz_win

    return frozenset(tz_win) | {"UTC"}


def time_zone(value: Any, target: str) -> str:
    if not isinstance(value, str) or value not in known_time_zones():
        raise InvalidRequest(f"{target} must be an IANA time zone name (for example Europe/London) or UTC.",
                             target=target)
    return value


def instant(value: Any, target: str) -> datetime:
    """An RFC 3339 time with an offset; a time without one is refused."""
    if not isinstance(value, str) or "T" not in value.upper() or not _OFFSET.search(value):
        raise InvalidRequest(f"{target} must be an RFC 3339 time with an offset, like 2026-12-01T09:00:00-05:00.",
                             target=target)
    try:
        parsed = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequest(f"{target} is not a valid RFC 3339 time.", target=target) from None
    if parsed.tzinfo is None:  # pragma: no cover - the offset check above rules this out
        raise InvalidRequest(f"{target} needs an offset.", target=target)
    if not 1900 <= parsed.year <= 9000:  # keeps every later +/- days arithmetic far from overflow
        raise InvalidRequest(f"{target} must be between the years 1900 and 9000.", target=target)
    return parsed


def string(body: dict[str, Any], name: str, *, required: bool = False, default: str | None = None,
           max_length: int = 255, min_length: int = 0) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise InvalidRequest(f"{name} is required.", target=name)
        return default
    if not isinstance(value, str):
        raise InvalidRequest(f"{name} must be a string.", target=name)
    if not min_length <= len(value) <= max_length:
        raise InvalidRequest(f"{name} must be {min_length}-{max_length} characters.", target=name)
    if any(ord(c) < 0x20 and c not in "\t\r\n" for c in value):
        raise InvalidRequest(f"{name} must not contain control characters.", target=name)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (\ud800-\udfff): not a Unicode character
        raise InvalidRequest(f"{name} must be valid Unicode text.", target=name) from None
    return value


def boolean(body: dict[str, Any], name: str, default: bool) -> bool:
    value = body.get(name, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise InvalidRequest(f"{name} must be true or false.", target=name)
    return value


def integer(body: dict[str, Any], name: str, *, default: int | None, low: int, high: int) -> int:
    value = body.get(name, default)
    if value is None:
        raise InvalidRequest(f"{name} is required.", target=name)
    # Booleans are ints in Python and JSON numbers with a fraction are not whole: refuse both.
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"{name} must be a whole number.", target=name)
    if not low <= value <= high:
        raise InvalidRequest(f"{name} must be between {low} and {high}.", target=name)
    return value


def only_fields(body: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise InvalidRequest(f"Unknown field {unknown[0]!r}.", target=unknown[0])


def query_int(value: str | None, target: str, *, default: int, minimum: int, maximum: int) -> int:
    """A whole number from the query string (digits only), within [minimum, maximum]."""
    if value is None:
        return default
    if not value.isascii() or not value.isdigit() or len(value) > 9:
        raise InvalidRequest(f"{target} must be a whole number between {minimum} and {maximum}.", target=target)
    number = int(value)
    if not minimum <= number <= maximum:
        raise InvalidRequest(f"{target} must be between {minimum} and {maximum}.", target=target)
    return number
