"""Route templates as the Functions host reads them: `tenants/{tenantId}/bookings/{*rest}`.

One matcher serves both the catch-all route (to tell 404 from 405) and the project's local
host, so the routes the FunctionApp registers are the only routing table there is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

_PARAM = re.compile(r"^\{(\*?)([A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?(\?)?\}$")


@dataclass(frozen=True)
class RouteTemplate:
    """A parsed route template; `match` returns the route parameters or None."""

    template: str
    segments: tuple[tuple[str, str], ...]  # (kind, text): kind is "literal", "param" or "catchall"

    @classmethod
    def parse(cls, template: str) -> RouteTemplate:
        parts = [p for p in template.strip("/").split("/") if p != ""]
        segments: list[tuple[str, str]] = []
        for index, part in enumerate(parts):
            found = _PARAM.match(part)
            if not found:
                segments.append(("literal", part.lower()))
            elif found.group(1):
                if index != len(parts) - 1:
                    raise ValueError(f"catch-all parameter must be last in route {template!r}")
                segments.append(("catchall", found.group(2)))
            else:
                segments.append(("param", found.group(2)))
        return cls(template=template, segments=tuple(segments))

    @property
    def precedence(self) -> tuple[int, ...]:
        """Sort key: literals before parameters before a catch-all, segment by segment."""
        order = {"literal": 0, "param": 1, "catchall": 2}
        return tuple(order[kind] for kind, _ in self.segments) + (3,) * (32 - len(self.segments))

    def match(self, path: str) -> dict[str, str] | None:
        parts = [p for p in path.strip("/").split("/")] if path.strip("/") else []
        params: dict[str, str] = {}
        for index, (kind, text) in enumerate(self.segments):
            if kind == "catchall":
                params[text] = unquote("/".join(parts[index:]))
                return params
            if index >= len(parts) or parts[index] == "":
                return None
            if kind == "literal":
                if unquote(parts[index]).lower() != text:
                    return None
            else:
                params[text] = unquote(parts[index])
        if len(parts) != len(self.segments):
            return None
        return params


def allowed_methods(routes: list[tuple[RouteTemplate, frozenset[str]]], path: str) -> set[str]:
    """The methods that some non-catch-all route accepts for `path` (empty: no such route)."""
    methods: set[str] = set()
    for template, route_methods in routes:
        if any(kind == "catchall" for kind, _ in template.segments):
            continue
        if template.match(path) is not None:
            methods |= route_methods
    return methods
