"""Time zones as Graph takes and gives them, and the ``Prefer`` header.

- A ``dateTimeTimeZone``'s ``timeZone`` and ``Prefer: outlook.timezone`` accept a Windows zone
  name ("Pacific Standard Time"), an IANA name ("America/Los_Angeles") or "UTC"
  (https://learn.microsoft.com/en-us/graph/api/resources/datetimetimezone). Windows <-> IANA is
  CLDR's windowsZones table as ``tzlocal.windows_tz`` ships it. Names compare case-insensitively.
- Answers carry ``dateTime`` as local time with seven fractional digits and no offset
  ("2019-04-18T16:00:00.0000000"), as Graph's examples do, in the ``Prefer: outlook.timezone``
  zone (UTC without the header).
- ``workingHours.timeZone.name`` is the Windows name of the user's IANA zone.

Resolved zones are cached: nothing here parses zone data twice.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from tzlocal.windows_tz import tz_win, win_tz

_WINDOWS_BY_LOWER = {name.lower(): iana for name, iana in win_tz.items()}
_UTC_NAMES = {"utc", "etc/utc", "etc/gmt", "gmt", "z", "coordinated universal time", "utc+00:00"}


class UnknownTimeZone(ValueError):
    def __init__(self, name: object):
        super().__init__(f"unknown time zone {name!r}")
        self.name = name


@lru_cache(maxsize=1)
def _iana_by_lower() -> dict[str, str]:
    return {name.lower(): name for name in available_timezones()}


@lru_cache(maxsize=1024)
def resolve_zone(name: str) -> tzinfo:
    """The tzinfo for a Windows name, an IANA name or UTC; raises ``UnknownTimeZone``."""
    if not isinstance(name, str) or not name.strip():
        raise UnknownTimeZone(name)
    key = name.strip().lower()
    if key in _UTC_NAMES:
        return UTC
    iana = _WINDOWS_BY_LOWER.get(key)
    if iana is None:
        iana = _iana_by_lower().get(key)
    if iana is None:
        raise UnknownTimeZone(name)
    try:
        return ZoneInfo(iana)
    except (ZoneInfoNotFoundError, ValueError):
        raise UnknownTimeZone(name) from None


def is_known_zone(name: object) -> bool:
    try:
        resolve_zone(name)  # type: ignore[arg-type]
    except UnknownTimeZone:
        return False
    return True


@lru_cache(maxsize=1024)
def windows_name(iana: str) -> str:
    """The Windows name of an IANA zone ("Europe/Paris" -> "Romance Standard Time")."""
    if iana.lower() in _UTC_NAMES:
        return "UTC"
    name = tz_win.get(iana)
    if name is None:
        try:
            key = getattr(ZoneInfo(iana), "key", iana)
        except (ZoneInfoNotFoundError, ValueError):
            return iana
        name = tz_win.get(key)
    return name or iana


# -- dateTimeTimeZone ------------------------------------------------------------------------

_DATETIME_RE = re.compile(
    r"(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2})?)(?:\.(\d{1,7}))?(Z|[+-]\d{2}:?\d{2})?", re.IGNORECASE)


class BadDateTime(ValueError):
    pass


def parse_local(text: object, zone: tzinfo) -> datetime:
    """Parse a ``dateTime`` value; a value without offset is local time in ``zone``, read with
    ``fold=0``: a repeated (fall-back) local time is its first occurrence (see ``model``)."""
    if not isinstance(text, str):
        raise BadDateTime(f"{text!r} is not a date-time string")
    match = _DATETIME_RE.fullmatch(text.strip())
    if match is None:
        raise BadDateTime(f"{text!r} is not an ISO 8601 date-time")
    date_part, time_part, fraction, offset = match.groups()
    if time_part.count(":") == 1:
        time_part += ":00"
    micro = (fraction or "").ljust(6, "0")[:6]
    iso = f"{date_part}T{time_part}.{micro}"
    try:
        if offset:
            offset = "+00:00" if offset.upper() == "Z" else offset
            return datetime.fromisoformat(iso + offset)
        naive = datetime.fromisoformat(iso)
    except ValueError as exc:
        raise BadDateTime(str(exc)) from None
    return naive.replace(tzinfo=zone, fold=0)


def format_local(instant: datetime, zone: tzinfo) -> str:
    """``instant`` as Graph writes a ``dateTime``: local time in ``zone``, seven fractional digits."""
    local = instant.astimezone(zone)
    return f"{local:%Y-%m-%dT%H:%M:%S}.{local.microsecond:06d}0"


def format_ts(ts: float, zone: tzinfo) -> str:
    return format_local(datetime.fromtimestamp(ts, UTC), zone)


def format_utc_z(instant: datetime) -> str:
    """An ``Edm.DateTimeOffset`` as Graph writes it: "2017-04-15T03:00:50.7579581Z"."""
    utc = instant.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond:06d}0Z"


def time_of_day(text: str) -> str:
    """"09:00:00" -> "09:00:00.0000000" (``Edm.TimeOfDay`` as Graph writes it)."""
    hh_mm_ss, _, fraction = text.partition(".")
    if hh_mm_ss.count(":") == 1:
        hh_mm_ss += ":00"
    return f"{hh_mm_ss}.{fraction.ljust(7, '0')[:7]}"


# -- Prefer --------------------------------------------------------------------------------------

_PREFER_TZ_RE = re.compile(r"outlook\.timezone\s*=\s*\"?([^\",]*)\"?", re.IGNORECASE)
_PREFER_IDTYPE_RE = re.compile(r"\bIdType\s*=\s*\"?([A-Za-z]+)\"?", re.IGNORECASE)
_PREFER_BODY_RE = re.compile(r"outlook\.body-content-type\s*=\s*\"?([A-Za-z]+)\"?", re.IGNORECASE)


@dataclass(frozen=True)
class Preferences:
    """What the request's ``Prefer`` header asks for (and what was applied)."""

    zone: tzinfo = UTC
    zone_name: str = "UTC"
    zone_applied: bool = False
    immutable_ids: bool = False
    body_type: str | None = None  # "text" or "html" when asked

    def applied_header(self) -> list[tuple[str, str]]:
        """``Preference-Applied`` as Graph sends it for the preferences it honoured."""
        parts = []
        if self.zone_applied:
            parts.append(f'outlook.timezone="{self.zone_name}"')
        if self.immutable_ids:
            parts.append('IdType="ImmutableId"')
        if self.body_type:
            parts.append(f'outlook.body-content-type="{self.body_type}"')
        return [("Preference-Applied", ", ".join(parts))] if parts else []


_DEFAULT_PREFERENCES = Preferences()


@lru_cache(maxsize=256)
def parse_prefer(header: str | None) -> Preferences:
    """Parse ``Prefer``. An unknown ``outlook.timezone`` falls back to UTC (the sandbox's choice:
    Microsoft documents no error for it) and is then not listed in ``Preference-Applied``."""
    if not header:
        return _DEFAULT_PREFERENCES
    zone, zone_name, applied = UTC, "UTC", False
    match = _PREFER_TZ_RE.search(header)
    if match and match.group(1).strip():
        name = match.group(1).strip()
        with contextlib.suppress(UnknownTimeZone):
            zone, zone_name, applied = resolve_zone(name), name, True
    id_match = _PREFER_IDTYPE_RE.search(header)
    immutable = bool(id_match and id_match.group(1).lower() == "immutableid")
    body_match = _PREFER_BODY_RE.search(header)
    body_type = body_match.group(1).lower() if body_match and body_match.group(1).lower() in ("text", "html") else None
    return Preferences(zone=zone, zone_name=zone_name, zone_applied=applied, immutable_ids=immutable,
                       body_type=body_type)
