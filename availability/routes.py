"""HTTP routes of this feature (thin handlers: parse, call the service, answer)."""

from __future__ import annotations

import azure.functions as func

bp = func.Blueprint()
