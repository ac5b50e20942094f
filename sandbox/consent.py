"""Consent pages and the authorization code flow (filled in by the consent work)."""

from __future__ import annotations

from .web import Route

ROUTES: list[Route] = []
