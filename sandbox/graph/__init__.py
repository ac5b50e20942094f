"""Microsoft Graph calendars, under /v1.0/ (filled in by the Graph work)."""

from __future__ import annotations

from ..web import Route

ROUTES: list[Route] = []
